#include "analysis/scan_analysis.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace archlens::analysis {

namespace {

void requireMatrix(const Tensor& t, const char* what)
{
    if (!t.defined() || t.dtype() != DType::F32 || t.rank() != 2)
        throw makeError(ErrorCode::Shape, "{} must be a float32 matrix, got {}", what,
                        t.defined() ? shapeToString(t.shape()) : std::string("nothing"));
}

void requireIndex(int64_t v, int64_t size, const char* what)
{
    if (v < 0 || v >= size)
        throw makeError(ErrorCode::InvalidArgument, "{} {} is out of range [0, {})", what, v, size);
}

void requireFraction(double f)
{
    if (!(f > 0.0 && f < 1.0))
        throw makeError(ErrorCode::InvalidArgument,
                        "forget fraction f = {} must lie strictly between 0 and 1 (e.g. 0.01: 1% left)", f);
}

// max_n A[c, n]: the slowest-decaying state dimension (A is negative).
double slowestA(const Tensor& A, int64_t c)
{
    const int64_t N = A.dim(1);
    double a = -std::numeric_limits<double>::infinity();
    for (int64_t n = 0; n < N; ++n)
        a = std::max(a, double(A.f32()[c * N + n]));
    return a;
}

void checkHorizonArgs(const Tensor& delta, const Tensor& A, int64_t channel, double f)
{
    requireMatrix(delta, "delta (T, E)");
    requireMatrix(A, "A (E, N)");
    if (A.dim(0) != delta.dim(1) || A.dim(1) < 1)
        throw makeError(ErrorCode::Shape, "A has shape {} but delta has E = {} channels", shapeToString(A.shape()),
                        delta.dim(1));
    requireIndex(channel, delta.dim(1), "channel");
    requireFraction(f);
}

float deltaAt(const Tensor& delta, int64_t t, int64_t c)
{
    const float d = delta.f32()[t * delta.dim(1) + c];
    if (!(d >= 0.f))
        throw makeError(ErrorCode::InvalidArgument,
                        "delta[{}, {}] = {}: Δ is a softplus output and cannot be negative or NaN", t, c, d);
    return d;
}

bool forgotten(double sum, double a, double f) { return std::exp(sum * a) < f; }


} // namespace

// ---- gathering ----

Tensor gatherProbe(std::span<const FramePtr> frames, int layer, Probe probe)
{
    if (frameProbeSlot(probe) < 0)
        throw makeError(ErrorCode::InvalidArgument, "{} is not a per-token frame probe", probeName(probe));
    int64_t width = -1;
    for (size_t i = 0; i < frames.size(); ++i) {
        const std::span<const float> v = frames[i] ? frames[i]->probe(layer, probe) : std::span<const float>();
        if (v.empty())
            throw makeError(ErrorCode::InvalidArgument, "{} of layer {} is missing at frame {}{}", probeName(probe), layer,
                            i, frames[i] ? fmt::format(" (token {})", frames[i]->token) : std::string(" (no frame)"));
        if (width < 0)
            width = int64_t(v.size());
        else if (int64_t(v.size()) != width)
            throw makeError(ErrorCode::Shape, "{} of layer {} has {} values at token {} but {} before",
                            probeName(probe), layer, v.size(), frames[i]->token, width);
    }
    Tensor out = Tensor::empty({int64_t(frames.size()), std::max<int64_t>(width, 0)});
    for (size_t i = 0; i < frames.size(); ++i) {
        const auto v = frames[i]->probe(layer, probe);
        std::copy(v.begin(), v.end(), out.f32() + int64_t(i) * width);
    }
    return out;
}

// ---- memory horizon ----

Horizon memoryHorizon(const Tensor& delta, const Tensor& A, int64_t channel, int64_t source, double f)
{
    checkHorizonArgs(delta, A, channel, f);
    const int64_t T = delta.dim(0);
    requireIndex(source, T, "source token");
    const double a = slowestA(A, channel);
    double sum = 0;
    for (int64_t k = 1; source + k < T; ++k) {
        sum += double(deltaAt(delta, source + k, channel));
        if (forgotten(sum, a, f))
            return {k, false};
    }
    return {T - source, true};
}

std::vector<Horizon> memoryHorizons(const Tensor& delta, const Tensor& A, int64_t channel, double f)
{
    checkHorizonArgs(delta, A, channel, f);
    const int64_t T = delta.dim(0);
    const double a = slowestA(A, channel);
    // prefix[i] = Σ_{r < i} Δ_r; the decayed sum after source s over k tokens is prefix[s+k+1] - prefix[s+1]
    std::vector<double> prefix(size_t(T) + 1, 0.0);
    for (int64_t t = 0; t < T; ++t)
        prefix[size_t(t) + 1] = prefix[size_t(t)] + double(deltaAt(delta, t, channel));
    std::vector<Horizon> out(static_cast<size_t>(T));
    int64_t e = 0; // smallest end index (exclusive) that forgets, non-decreasing in s
    for (int64_t s = 0; s < T; ++s) {
        e = std::max(e, s + 2);
        while (e <= T && !forgotten(prefix[size_t(e)] - prefix[size_t(s) + 1], a, f))
            ++e;
        out[size_t(s)] = e <= T ? Horizon{e - s - 1, false} : Horizon{T - s, true};
    }
    return out;
}

// ---- Δ spikes ----

DeltaSpikes deltaSpikes(const Tensor& delta, double multiple)
{
    requireMatrix(delta, "delta (T, E)");
    if (!(multiple > 0.0) || !std::isfinite(multiple))
        throw makeError(ErrorCode::InvalidArgument, "spike multiple m = {} must be a positive number (default 5)",
                        multiple);
    DeltaSpikes out;
    out.T = delta.dim(0);
    out.E = delta.dim(1);
    out.multiple = multiple;
    out.median.assign(size_t(out.E), 0.0);
    out.mask.assign(size_t(out.T * out.E), 0);
    std::vector<float> column(size_t(out.T));
    for (int64_t c = 0; c < out.E && out.T > 0; ++c) {
        for (int64_t t = 0; t < out.T; ++t)
            column[size_t(t)] = delta.f32()[t * out.E + c];
        const size_t mid = column.size() / 2;
        std::nth_element(column.begin(), column.begin() + std::ptrdiff_t(mid), column.end());
        double median = column[mid];
        if (column.size() % 2 == 0) {
            const float below = *std::max_element(column.begin(), column.begin() + std::ptrdiff_t(mid));
            median = (double(below) + median) / 2.0;
        }
        out.median[size_t(c)] = median;
    }
    for (int64_t t = 0; t < out.T; ++t)
        for (int64_t c = 0; c < out.E; ++c)
            if (double(delta.f32()[t * out.E + c]) > multiple * out.median[size_t(c)]) {
                out.mask[size_t(t * out.E + c)] = 1;
                out.spikes.emplace_back(t, c);
            }
    return out;
}

// ---- scan stepper ----

ScanStepNumbers scanStep(const ScanStepInput& in)
{
    const size_t N = in.A.size();
    if (N == 0 || in.B.size() != N || in.C.size() != N || (!in.hPrev.empty() && in.hPrev.size() != N))
        throw makeError(ErrorCode::Shape, "scan step: A, B, C and h_prev must have N values each (A {}, B {}, C {}, h {})",
                        in.A.size(), in.B.size(), in.C.size(), in.hPrev.size());
    ScanStepNumbers s;
    s.decay.resize(N);
    s.hOld.resize(N);
    s.decayed.resize(N);
    s.input.resize(N);
    s.hNew.resize(N);
    s.contribution.resize(N);
    // The same float expressions, in the same order, as the CPU reference backend's scans.
    for (size_t n = 0; n < N; ++n) {
        s.hOld[n] = in.hPrev.empty() ? 0.f : in.hPrev[n];
        s.decay[n] = std::exp(in.delta * in.A[n]);
        s.decayed[n] = s.hOld[n] * s.decay[n];
        s.input[n] = in.order == ScanOrder::Recurrent ? (in.delta * in.x) * in.B[n] : in.delta * in.B[n] * in.x;
        s.hNew[n] = s.decayed[n] + s.input[n];
        s.contribution[n] = s.hNew[n] * in.C[n];
    }
    float y = 0.f;
    for (size_t n = 0; n < N; ++n)
        y += s.contribution[n];
    s.readout = y;
    if (in.D) {
        s.Dx = *in.D * in.x;
        y += s.Dx;
    }
    s.yPreGate = y;
    s.gate = in.gate;
    s.y = in.gate ? y * *in.gate : y;
    return s;
}

namespace {

struct Dims {
    int64_t T, E, N;
};

Dims checkScanTensors(const ScanTensors& s)
{
    requireMatrix(s.x, "x (T, E)");
    requireMatrix(s.delta, "delta (T, E)");
    requireMatrix(s.B, "B (T, N)");
    requireMatrix(s.A, "A (E, N)");
    const Dims d{s.x.dim(0), s.x.dim(1), s.A.dim(1)};
    if (s.delta.shape() != s.x.shape() || s.B.dim(0) != d.T || s.B.dim(1) != d.N || s.A.dim(0) != d.E)
        throw makeError(ErrorCode::Shape, "scan tensors disagree: x {}, delta {}, B {}, A {}", shapeToString(s.x.shape()),
                        shapeToString(s.delta.shape()), shapeToString(s.B.shape()), shapeToString(s.A.shape()));
    return d;
}

ScanStepInput inputAt(const ScanTensors& s, const Dims& d, int64_t c, int64_t t, std::vector<float> hPrev,
                      ScanOrder order)
{
    ScanStepInput in;
    in.delta = s.delta.f32()[t * d.E + c];
    in.x = s.x.f32()[t * d.E + c];
    in.A.assign(s.A.f32() + c * d.N, s.A.f32() + (c + 1) * d.N);
    in.B.assign(s.B.f32() + t * d.N, s.B.f32() + (t + 1) * d.N);
    if (s.C.defined())
        in.C.assign(s.C.f32() + t * d.N, s.C.f32() + (t + 1) * d.N);
    else
        in.C.assign(size_t(d.N), 0.f);
    in.hPrev = std::move(hPrev);
    if (s.D.defined())
        in.D = s.D.f32()[c];
    if (s.gate.defined())
        in.gate = s.gate.f32()[t * d.E + c];
    in.order = order;
    return in;
}

} // namespace

std::vector<float> replayChannel(const ScanTensors& s, int64_t channel, int64_t begin, int64_t end,
                                 std::span<const float> h0, ScanOrder order)
{
    const Dims d = checkScanTensors(s);
    requireIndex(channel, d.E, "channel");
    if (begin < 0 || end < begin || end > d.T)
        throw makeError(ErrorCode::InvalidArgument, "token range [{}, {}) is outside [0, {})", begin, end, d.T);
    if (!h0.empty() && int64_t(h0.size()) != d.N)
        throw makeError(ErrorCode::Shape, "h0 has {} values, expected N = {}", h0.size(), d.N);
    std::vector<float> h = h0.empty() ? std::vector<float>(size_t(d.N), 0.f) : std::vector<float>(h0.begin(), h0.end());
    const float* A = s.A.f32() + channel * d.N;
    for (int64_t t = begin; t < end; ++t) {
        const float delta = s.delta.f32()[t * d.E + channel];
        const float x = s.x.f32()[t * d.E + channel];
        const float* B = s.B.f32() + t * d.N;
        for (int64_t n = 0; n < d.N; ++n) {
            const float input = order == ScanOrder::Recurrent ? (delta * x) * B[n] : delta * B[n] * x;
            h[size_t(n)] = h[size_t(n)] * std::exp(delta * A[n]) + input;
        }
    }
    return h;
}

ScanStepNumbers scanStepAt(const ScanTensors& s, int64_t channel, int64_t token, ScanOrder order)
{
    const Dims d = checkScanTensors(s);
    requireIndex(channel, d.E, "channel");
    requireIndex(token, d.T, "token");
    std::vector<float> hPrev;
    if (token > 0) {
        if (s.states.defined()) {
            if (s.states.rank() != 3 || s.states.dim(0) != d.T || s.states.dim(1) != d.E || s.states.dim(2) != d.N)
                throw makeError(ErrorCode::Shape, "states has shape {}, expected [{}, {}, {}]",
                                shapeToString(s.states.shape()), d.T, d.E, d.N);
            const float* h = s.states.f32() + ((token - 1) * d.E + channel) * d.N;
            hPrev.assign(h, h + d.N);
        } else {
            hPrev = replayChannel(s, channel, 0, token, {}, order);
        }
    }
    return scanStep(inputAt(s, d, channel, token, std::move(hPrev), order));
}

// ---- downsampling ----

namespace {

std::vector<int64_t> binEdges(int64_t n, int64_t bins)
{
    std::vector<int64_t> edges(size_t(bins) + 1);
    for (int64_t i = 0; i <= bins; ++i)
        edges[size_t(i)] = bins == 0 ? 0 : i * n / bins;
    return edges;
}

} // namespace

Downsampled downsample(std::span<const float> data, int64_t rows, int64_t cols, int64_t maxRows, int64_t maxCols,
                       DownsampleMode mode)
{
    if (rows < 0 || cols < 0)
        throw makeError(ErrorCode::InvalidArgument, "downsample: negative size [{}, {}]", rows, cols);
    if (maxRows < 1 || maxCols < 1)
        throw makeError(ErrorCode::InvalidArgument, "downsample: target [{}, {}] must be at least [1, 1]", maxRows,
                        maxCols);
    if (int64_t(data.size()) != rows * cols)
        throw makeError(ErrorCode::Shape, "downsample: {} values for a [{}, {}] matrix", data.size(), rows, cols);
    Downsampled out;
    out.rows = std::min(rows, maxRows);
    out.cols = std::min(cols, maxCols);
    out.rowStarts = binEdges(rows, out.rows);
    out.colStarts = binEdges(cols, out.cols);
    const float nan = std::numeric_limits<float>::quiet_NaN();
    out.values.assign(size_t(out.rows * out.cols), nan);
    if (mode == DownsampleMode::MinMax)
        out.maxValues.assign(size_t(out.rows * out.cols), nan);
    for (int64_t i = 0; i < out.rows; ++i)
        for (int64_t j = 0; j < out.cols; ++j) {
            float peak = nan, lo = nan, hi = nan;
            for (int64_t r = out.rowStarts[size_t(i)]; r < out.rowStarts[size_t(i) + 1]; ++r)
                for (int64_t c = out.colStarts[size_t(j)]; c < out.colStarts[size_t(j) + 1]; ++c) {
                    const float v = data[size_t(r * cols + c)];
                    if (std::isnan(v))
                        continue;
                    if (std::isnan(peak) || std::fabs(v) > std::fabs(peak))
                        peak = v;
                    if (std::isnan(lo) || v < lo)
                        lo = v;
                    if (std::isnan(hi) || v > hi)
                        hi = v;
                }
            const size_t k = size_t(i * out.cols + j);
            if (mode == DownsampleMode::MaxAbs) {
                out.values[k] = peak;
            } else {
                out.values[k] = lo;
                out.maxValues[k] = hi;
            }
        }
    return out;
}

} // namespace archlens::analysis
