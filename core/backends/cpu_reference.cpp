// CPU reference backend: plain loops written for clarity, the oracle every faster
// backend is tested against. GEMMs go through Eigen (exact same maths, readable, and
// fast enough that real checkpoints stay usable before the fast path exists).
// Everything is F32; callers widen half-precision weights once at load.
#include <algorithm>
#include <cmath>
#include <numeric>

#include <Eigen/Core>

#include "backends/backend.h"
#include "ops/attention_row.h"
#include "ops/math.h"
#include "ops/norm_row.h"

namespace archlens {

namespace {

using RowMatrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using MapConst = Eigen::Map<const RowMatrix>;
using Map = Eigen::Map<RowMatrix>;

void checkShape(bool ok, const char* op, const std::string& what)
{
    ARCHLENS_ASSERT(ok, "{}: {}", op, what);
}

class CpuReferenceBackend final : public Backend {
public:
    std::string name() const override { return "cpu-reference"; }
    std::string description() const override { return "CPU reference (F32)"; }
    bool supports(Op op) const override { return op != Op::Count; }

    void linear(const Tensor& x, const Tensor& w, const Tensor* b, Tensor& y) override
    {
        const int64_t T = x.dim(0), in = x.dim(1), out = w.dim(0);
        checkShape(w.dim(1) == in && y.dim(0) == T && y.dim(1) == out, "linear",
                   shapeToString(x.shape()) + " x " + shapeToString(w.shape()));
        MapConst X(x.f32(), T, in);
        MapConst W(w.f32(), out, in);
        Map Y(y.f32(), T, out);
        Y.noalias() = X * W.transpose();
        if (b) {
            Eigen::Map<const Eigen::RowVectorXf> bias(b->f32(), out);
            Y.rowwise() += bias;
        }
    }

    void embedding(const std::vector<int32_t>& ids, const Tensor& table, Tensor& out) override
    {
        const int64_t rows = table.dim(0), D = table.dim(1);
        checkShape(out.dim(0) == int64_t(ids.size()) && out.dim(1) == D, "embedding", shapeToString(out.shape()));
        for (size_t t = 0; t < ids.size(); ++t) {
            if (ids[t] < 0 || ids[t] >= rows)
                throw makeError(ErrorCode::InvalidArgument, "token id {} is outside the embedding table (0..{})", ids[t],
                                rows - 1);
            std::copy_n(table.f32() + ids[t] * D, D, out.f32() + int64_t(t) * D);
        }
    }

    void rmsNorm(const Tensor& x, const Tensor& w, float eps, Tensor& y) override
    {
        const int64_t T = x.dim(0), D = x.dim(1);
        for (int64_t t = 0; t < T; ++t) {
            const float* xr = x.f32() + t * D;
            float* yr = y.f32() + t * D;
            double ss = 0;
            for (int64_t i = 0; i < D; ++i)
                ss += double(xr[i]) * xr[i];
            const float inv = 1.0f / std::sqrt(float(ss / double(D)) + eps);
            for (int64_t i = 0; i < D; ++i)
                yr[i] = w.f32()[i] * (xr[i] * inv);
        }
    }

    void layerNorm(const Tensor& x, const Tensor& w, const Tensor* b, float eps, Tensor& y) override
    {
        const int64_t T = x.dim(0), D = x.dim(1);
        for (int64_t t = 0; t < T; ++t)
            layerNormRow(x.f32() + t * D, w.f32(), b ? b->f32() : nullptr, eps, D, y.f32() + t * D);
    }

    void add(const Tensor& a, const Tensor& b, Tensor& out) override
    {
        checkShape(a.numel() == b.numel() && a.numel() == out.numel(), "add", shapeToString(a.shape()));
        for (int64_t i = 0; i < a.numel(); ++i)
            out.f32()[i] = a.f32()[i] + b.f32()[i];
    }

    void mul(const Tensor& a, const Tensor& b, Tensor& out) override
    {
        checkShape(a.numel() == b.numel() && a.numel() == out.numel(), "mul", shapeToString(a.shape()));
        for (int64_t i = 0; i < a.numel(); ++i)
            out.f32()[i] = a.f32()[i] * b.f32()[i];
    }

    void silu(const Tensor& x, Tensor& y) override
    {
        for (int64_t i = 0; i < x.numel(); ++i)
            y.f32()[i] = siluf(x.f32()[i]);
    }

    void gelu(const Tensor& x, Tensor& y, GeluKind kind) override
    {
        for (int64_t i = 0; i < x.numel(); ++i)
            y.f32()[i] = kind == GeluKind::Erf ? geluErf(x.f32()[i]) : geluTanh(x.f32()[i]);
    }

    void causalConv1d(const Tensor& x, const Tensor& w, const Tensor* b, Tensor& history, Tensor& y) override
    {
        const int64_t T = x.dim(0), E = x.dim(1), K = w.dim(1);
        checkShape(w.dim(0) == E && history.dim(0) == E && history.dim(1) == K - 1, "causalConv1d",
                   shapeToString(w.shape()));
        // input at relative time r (may be negative: then it comes from history)
        auto input = [&](int64_t r, int64_t c) -> float {
            if (r >= 0)
                return x.f32()[r * E + c];
            return history.f32()[c * (K - 1) + (K - 1 + r)];
        };
        for (int64_t t = 0; t < T; ++t)
            for (int64_t c = 0; c < E; ++c) {
                float acc = b ? b->f32()[c] : 0.f;
                for (int64_t k = 0; k < K; ++k)
                    acc += w.f32()[c * K + k] * input(t - (K - 1) + k, c);
                y.f32()[t * E + c] = acc;
            }
        // new history: the last K-1 inputs of (old history ++ x)
        Tensor next = Tensor::empty({E, K - 1});
        for (int64_t c = 0; c < E; ++c)
            for (int64_t j = 0; j < K - 1; ++j)
                next.f32()[c * (K - 1) + j] = input(T - (K - 1) + j, c);
        std::copy_n(next.f32(), next.numel(), history.f32());
    }

    void causalConv1dStep(const Tensor& x, const Tensor& w, const Tensor* b, Tensor& history, Tensor& y) override
    {
        const int64_t E = w.dim(0), K = w.dim(1);
        checkShape(history.dim(0) == E && history.dim(1) == K - 1 && x.numel() == E, "causalConv1dStep",
                   shapeToString(history.shape()));
        for (int64_t c = 0; c < E; ++c) {
            float* hist = history.f32() + c * (K - 1);
            const float* wc = w.f32() + c * K;
            float acc = (b ? b->f32()[c] : 0.f) + x.f32()[c] * wc[K - 1];
            for (int64_t k = 0; k < K - 1; ++k)
                acc += hist[k] * wc[k];
            y.f32()[c] = acc;
            if (K > 1) {
                std::copy(hist + 1, hist + K - 1, hist);
                hist[K - 2] = x.f32()[c];
            }
        }
    }

    void selectiveScan(const ScanArgs& a) override
    {
        const int64_t T = a.x->dim(0), E = a.x->dim(1), N = a.A->dim(1);
        checkShape(a.B->dim(0) == T && a.B->dim(1) == N && a.C->dim(1) == N && a.state->dim(0) == E
                       && a.state->dim(1) == N,
                   "selectiveScan", shapeToString(a.B->shape()));
        float* h = a.state->f32(); // (E, N)
        for (int64_t t = 0; t < T; ++t) {
            const float* Bt = a.B->f32() + t * N;
            const float* Ct = a.C->f32() + t * N;
            for (int64_t c = 0; c < E; ++c) {
                const float xtc = a.x->f32()[t * E + c];
                const float delta = softplusf(a.dt->f32()[t * E + c] + (a.dtBias ? a.dtBias->f32()[c] : 0.f));
                float* hc = h + c * N;
                float y = 0.f;
                double norm2 = 0.0;
                for (int64_t n = 0; n < N; ++n) {
                    // zero-order hold on A, Euler step on B (as selective_scan_ref)
                    hc[n] = std::exp(delta * a.A->f32()[c * N + n]) * hc[n] + delta * Bt[n] * xtc;
                    y += Ct[n] * hc[n];
                    norm2 += double(hc[n]) * hc[n];
                }
                if (a.D)
                    y += a.D->f32()[c] * xtc;
                if (a.deltaOut)
                    a.deltaOut->f32()[t * E + c] = delta;
                if (a.statesOut)
                    std::copy_n(hc, N, a.statesOut->f32() + (t * E + c) * N);
                if (a.stateNormOut)
                    a.stateNormOut->f32()[t * E + c] = float(std::sqrt(norm2));
                if (a.yPreGateOut)
                    a.yPreGateOut->f32()[t * E + c] = y;
                if (a.z) {
                    const float g = siluf(a.z->f32()[t * E + c]);
                    if (a.gateOut)
                        a.gateOut->f32()[t * E + c] = g;
                    y *= g;
                }
                a.y->f32()[t * E + c] = y;
            }
        }
    }

    void selectiveScanStep(const ScanArgs& a) override
    {
        // The decoder's form (model-formats §3.5 step 5-6), written as whole-state updates:
        // decay every state entry, add the input's outer product, read out.
        const int64_t E = a.x->numel(), N = a.A->dim(1);
        checkShape(a.x->numel() == E && a.B->numel() == N, "selectiveScanStep", shapeToString(a.x->shape()));
        std::vector<float> delta(size_t(E), 0.f);
        for (int64_t c = 0; c < E; ++c)
            delta[size_t(c)] = softplusf(a.dt->f32()[c] + (a.dtBias ? a.dtBias->f32()[c] : 0.f));
        float* h = a.state->f32();
        for (int64_t c = 0; c < E; ++c)
            for (int64_t n = 0; n < N; ++n)
                h[c * N + n] = h[c * N + n] * std::exp(delta[size_t(c)] * a.A->f32()[c * N + n])
                    + (delta[size_t(c)] * a.x->f32()[c]) * a.B->f32()[n];
        for (int64_t c = 0; c < E; ++c) {
            float y = 0.f;
            double norm2 = 0.0;
            for (int64_t n = 0; n < N; ++n) {
                y += h[c * N + n] * a.C->f32()[n];
                norm2 += double(h[c * N + n]) * h[c * N + n];
            }
            if (a.D)
                y += a.D->f32()[c] * a.x->f32()[c];
            if (a.deltaOut)
                a.deltaOut->f32()[c] = delta[size_t(c)];
            if (a.statesOut)
                std::copy_n(h + c * N, N, a.statesOut->f32() + c * N);
            if (a.stateNormOut)
                a.stateNormOut->f32()[c] = float(std::sqrt(norm2));
            if (a.yPreGateOut)
                a.yPreGateOut->f32()[c] = y;
            if (a.z) {
                const float g = siluf(a.z->f32()[c]);
                if (a.gateOut)
                    a.gateOut->f32()[c] = g;
                y *= g;
            }
            a.y->f32()[c] = y;
        }
    }

    void rotary(Tensor& x, int64_t position, int64_t rotaryDims, const std::vector<float>& invFreq,
                float mscale) override
    {
        const int64_t T = x.dim(0), H = x.dim(1), Dh = x.dim(2), half = rotaryDims / 2;
        checkShape(rotaryDims <= Dh && int64_t(invFreq.size()) == half, "rotary", shapeToString(x.shape()));
        for (int64_t t = 0; t < T; ++t)
            for (int64_t h = 0; h < H; ++h) {
                float* v = x.f32() + (t * H + h) * Dh;
                for (int64_t i = 0; i < half; ++i) {
                    const float angle = float(position + t) * invFreq[size_t(i)];
                    const float c = std::cos(angle) * mscale, s = std::sin(angle) * mscale;
                    const float a = v[i], b = v[i + half];
                    v[i] = a * c - b * s;
                    v[i + half] = b * c + a * s;
                }
            }
    }

    void attention(const AttentionArgs& a) override
    {
        const int64_t T = a.q->dim(0), H = a.q->dim(1);
        const int64_t S = a.k->dim(0), Hkv = a.k->dim(1);
        checkShape(S == a.pastLength + T && H % Hkv == 0, "attention", shapeToString(a.k->shape()));
        std::vector<float> scores(static_cast<size_t>(S));
        for (int64_t h = 0; h < H; ++h)
            for (int64_t t = 0; t < T; ++t)
                attentionRow(a, h, t, scores.data());
    }

    void routerTopK(const RouterArgs& a) override
    {
        const int64_t T = a.logits->dim(0), X = a.logits->dim(1);
        checkShape(a.k >= 1 && a.k <= X, "routerTopK", "k out of range");
        std::vector<float> p(static_cast<size_t>(X));
        std::vector<int32_t> order(static_cast<size_t>(X));
        for (int64_t t = 0; t < T; ++t) {
            const float* l = a.logits->f32() + t * X;
            softmax(l, p.data(), X);
            if (a.probs)
                std::copy(p.begin(), p.end(), a.probs->f32() + t * X);
            std::iota(order.begin(), order.end(), 0);
            // descending by probability; ties to the lower expert id (torch.topk on CPU does the same)
            std::stable_sort(order.begin(), order.end(),
                             [&](int32_t i, int32_t j) { return p[size_t(i)] > p[size_t(j)]; });
            double sum = 0;
            for (int j = 0; j < a.k; ++j)
                sum += p[size_t(order[size_t(j)])];
            for (int j = 0; j < a.k; ++j) {
                const int32_t e = order[size_t(j)];
                if (a.topkIds)
                    a.topkIds->i32()[t * a.k + j] = e;
                if (a.topkWeights)
                    a.topkWeights->f32()[t * a.k + j] = a.renormalize ? float(p[size_t(e)] / sum) : p[size_t(e)];
            }
        }
    }

    void expertFfn(const Tensor& x, const Tensor& topkIds, const Tensor& topkWeights,
                   const std::vector<ExpertWeights>& experts, Tensor& out) override
    {
        const int64_t T = x.dim(0), D = x.dim(1), k = topkIds.dim(1);
        out.fill(0.f);
        for (int64_t t = 0; t < T; ++t) {
            Tensor xt = x.rows(t, t + 1);
            for (int64_t j = 0; j < k; ++j) {
                const int32_t e = topkIds.i32()[t * k + j];
                ARCHLENS_ASSERT(e >= 0 && size_t(e) < experts.size());
                const ExpertWeights& ew = experts[size_t(e)];
                const int64_t I = ew.gate->dim(0);
                Tensor g = Tensor::empty({1, I}), u = Tensor::empty({1, I}), o = Tensor::empty({1, D});
                linear(xt, *ew.gate, nullptr, g);
                linear(xt, *ew.up, nullptr, u);
                for (int64_t i = 0; i < I; ++i)
                    g.f32()[i] = siluf(g.f32()[i]) * u.f32()[i];
                linear(g, *ew.down, nullptr, o);
                const float wgt = topkWeights.f32()[t * k + j];
                for (int64_t d = 0; d < D; ++d)
                    out.f32()[t * D + d] += wgt * o.f32()[d];
            }
        }
    }

    int32_t sample(const Tensor& logits, const SamplingParams& params, uint64_t& rngState) override
    {
        return sampleFromLogits(logits.f32(), logits.numel(), params.temperature, params.topK, params.topP, rngState);
    }
};

} // namespace

const char* opName(Op op)
{
    static const char* names[] = {"linear", "embedding", "rms_norm", "layer_norm", "add", "mul", "silu", "gelu",
                                  "causal_conv1d", "causal_conv1d_step", "selective_scan", "selective_scan_step",
                                  "rotary", "attention", "router_topk", "expert_ffn", "sample"};
    static_assert(sizeof(names) / sizeof(names[0]) == size_t(Op::Count));
    return op == Op::Count ? "?" : names[size_t(op)];
}

std::unique_ptr<Backend> makeCpuReferenceBackend() { return std::make_unique<CpuReferenceBackend>(); }

} // namespace archlens
