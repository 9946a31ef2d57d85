#include "analysis/hidden_attention.h"

#include <cmath>

#include "base/error.h"

namespace archlens::analysis {

AttentionWindow hiddenAttentionWindow(int64_t upTo, int64_t cap)
{
    AttentionWindow w;
    w.end = std::max<int64_t>(upTo + 1, 0);
    if (cap <= 0)
        cap = kDefaultHiddenAttentionCap;
    w.begin = std::max<int64_t>(0, w.end - cap);
    w.capped = w.begin > 0;
    return w;
}

namespace {
void check(const ScanInputs& in, AttentionWindow w)
{
    if (!in.delta || !in.B || !in.C || !in.A || in.E <= 0 || in.N <= 0)
        throw Error(ErrorCode::InvalidArgument, "hidden attention needs ssm delta, B, C and A of the layer",
                    {}, "record the layer's ssm probes (trace --probes all)");
    if (w.begin < 0 || w.end > in.T || w.begin >= w.end)
        throw makeError(ErrorCode::InvalidArgument, "hidden attention window [{}, {}) is outside tokens 0..{}", w.begin,
                        w.end, in.T - 1);
}

// Adds scale · α_c into out (W, W). For a source s the state contribution P[n] = Δ_s B_s[n]
// decays by exp(Δ_t A[c, n]) per later token t; α[t, s] = C_t · P.
void accumulate(const ScanInputs& in, int64_t c, AttentionWindow w, double scale, std::vector<double>& out)
{
    const int64_t W = w.size(), N = in.N, E = in.E;
    std::vector<double> decay(size_t(W * N)); // (W, N) exp(Δ_t[c] A[c, n])
    for (int64_t t = 0; t < W; ++t)
        for (int64_t n = 0; n < N; ++n)
            decay[size_t(t * N + n)] = std::exp(double(in.delta[(w.begin + t) * E + c]) * double(in.A[c * N + n]));
    std::vector<double> P(static_cast<size_t>(N));
    for (int64_t s = 0; s < W; ++s) {
        const int64_t gs = w.begin + s;
        const double ds = in.delta[gs * E + c];
        for (int64_t n = 0; n < N; ++n)
            P[size_t(n)] = ds * double(in.B[gs * N + n]);
        for (int64_t t = s; t < W; ++t) {
            const int64_t gt = w.begin + t;
            if (t > s)
                for (int64_t n = 0; n < N; ++n)
                    P[size_t(n)] *= decay[size_t(t * N + n)];
            double acc = 0;
            for (int64_t n = 0; n < N; ++n)
                acc += double(in.C[gt * N + n]) * P[size_t(n)];
            out[size_t(t * W + s)] += scale * acc;
        }
    }
}
} // namespace

std::vector<double> hiddenAttention(const ScanInputs& in, int64_t channel, AttentionWindow w)
{
    check(in, w);
    if (channel < 0 || channel >= in.E)
        throw makeError(ErrorCode::InvalidArgument, "channel {} does not exist (the layer has 0..{})", channel, in.E - 1);
    std::vector<double> out(size_t(w.size() * w.size()), 0.0);
    accumulate(in, channel, w, 1.0, out);
    return out;
}

std::vector<double> hiddenAttentionMean(const ScanInputs& in, std::span<const int64_t> channels, AttentionWindow w,
                                        const std::atomic<bool>* cancel)
{
    check(in, w);
    std::vector<int64_t> cs(channels.begin(), channels.end());
    if (cs.empty())
        for (int64_t c = 0; c < in.E; ++c)
            cs.push_back(c);
    for (int64_t c : cs)
        if (c < 0 || c >= in.E)
            throw makeError(ErrorCode::InvalidArgument, "channel {} does not exist (the layer has 0..{})", c, in.E - 1);
    std::vector<double> out(size_t(w.size() * w.size()), 0.0);
    for (int64_t c : cs) {
        if (cancel && cancel->load(std::memory_order_relaxed))
            return {};
        accumulate(in, c, w, 1.0 / double(cs.size()), out);
    }
    return out;
}

void normaliseRowsByAbsSum(std::vector<double>& m, int64_t W)
{
    for (int64_t t = 0; t < W; ++t) {
        double s = 0;
        for (int64_t j = 0; j < W; ++j)
            s += std::fabs(m[size_t(t * W + j)]);
        if (s > 0)
            for (int64_t j = 0; j < W; ++j)
                m[size_t(t * W + j)] /= s;
    }
}

} // namespace archlens::analysis
