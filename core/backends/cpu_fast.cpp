// The fast CPU backend (see cpu_fast.h). Every op computes what the reference computes
// (cpu_reference.cpp stays the oracle; tst_backend_ops compares the two op by op), with
// these choices:
//  * the selective scan (chunk and step) runs fused in one pass per channel block in the
//    per-ISA kernels, channel blocks spread over the pool;
//  * GEMMs (linear) go through Eigen's single-threaded GEMM on column slices of the output,
//    one slice per thread (Eigen's own threading would need OpenMP and a second pool
//    competing for the same cores);
//  * norms, elementwise ops, the convolution, rotary and attention are split over rows,
//    channels or heads; router top-k, expert FFNs and sampling use the reference code.
#include "backends/cpu_fast.h"
#include "ops/attention_row.h"
#include "ops/norm_row.h"

#include <sched.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <thread>

#include <Eigen/Core>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include "backends/cpu_fast_dispatch.h"
#include "base/thread_pool.h"
#include "ops/math.h"

namespace archlens {

int hardwareThreads()
{
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof(set), &set) == 0)
        return std::max(1, CPU_COUNT(&set));
    return std::max(1u, std::thread::hardware_concurrency());
}

int defaultCpuThreads(bool interactive)
{
    const int n = hardwareThreads();
    return interactive ? std::max(1, n - 1) : n;
}

std::vector<std::string> availableCpuIsas()
{
    std::vector<std::string> out;
    for (auto isa : fastcpu::availableIsas())
        out.emplace_back(fastcpu::isaName(isa));
    return out;
}

std::string bestCpuIsa()
{
    return fastcpu::isaName(fastcpu::bestIsa());
}

namespace {

using RowMatrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using MapConst = Eigen::Map<const RowMatrix, 0, Eigen::OuterStride<>>;
using Map = Eigen::Map<RowMatrix, 0, Eigen::OuterStride<>>;

void checkShape(bool ok, const char* op, const std::string& what)
{
    ARCHLENS_ASSERT(ok, "{}: {}", op, what);
}

// Work below these sizes runs on the caller: waking the pool costs a few microseconds.
constexpr int64_t kElementwiseGrain = 1 << 14; // floats per part
constexpr int64_t kScanGrain = 1 << 15; // state updates per part
constexpr double kGemmGrainFlops = 2e6;

class CpuFastBackend final : public Backend {
public:
    CpuFastBackend(const fastcpu::Kernels& k, int threads)
        : m_k(&k)
        , m_pool(std::make_unique<ThreadPool>(threads))
        , m_ref(makeCpuReferenceBackend())
    {
    }

    std::string name() const override { return "cpu"; }
    std::string description() const override
    {
        return fmt::format(
            "CPU ({}, {} thread{}, F32)", m_k->name, m_pool->threads(), m_pool->threads() == 1 ? "" : "s");
    }
    bool supports(Op op) const override { return op != Op::Count; }
    int threads() const override { return m_pool->threads(); }
    void setThreads(int threads) override
    {
        threads = std::max(1, threads);
        if (threads != m_pool->threads())
            m_pool = std::make_unique<ThreadPool>(threads);
    }
    std::string isa() const override { return m_k->name; }

    void linear(const Tensor& x, const Tensor& w, const Tensor* b, Tensor& y) override
    {
        const int64_t T = x.dim(0), in = x.dim(1), out = w.dim(0);
        checkShape(w.dim(1) == in && y.dim(0) == T && y.dim(1) == out, "linear",
            shapeToString(x.shape()) + " x " + shapeToString(w.shape()));
        const double flops = 2.0 * double(T) * double(in) * double(out);
        const int64_t grain = std::max<int64_t>(16, int64_t(double(out) * kGemmGrainFlops / std::max(1.0, flops)));
        const float* bias = b ? b->f32() : nullptr;
        m_pool->parallelFor(
            out, grain,
            [&](int64_t o0, int64_t o1) {
                const int64_t cols = o1 - o0;
                MapConst X(x.f32(), T, in, Eigen::OuterStride<>(in));
                MapConst W(w.f32() + o0 * in, cols, in, Eigen::OuterStride<>(in));
                Map Y(y.f32() + o0, T, cols, Eigen::OuterStride<>(out));
                Y.noalias() = X * W.transpose();
                if (bias) {
                    Eigen::Map<const Eigen::RowVectorXf> bv(bias + o0, cols);
                    Y.rowwise() += bv;
                }
            },
            16);
    }

    void embedding(const std::vector<int32_t>& ids, const Tensor& table, Tensor& out) override
    {
        m_ref->embedding(ids, table, out);
    }

    void rmsNorm(const Tensor& x, const Tensor& w, float eps, Tensor& y) override
    {
        const int64_t T = x.dim(0), D = x.dim(1);
        checkShape(w.numel() == D && y.numel() == x.numel(), "rmsNorm", shapeToString(x.shape()));
        m_pool->parallelFor(
            T, std::max<int64_t>(1, kElementwiseGrain / std::max<int64_t>(1, D)), [&](int64_t t0, int64_t t1) {
                for (int64_t t = t0; t < t1; ++t)
                    m_k->rmsNormRow(x.f32() + t * D, w.f32(), eps, y.f32() + t * D, D);
            });
    }

    void layerNorm(const Tensor& x, const Tensor& w, const Tensor* b, float eps, Tensor& y) override
    {
        const int64_t T = x.dim(0), D = x.dim(1);
        m_pool->parallelFor(
            T, std::max<int64_t>(1, kElementwiseGrain / std::max<int64_t>(1, D)), [&](int64_t t0, int64_t t1) {
                for (int64_t t = t0; t < t1; ++t)
                    layerNormRow(x.f32() + t * D, w.f32(), b ? b->f32() : nullptr, eps, D, y.f32() + t * D);
            });
    }

    void add(const Tensor& a, const Tensor& b, Tensor& out) override
    {
        checkShape(a.numel() == b.numel() && a.numel() == out.numel(), "add", shapeToString(a.shape()));
        m_pool->parallelFor(a.numel(), kElementwiseGrain,
            [&](int64_t i0, int64_t i1) { m_k->add(a.f32() + i0, b.f32() + i0, out.f32() + i0, i1 - i0); });
    }

    void mul(const Tensor& a, const Tensor& b, Tensor& out) override
    {
        checkShape(a.numel() == b.numel() && a.numel() == out.numel(), "mul", shapeToString(a.shape()));
        m_pool->parallelFor(a.numel(), kElementwiseGrain,
            [&](int64_t i0, int64_t i1) { m_k->mul(a.f32() + i0, b.f32() + i0, out.f32() + i0, i1 - i0); });
    }

    void silu(const Tensor& x, Tensor& y) override
    {
        checkShape(x.numel() == y.numel(), "silu", shapeToString(x.shape()));
        m_pool->parallelFor(x.numel(), kElementwiseGrain,
            [&](int64_t i0, int64_t i1) { m_k->silu(x.f32() + i0, y.f32() + i0, i1 - i0); });
    }

    void gelu(const Tensor& x, Tensor& y, GeluKind kind) override
    {
        checkShape(x.numel() == y.numel(), "gelu", shapeToString(x.shape()));
        m_pool->parallelFor(x.numel(), kElementwiseGrain / 4, [&](int64_t i0, int64_t i1) {
            for (int64_t i = i0; i < i1; ++i)
                y.f32()[i] = kind == GeluKind::Erf ? geluErf(x.f32()[i]) : geluTanh(x.f32()[i]);
        });
    }

    // Rows of the output are independent given the inputs, so the chunk is split over
    // tokens; within a token the loop runs along contiguous channels.
    void causalConv1d(const Tensor& x, const Tensor& w, const Tensor* b, Tensor& history, Tensor& y) override
    {
        const int64_t T = x.dim(0), E = x.dim(1), K = w.dim(1);
        checkShape(w.dim(0) == E && history.dim(0) == E && history.dim(1) == K - 1 && y.dim(0) == T && y.dim(1) == E,
            "causalConv1d", shapeToString(w.shape()));
        if (T == 0)
            return;
        const float* xs = x.f32();
        const float* hs = history.f32();
        const float* ws = w.f32();
        const float* bs = b ? b->f32() : nullptr;
        m_pool->parallelFor(
            T, std::max<int64_t>(1, kElementwiseGrain / std::max<int64_t>(1, E * K)), [&](int64_t t0, int64_t t1) {
                for (int64_t t = t0; t < t1; ++t) {
                    float* yr = y.f32() + t * E;
                    for (int64_t c = 0; c < E; ++c)
                        yr[c] = bs ? bs[c] : 0.f;
                    for (int64_t k = 0; k < K; ++k) {
                        const int64_t r = t - (K - 1) + k;
                        if (r >= 0) {
                            const float* xr = xs + r * E;
                            for (int64_t c = 0; c < E; ++c)
                                yr[c] += ws[c * K + k] * xr[c];
                        } else {
                            for (int64_t c = 0; c < E; ++c)
                                yr[c] += ws[c * K + k] * hs[c * (K - 1) + (K - 1 + r)];
                        }
                    }
                }
            });
        // new history: the last K-1 inputs of (old history ++ x), shifted in place
        for (int64_t c = 0; c < E; ++c) {
            float* hc = history.f32() + c * (K - 1);
            for (int64_t j = 0; j < K - 1; ++j) {
                const int64_t r = T - (K - 1) + j; // relative time of the new entry j
                hc[j] = r >= 0 ? xs[r * E + c] : hc[j + T];
            }
        }
    }

    void causalConv1dStep(const Tensor& x, const Tensor& w, const Tensor* b, Tensor& history, Tensor& y) override
    {
        m_ref->causalConv1dStep(x, w, b, history, y);
    }

    void selectiveScan(const ScanArgs& a) override
    {
        const int64_t T = a.x->dim(0), E = a.x->dim(1), N = a.A->dim(1);
        checkShape(
            a.B->dim(0) == T && a.B->dim(1) == N && a.C->dim(1) == N && a.state->dim(0) == E && a.state->dim(1) == N,
            "selectiveScan", shapeToString(a.B->shape()));
        runScan(a, T, E, N, false);
    }

    void selectiveScanStep(const ScanArgs& a) override
    {
        const int64_t E = a.x->numel(), N = a.A->dim(1);
        checkShape(a.B->numel() == N && a.C->numel() == N && a.state->numel() == E * N, "selectiveScanStep",
            shapeToString(a.x->shape()));
        runScan(a, 1, E, N, true);
    }

    void rotary(
        Tensor& x, int64_t position, int64_t rotaryDims, const std::vector<float>& invFreq, float mscale) override
    {
        const int64_t T = x.dim(0), H = x.dim(1), Dh = x.dim(2), half = rotaryDims / 2;
        checkShape(rotaryDims <= Dh && int64_t(invFreq.size()) == half, "rotary", shapeToString(x.shape()));
        m_pool->parallelFor(
            T, std::max<int64_t>(1, 4096 / std::max<int64_t>(1, H * half)), [&](int64_t t0, int64_t t1) {
                for (int64_t t = t0; t < t1; ++t)
                    for (int64_t h = 0; h < H; ++h) {
                        float* v = x.f32() + (t * H + h) * Dh;
                        for (int64_t i = 0; i < half; ++i) {
                            const float angle = float(position + t) * invFreq[size_t(i)];
                            const float c = std::cos(angle) * mscale, s = std::sin(angle) * mscale;
                            const float p = v[i], q = v[i + half];
                            v[i] = p * c - q * s;
                            v[i + half] = q * c + p * s;
                        }
                    }
            });
    }

    // The reference's rows (ops/attention_row), split over (head, query) pairs; per-thread
    // scratch is reused.
    void attention(const AttentionArgs& a) override
    {
        const int64_t T = a.q->dim(0), H = a.q->dim(1), Dh = a.q->dim(2);
        const int64_t S = a.k->dim(0), Hkv = a.k->dim(1);
        checkShape(S == a.pastLength + T && H % Hkv == 0, "attention", shapeToString(a.k->shape()));
        m_pool->parallelFor(
            H * T, std::max<int64_t>(1, 8192 / std::max<int64_t>(1, S * Dh)), [&](int64_t i0, int64_t i1) {
                thread_local std::vector<float> scores;
                if (scores.size() < size_t(S))
                    scores.resize(size_t(S));
                for (int64_t i = i0; i < i1; ++i)
                    attentionRow(a, i / T, i % T, scores.data());
            });
    }

    void routerTopK(const RouterArgs& a) override { m_ref->routerTopK(a); }

    void expertFfn(const Tensor& x, const Tensor& topkIds, const Tensor& topkWeights,
        const std::vector<ExpertWeights>& experts, Tensor& out) override
    {
        m_ref->expertFfn(x, topkIds, topkWeights, experts, out);
    }

    int32_t sample(const Tensor& logits, const SamplingParams& params, uint64_t& rngState) override
    {
        return m_ref->sample(logits, params, rngState);
    }

private:
    void runScan(const ScanArgs& a, int64_t T, int64_t E, int64_t N, bool step)
    {
        if (N > fastcpu::kMaxScanState) {
            step ? m_ref->selectiveScanStep(a) : m_ref->selectiveScan(a);
            return;
        }
        fastcpu::ScanKernelArgs k;
        k.T = T;
        k.E = E;
        k.N = N;
        k.x = a.x->f32();
        k.dt = a.dt->f32();
        k.dtBias = a.dtBias ? a.dtBias->f32() : nullptr;
        k.A = a.A->f32();
        k.B = a.B->f32();
        k.C = a.C->f32();
        k.D = a.D ? a.D->f32() : nullptr;
        k.z = a.z ? a.z->f32() : nullptr;
        k.state = a.state->f32();
        k.y = a.y->f32();
        k.deltaOut = a.deltaOut ? a.deltaOut->f32() : nullptr;
        k.statesOut = a.statesOut ? a.statesOut->f32() : nullptr;
        k.stateNormOut = a.stateNormOut ? a.stateNormOut->f32() : nullptr;
        k.yPreGateOut = a.yPreGateOut ? a.yPreGateOut->f32() : nullptr;
        k.gateOut = a.gateOut ? a.gateOut->f32() : nullptr;
        if (T == 0 || E == 0)
            return;
        // channel ranges aligned to 16 (a whole AVX-512 vector, two AVX2 vectors)
        const int64_t perChannel = T * N;
        m_pool->parallelFor(
            E, std::max<int64_t>(16, kScanGrain / std::max<int64_t>(1, perChannel)),
            [&](int64_t c0, int64_t c1) { m_k->scan(k, c0, c1); }, 16);
    }

    const fastcpu::Kernels* m_k;
    std::unique_ptr<ThreadPool> m_pool;
    std::unique_ptr<Backend> m_ref;
};

} // namespace

std::unique_ptr<Backend> makeCpuFastBackend(const CpuBackendOptions& options)
{
    fastcpu::Isa isa;
    if (options.isa.empty() || options.isa == "auto") {
        isa = fastcpu::bestIsa();
    } else {
        const auto parsed = fastcpu::isaFromName(options.isa);
        if (!parsed)
            throw makeError(ErrorCode::InvalidArgument, "unknown CPU instruction set '{}' (expected auto, {})",
                options.isa, fmt::join(availableCpuIsas(), ", "));
        isa = *parsed;
    }
    const fastcpu::Kernels* k = fastcpu::kernelsFor(isa);
    if (!k)
        throw makeError(ErrorCode::Unsupported, "this CPU (or build) cannot run the {} kernels; available: {}",
            fastcpu::isaName(isa), fmt::join(availableCpuIsas(), ", "));
    const int threads = options.threads > 0 ? options.threads : defaultCpuThreads(options.interactive);
    return std::make_unique<CpuFastBackend>(*k, threads);
}

} // namespace archlens
