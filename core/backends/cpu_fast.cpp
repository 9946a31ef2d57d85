// The fast CPU backend (see cpu_fast.h). Every op computes what the reference computes
// (cpu_reference.cpp stays the oracle; tst_backend_ops compares the two op by op), with
// these choices:
//  * the selective scan (chunk and step) runs fused in one pass per channel block in the
//    per-ISA kernels, channel blocks spread over the pool;
//  * GEMMs (linear) go through our blocked, packed SGEMM (cpu_gemm.h; per-ISA micro-kernels
//    in the kernel TUs, since Eigen here would be compiled for the baseline SSE2), split over
//    the pool by output blocks; the scalar ISA keeps Eigen;
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

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "backends/cpu_fast_dispatch.h"
#include "backends/cpu_gemm.h"
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

void checkShape(bool ok, const char* op, const std::string& what)
{
    ARCHLENS_ASSERT(ok, "{}: {}", op, what);
}

fastcpu::GemmBType gemmType(DType t)
{
    switch (t) {
    case DType::F32:
        return fastcpu::GemmBType::F32;
    case DType::F16:
        return fastcpu::GemmBType::F16;
    case DType::BF16:
        return fastcpu::GemmBType::BF16;
    default:
        throw makeError(ErrorCode::InvalidArgument, "linear: weights of dtype {} (expected F32, F16 or BF16)",
            dtypeName(t));
    }
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

    // Our blocked GEMM (cpu_gemm.h) with the per-ISA micro-kernels, split over the pool by
    // output blocks; Eigen on the scalar ISA. F16/BF16 weights are widened panel by panel.
    void linear(const Tensor& x, const Tensor& w, const Tensor* b, Tensor& y) override
    {
        const int64_t T = x.dim(0), in = x.dim(1), out = w.dim(0);
        checkShape(w.dim(1) == in && y.dim(0) == T && y.dim(1) == out, "linear",
            shapeToString(x.shape()) + " x " + shapeToString(w.shape()));
        if (b)
            checkShape(b->numel() == out, "linear", "bias " + shapeToString(b->shape()));
        linearRaw(x.f32(), T, in, w, b ? b->f32() : nullptr, y.f32());
    }

    bool acceptsWeightDType(DType dtype) const override
    {
        return dtype == DType::F32 || dtype == DType::F16 || dtype == DType::BF16;
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

    // Tokens are grouped per expert, so each expert runs three GEMMs over all its tokens (the
    // reference runs three GEMVs per token and choice); each (token, choice) output lands in
    // its own row and the rows are summed per token in the reference's order (choice 0 first).
    void expertFfn(const Tensor& x, const Tensor& topkIds, const Tensor& topkWeights,
        const std::vector<ExpertWeights>& experts, Tensor& out) override
    {
        const int64_t T = x.dim(0), D = x.dim(1), k = topkIds.dim(1);
        checkShape(out.dim(0) == T && out.dim(1) == D && topkWeights.dim(0) == T && topkWeights.dim(1) == k,
            "expertFfn", shapeToString(x.shape()));
        thread_local std::vector<int64_t> rows; // (token, choice) slots, grouped by expert
        thread_local std::vector<int64_t> start; // first slot of each expert in rows
        thread_local std::vector<float> xs, gs, us, os, ys;
        const int64_t X = int64_t(experts.size());
        start.assign(size_t(X + 1), 0);
        for (int64_t s = 0; s < T * k; ++s) {
            const int32_t e = topkIds.i32()[s];
            ARCHLENS_ASSERT(e >= 0 && e < X, "expertFfn: expert id {} outside 0..{}", e, X - 1);
            ++start[size_t(e) + 1];
        }
        for (int64_t e = 0; e < X; ++e)
            start[size_t(e + 1)] += start[size_t(e)];
        rows.resize(size_t(T * k));
        {
            std::vector<int64_t> fill(start.begin(), start.end() - 1);
            for (int64_t s = 0; s < T * k; ++s)
                rows[size_t(fill[size_t(topkIds.i32()[s])]++)] = s;
        }
        ys.resize(size_t(T * k * D));
        for (int64_t e = 0; e < X; ++e) {
            const int64_t n = start[size_t(e + 1)] - start[size_t(e)];
            if (n == 0)
                continue;
            const ExpertWeights& ew = experts[size_t(e)];
            const int64_t I = ew.gate->dim(0);
            xs.resize(size_t(n * D));
            gs.resize(size_t(n * I));
            us.resize(size_t(n * I));
            os.resize(size_t(n * D));
            const int64_t* slots = rows.data() + start[size_t(e)];
            for (int64_t r = 0; r < n; ++r)
                std::copy_n(x.f32() + (slots[r] / k) * D, D, xs.data() + r * D);
            checkShape(ew.gate->dim(1) == D && ew.up->dim(0) == I && ew.down->dim(0) == D && ew.down->dim(1) == I,
                "expertFfn", shapeToString(ew.down->shape()));
            linearRaw(xs.data(), n, D, *ew.gate, nullptr, gs.data());
            linearRaw(xs.data(), n, D, *ew.up, nullptr, us.data());
            // (the scratch is thread_local: workers must get its pointers, not its name)
            float* gp = gs.data();
            const float* up = us.data();
            m_pool->parallelFor(n * I, kElementwiseGrain, [=, this](int64_t i0, int64_t i1) {
                m_k->silu(gp + i0, gp + i0, i1 - i0);
                m_k->mul(gp + i0, up + i0, gp + i0, i1 - i0);
            });
            linearRaw(gs.data(), n, I, *ew.down, nullptr, os.data());
            for (int64_t r = 0; r < n; ++r)
                std::copy_n(os.data() + r * D, D, ys.data() + slots[r] * D);
        }
        const float* yp = ys.data();
        m_pool->parallelFor(T, std::max<int64_t>(1, kElementwiseGrain / std::max<int64_t>(1, D * k)),
            [&, yp](int64_t t0, int64_t t1) {
                for (int64_t t = t0; t < t1; ++t) {
                    float* o = out.f32() + t * D;
                    std::fill_n(o, D, 0.f);
                    for (int64_t j = 0; j < k; ++j) {
                        const float wgt = topkWeights.f32()[t * k + j];
                        const float* y = yp + (t * k + j) * D;
                        for (int64_t d = 0; d < D; ++d)
                            o[d] += wgt * y[d];
                    }
                }
            });
    }

    int32_t sample(const Tensor& logits, const SamplingParams& params, uint64_t& rngState) override
    {
        return m_ref->sample(logits, params, rngState);
    }

private:
    // y (T, out) = x (T, in) · Wᵀ (+ bias), rows contiguous
    void linearRaw(const float* x, int64_t T, int64_t in, const Tensor& w, const float* bias, float* y)
    {
        const int64_t out = w.dim(0);
        fastcpu::GemmArgs g;
        g.M = T;
        g.N = out;
        g.K = in;
        g.a = x;
        g.lda = in;
        g.b = w.raw();
        g.ldb = in;
        g.transB = true;
        g.bType = gemmType(w.dtype());
        g.c = y;
        g.ldc = out;
        if (bias) {
            for (int64_t t = 0; t < T; ++t)
                std::copy_n(bias, out, y + t * out);
            g.accumulate = true;
        }
        sgemm(g, m_pool.get(), m_k);
    }

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
