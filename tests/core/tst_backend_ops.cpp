// Every backend against the CPU reference, op by op (after llama.cpp's test-backend-ops):
// one small case table per op family, on small and odd sizes (channels that are not a
// multiple of any vector width, T = 1, N = 1, K = 1..4, zero lengths), with a tolerance
// per op. Parameterised over backend factories (tests/support/backend_under_test.h): every
// instruction-set level of the fast CPU backend, forced, with 1 and 3 threads, and CUDA.
// A backend that cannot run here, or that lacks an op, is a skip with the reason.
#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <cstring>
#include <random>

#include <fmt/format.h>

#include "backend_under_test.h"
#include "ops/math.h"
#include "test_support.h"

using namespace archlens;
using archlens::test::BackendUnderTest;
using archlens::test::relError;

namespace {

Tensor randn(const Shape& shape, std::mt19937& rng, float scale = 1.f, float shift = 0.f)
{
    std::normal_distribution<float> d(0.f, scale);
    Tensor t = Tensor::empty(shape);
    for (float& v : t.span())
        v = d(rng) + shift;
    return t;
}

// Per-op tolerances (max abs error over max abs value, test_support.h). Elementwise ops
// differ by an ulp or two of the vector exp; reductions and GEMMs by summation order; the
// scan by both, accumulated over tokens.
constexpr double kTolExact = 0;
constexpr double kTolElementwise = 1e-6;
constexpr double kTolReduction = 2e-6;
constexpr double kTolGemm = 1e-5;
constexpr double kTolScan = 1e-5;

class BackendOps : public ::testing::TestWithParam<BackendUnderTest> {
protected:
    void SetUp() override
    {
        std::string why;
        be = GetParam().make(why);
        if (!be)
            GTEST_SKIP() << GetParam().label << " cannot run here: " << why;
    }
    void requireOp(Op op)
    {
        if (!be->supports(op))
            GTEST_SKIP() << be->description() << " does not support " << opName(op);
    }

    std::shared_ptr<Backend> be;
    std::unique_ptr<Backend> ref = makeCpuReferenceBackend();
    std::mt19937 rng { 20240611 };
};

// Odd sizes around the fast GEMM's blocking: decode's one row and the few-rows path (T ≤ 4),
// K = 1, K past one 256-deep slice, T past a 128-row block, N past a 512-column block, and
// every weight dtype the backend takes as is (against the reference on the widened weights).
// The tolerance grows with K: summation order differs, each product rounds once.
TEST_P(BackendOps, Linear)
{
    requireOp(Op::Linear);
    struct Case {
        int64_t T, in, out;
    };
    for (Case c : { Case { 1, 1, 1 }, Case { 1, 7, 5 }, Case { 3, 17, 33 }, Case { 0, 8, 4 }, Case { 5, 64, 100 },
             Case { 33, 130, 257 }, Case { 2, 300, 1 }, Case { 1, 700, 70 }, Case { 4, 1, 9 }, Case { 6, 1, 130 },
             Case { 131, 19, 67 }, Case { 9, 600, 515 }, Case { 1, 2049, 33 } })
        for (DType dtype : { DType::F32, DType::F16, DType::BF16 })
            for (bool bias : { false, true }) {
                if (!be->acceptsWeightDType(dtype))
                    continue;
                SCOPED_TRACE(fmt::format("T={} in={} out={} bias={} W={}", c.T, c.in, c.out, bias, dtypeName(dtype)));
                Tensor x = randn({ c.T, c.in }, rng), w = randn({ c.out, c.in }, rng), b = randn({ c.out }, rng);
                Tensor wd = w.toDType(dtype);
                Tensor wWide = wd.toF32();
                Tensor y = Tensor::empty({ c.T, c.out }), want = Tensor::empty({ c.T, c.out });
                be->linear(x, wd, bias ? &b : nullptr, y);
                ref->linear(x, wWide, bias ? &b : nullptr, want);
                EXPECT_LE(relError(y, want), kTolGemm * std::max(1.0, std::sqrt(double(c.in) / 64.0)));
            }
}

TEST_P(BackendOps, Embedding)
{
    requireOp(Op::Embedding);
    Tensor table = randn({ 11, 5 }, rng);
    for (const std::vector<int32_t>& ids : { std::vector<int32_t> {}, { 0 }, { 10, 3, 3, 0 } }) {
        Tensor out = Tensor::empty({ int64_t(ids.size()), 5 }), want = Tensor::empty({ int64_t(ids.size()), 5 });
        be->embedding(ids, table, out);
        ref->embedding(ids, table, want);
        EXPECT_TRUE(test::bitEqual(out, want));
    }
    Tensor out = Tensor::empty({ 1, 5 });
    EXPECT_THROW(be->embedding({ 11 }, table, out), Error);
    EXPECT_THROW(be->embedding({ -1 }, table, out), Error);
}

TEST_P(BackendOps, Norms)
{
    requireOp(Op::RmsNorm);
    requireOp(Op::LayerNorm);
    struct Case {
        int64_t T, D;
    };
    for (Case c : { Case { 1, 1 }, Case { 3, 7 }, Case { 2, 17 }, Case { 4, 100 }, Case { 0, 8 }, Case { 5, 1537 } }) {
        SCOPED_TRACE(fmt::format("T={} D={}", c.T, c.D));
        Tensor x = randn({ c.T, c.D }, rng, 2.f, 0.5f), w = randn({ c.D }, rng), b = randn({ c.D }, rng);
        Tensor y = Tensor::empty({ c.T, c.D }), want = Tensor::empty({ c.T, c.D });
        be->rmsNorm(x, w, 1e-5f, y);
        ref->rmsNorm(x, w, 1e-5f, want);
        EXPECT_LE(relError(y, want), kTolReduction) << "rmsNorm";
        for (bool bias : { false, true }) {
            be->layerNorm(x, w, bias ? &b : nullptr, 1e-5f, y);
            ref->layerNorm(x, w, bias ? &b : nullptr, 1e-5f, want);
            EXPECT_LE(relError(y, want), kTolReduction) << "layerNorm bias=" << bias;
        }
    }
}

TEST_P(BackendOps, Elementwise)
{
    for (Op op : { Op::Add, Op::Mul, Op::Silu, Op::Gelu })
        requireOp(op);
    for (int64_t n : { 0, 1, 7, 8, 15, 16, 17, 33, 1000, 40000 }) {
        SCOPED_TRACE(fmt::format("n={}", n));
        Tensor a = randn({ n }, rng, 4.f), b = randn({ n }, rng, 4.f);
        if (n > 8) { // the far ends of SiLU's range
            a.f32()[0] = -90.f;
            a.f32()[1] = 90.f;
            a.f32()[2] = -20.f;
            a.f32()[3] = 0.f;
        }
        Tensor y = Tensor::empty({ n }), want = Tensor::empty({ n });
        be->add(a, b, y);
        ref->add(a, b, want);
        EXPECT_LE(relError(y, want), kTolExact) << "add";
        be->mul(a, b, y);
        ref->mul(a, b, want);
        EXPECT_LE(relError(y, want), kTolExact) << "mul";
        be->silu(a, y);
        ref->silu(a, want);
        EXPECT_LE(relError(y, want), kTolElementwise) << "silu";
        for (GeluKind k : { GeluKind::Erf, GeluKind::Tanh }) {
            be->gelu(a, y, k);
            ref->gelu(a, want, k);
            EXPECT_LE(relError(y, want), kTolElementwise) << "gelu";
        }
        // in place, as models call them
        Tensor c = a.clone();
        be->add(c, b, c);
        ref->add(a, b, want);
        EXPECT_LE(relError(c, want), kTolExact) << "add in place";
    }
}

TEST_P(BackendOps, CausalConv1dChunksAndSteps)
{
    requireOp(Op::CausalConv1d);
    requireOp(Op::CausalConv1dStep);
    for (int64_t K : { 1, 2, 3, 4 })
        for (int64_t E : { 1, 5, 17, 40 })
            for (bool bias : { false, true }) {
                SCOPED_TRACE(fmt::format("K={} E={} bias={}", K, E, bias));
                Tensor w = randn({ E, K }, rng), b = randn({ E }, rng);
                Tensor hist = randn({ E, K - 1 }, rng), histRef = hist.clone();
                // chunks of several lengths, one after another (0 and 1 included), then steps
                for (int64_t T : { 5, 0, 1, 2, 9 }) {
                    Tensor x = randn({ T, E }, rng), y = Tensor::empty({ T, E }), want = Tensor::empty({ T, E });
                    be->causalConv1d(x, w, bias ? &b : nullptr, hist, y);
                    ref->causalConv1d(x, w, bias ? &b : nullptr, histRef, want);
                    EXPECT_LE(relError(y, want), kTolReduction) << "T=" << T;
                    EXPECT_LE(relError(hist, histRef), kTolExact) << "history after T=" << T;
                }
                for (int s = 0; s < 3; ++s) {
                    Tensor x = randn({ 1, E }, rng), y = Tensor::empty({ 1, E }), want = Tensor::empty({ 1, E });
                    be->causalConv1dStep(x, w, bias ? &b : nullptr, hist, y);
                    ref->causalConv1dStep(x, w, bias ? &b : nullptr, histRef, want);
                    EXPECT_LE(relError(y, want), kTolReduction) << "step " << s;
                    EXPECT_LE(relError(hist, histRef), kTolExact) << "history after step " << s;
                }
            }
}

// All the tensors of one scan call, for one backend.
struct ScanSet {
    Tensor x, dt, dtBias, A, B, C, D, z, state, y, delta, states, stateNorm, yPre, gate;

    ScanArgs args(bool withBias, bool withD, bool withZ, bool probes)
    {
        ScanArgs a;
        a.x = &x;
        a.dt = &dt;
        a.dtBias = withBias ? &dtBias : nullptr;
        a.A = &A;
        a.B = &B;
        a.C = &C;
        a.D = withD ? &D : nullptr;
        a.z = withZ ? &z : nullptr;
        a.state = &state;
        a.y = &y;
        if (probes) {
            a.deltaOut = &delta;
            a.statesOut = &states;
            a.stateNormOut = &stateNorm;
            a.yPreGateOut = &yPre;
            a.gateOut = &gate;
        }
        return a;
    }
};

ScanSet makeScan(const Shape& tokenShape, int64_t T, int64_t E, int64_t N, std::mt19937& rng)
{
    ScanSet s;
    Shape te = tokenShape, tn = tokenShape;
    te.push_back(E);
    tn.push_back(N);
    s.x = randn(te, rng);
    s.dt = randn(te, rng, 1.f, -1.f);
    s.dtBias = randn({ E }, rng, 1.f, -2.f);
    s.A = randn({ E, N }, rng, 1.f);
    for (float& v : s.A.span())
        v = -std::exp(v); // A = −exp(A_log)
    s.B = randn(tn, rng);
    s.C = randn(tn, rng);
    s.D = randn({ E }, rng);
    s.z = randn(te, rng, 2.f);
    s.state = randn({ E, N }, rng);
    s.y = Tensor::empty(te);
    s.delta = Tensor::empty({ T, E });
    s.states = Tensor::empty({ T, E, N });
    s.stateNorm = Tensor::empty({ T, E });
    s.yPre = Tensor::empty({ T, E });
    s.gate = Tensor::empty({ T, E });
    return s;
}

ScanSet cloneScan(const ScanSet& s)
{
    ScanSet c;
    c.x = s.x.clone();
    c.dt = s.dt.clone();
    c.dtBias = s.dtBias.clone();
    c.A = s.A.clone();
    c.B = s.B.clone();
    c.C = s.C.clone();
    c.D = s.D.clone();
    c.z = s.z.clone();
    c.state = s.state.clone();
    c.y = Tensor::empty(s.y.shape());
    c.delta = Tensor::empty(s.delta.shape());
    c.states = Tensor::empty(s.states.shape());
    c.stateNorm = Tensor::empty(s.stateNorm.shape());
    c.yPre = Tensor::empty(s.yPre.shape());
    c.gate = Tensor::empty(s.gate.shape());
    return c;
}

void expectScanEqual(const ScanSet& got, const ScanSet& want, bool probes, bool withZ = true)
{
    EXPECT_LE(relError(got.y, want.y), kTolScan) << "y";
    EXPECT_LE(relError(got.state, want.state), kTolScan) << "final state";
    if (!probes)
        return;
    EXPECT_LE(relError(got.delta, want.delta), kTolElementwise) << "delta";
    EXPECT_LE(relError(got.states, want.states), kTolScan) << "states";
    EXPECT_LE(relError(got.stateNorm, want.stateNorm), kTolScan) << "state_norm";
    EXPECT_LE(relError(got.yPre, want.yPre), kTolScan) << "y before gate";
    if (withZ) { // without z there is no gate, and neither backend writes gateOut
        EXPECT_LE(relError(got.gate, want.gate), kTolElementwise) << "gate";
    }
}

TEST_P(BackendOps, SelectiveScan)
{
    requireOp(Op::SelectiveScan);
    struct Case {
        int64_t T, E, N;
    };
    // E across vector widths (1, 5, 16, 17, 33, 40), N = 1, odd N, N = 16, N beyond the
    // kernels' stack tiles (300), T across the kernels' 64-token chunks, T = 0 and 1.
    const Case cases[] = { { 1, 1, 1 }, { 0, 5, 4 }, { 1, 17, 16 }, { 3, 5, 1 }, { 7, 33, 16 }, { 9, 19, 3 },
        { 64, 40, 16 }, { 130, 24, 16 }, { 5, 300, 7 }, { 2, 3, 300 }, { 70, 16, 5 }, { 3, 1, 16 } };
    for (Case c : cases)
        for (int variant = 0; variant < 4; ++variant) {
            const bool withBias = variant != 1, withD = variant != 2, withZ = variant != 3;
            for (bool probes : { false, true }) {
                SCOPED_TRACE(fmt::format(
                    "T={} E={} N={} bias={} D={} z={} probes={}", c.T, c.E, c.N, withBias, withD, withZ, probes));
                ScanSet want = makeScan({ c.T }, c.T, c.E, c.N, rng);
                ScanSet got = cloneScan(want);
                ref->selectiveScan(want.args(withBias, withD, withZ, probes));
                be->selectiveScan(got.args(withBias, withD, withZ, probes));
                expectScanEqual(got, want, probes, withZ);
            }
        }
}

TEST_P(BackendOps, SelectiveScanChunksContinue)
{
    requireOp(Op::SelectiveScan);
    // 100 tokens in chunks of 37, 1 and 62 equal one reference call over all of them
    const int64_t T = 100, E = 21, N = 16;
    ScanSet want = makeScan({ T }, T, E, N, rng);
    ScanSet got = cloneScan(want);
    ref->selectiveScan(want.args(true, true, true, false));
    int64_t t0 = 0;
    for (int64_t len : { 37, 1, 62 }) {
        ScanSet part; // row views into `got`, so y lands in got.y
        part.x = got.x.rows(t0, t0 + len);
        part.dt = got.dt.rows(t0, t0 + len);
        part.dtBias = got.dtBias;
        part.A = got.A;
        part.B = got.B.rows(t0, t0 + len);
        part.C = got.C.rows(t0, t0 + len);
        part.D = got.D;
        part.z = got.z.rows(t0, t0 + len);
        part.state = got.state;
        part.y = got.y.rows(t0, t0 + len);
        be->selectiveScan(part.args(true, true, true, false));
        t0 += len;
    }
    EXPECT_LE(relError(got.y, want.y), kTolScan);
    EXPECT_LE(relError(got.state, want.state), kTolScan);
}

TEST_P(BackendOps, SelectiveScanStep)
{
    requireOp(Op::SelectiveScanStep);
    struct Case {
        int64_t E, N;
    };
    for (Case c :
        { Case { 1, 1 }, Case { 17, 16 }, Case { 40, 5 }, Case { 16, 16 }, Case { 3, 300 }, Case { 1536, 16 } })
        for (bool probes : { false, true })
            for (bool rank1 : { false, true }) { // the model passes (1, E); (E) is allowed too
                SCOPED_TRACE(fmt::format("E={} N={} probes={} x rank {}", c.E, c.N, probes, rank1 ? 1 : 2));
                const Shape tokenShape = rank1 ? Shape {} : Shape { 1 };
                ScanSet want = makeScan(tokenShape, 1, c.E, c.N, rng);
                ScanSet got = cloneScan(want);
                for (int s = 0; s < 3; ++s) { // a few steps, the state carried along
                    ref->selectiveScanStep(want.args(true, true, true, probes));
                    be->selectiveScanStep(got.args(true, true, true, probes));
                }
                expectScanEqual(got, want, probes);
            }
}

TEST_P(BackendOps, Rotary)
{
    requireOp(Op::Rotary);
    struct Case {
        int64_t T, H, Dh, rot, pos;
    };
    for (Case c :
        { Case { 1, 1, 2, 2, 0 }, Case { 5, 3, 8, 8, 7 }, Case { 4, 2, 10, 4, 100 }, Case { 0, 2, 4, 4, 0 } }) {
        SCOPED_TRACE(fmt::format("T={} H={} Dh={} rot={} pos={}", c.T, c.H, c.Dh, c.rot, c.pos));
        std::vector<float> invFreq(size_t(c.rot / 2));
        for (size_t i = 0; i < invFreq.size(); ++i)
            invFreq[i] = std::pow(10000.f, -2.f * float(i) / float(c.rot));
        Tensor x = randn({ c.T, c.H, c.Dh }, rng), want = x.clone();
        be->rotary(x, c.pos, c.rot, invFreq, 1.1f);
        ref->rotary(want, c.pos, c.rot, invFreq, 1.1f);
        EXPECT_LE(relError(x, want), kTolElementwise);
    }
}

TEST_P(BackendOps, Attention)
{
    requireOp(Op::Attention);
    struct Case {
        int64_t T, past, H, Hkv, Dh, window;
    };
    for (Case c : { Case { 1, 0, 1, 1, 4, 0 }, Case { 5, 0, 4, 2, 8, 0 }, Case { 3, 4, 4, 1, 6, 0 },
             Case { 6, 2, 2, 2, 5, 3 }, Case { 1, 9, 3, 3, 4, 0 } }) {
        SCOPED_TRACE(fmt::format("T={} past={} H={} Hkv={} Dh={} window={}", c.T, c.past, c.H, c.Hkv, c.Dh, c.window));
        const int64_t S = c.past + c.T;
        Tensor q = randn({ c.T, c.H, c.Dh }, rng), k = randn({ S, c.Hkv, c.Dh }, rng),
               v = randn({ S, c.Hkv, c.Dh }, rng);
        Tensor out = Tensor::empty({ c.T, c.H, c.Dh }), want = Tensor::empty({ c.T, c.H, c.Dh });
        Tensor wts = Tensor::empty({ c.H, c.T, S }), wantW = Tensor::empty({ c.H, c.T, S });
        AttentionArgs a { &q, &k, &v, &out, c.past, 1.f / std::sqrt(float(c.Dh)), c.window, &wts };
        AttentionArgs r { &q, &k, &v, &want, c.past, 1.f / std::sqrt(float(c.Dh)), c.window, &wantW };
        be->attention(a);
        ref->attention(r);
        EXPECT_LE(relError(out, want), kTolReduction);
        EXPECT_LE(relError(wts, wantW), kTolReduction);
    }
}

TEST_P(BackendOps, RouterExpertsAndSampling)
{
    requireOp(Op::RouterTopK);
    requireOp(Op::ExpertFfn);
    requireOp(Op::Sample);
    // small, and big enough that the fast backend splits the expert activations and the
    // per-token sums over its threads
    for (const auto [T, X, k, D, I] : { std::array<int64_t, 5> { 5, 6, 2, 7, 9 }, std::array<int64_t, 5> { 64, 4, 2, 300, 600 } }) {
    SCOPED_TRACE(fmt::format("T={} experts={} k={} D={} I={}", T, X, k, D, I));
    Tensor logits = randn({ T, X }, rng);
    Tensor probs = Tensor::empty({ T, X }), ids = Tensor::empty({ T, k }, DType::I32), w = Tensor::empty({ T, k });
    Tensor probsR = Tensor::empty({ T, X }), idsR = Tensor::empty({ T, k }, DType::I32), wR = Tensor::empty({ T, k });
    be->routerTopK({ &logits, int(k), true, &probs, &ids, &w });
    ref->routerTopK({ &logits, int(k), true, &probsR, &idsR, &wR });
    EXPECT_TRUE(test::bitEqual(ids, idsR));
    EXPECT_LE(relError(w, wR), kTolElementwise);
    EXPECT_LE(relError(probs, probsR), kTolElementwise);

    std::vector<Tensor> keep;
    std::vector<ExpertWeights> experts;
    for (int64_t e = 0; e < X; ++e) {
        keep.push_back(randn({ I, D }, rng));
        keep.push_back(randn({ D, I }, rng));
        keep.push_back(randn({ I, D }, rng));
    }
    for (int64_t e = 0; e < X; ++e)
        experts.push_back({ &keep[size_t(3 * e)], &keep[size_t(3 * e + 1)], &keep[size_t(3 * e + 2)] });
    Tensor x = randn({ T, D }, rng), out = Tensor::empty({ T, D }), outR = Tensor::empty({ T, D });
    be->expertFfn(x, idsR, wR, experts, out);
    ref->expertFfn(x, idsR, wR, experts, outR);
    EXPECT_LE(relError(out, outR), kTolGemm);
    }

    Tensor row = randn({ 50 }, rng);
    for (float temp : { 0.f, 0.7f }) {
        uint64_t s1 = 42, s2 = 42;
        for (int i = 0; i < 5; ++i)
            EXPECT_EQ(be->sample(row, { temp, 10, 0.9f }, s1), ref->sample(row, { temp, 10, 0.9f }, s2));
        EXPECT_EQ(s1, s2);
    }
}

TEST_P(BackendOps, ThreadSettingIsKept)
{
    const int before = be->threads();
    be->setThreads(2);
    if (be->name() == "cpu") {
        EXPECT_EQ(be->threads(), 2);
    }
    be->setThreads(before);
    EXPECT_EQ(be->threads(), before);
}

INSTANTIATE_TEST_SUITE_P(All, BackendOps, ::testing::ValuesIn(test::backendsUnderTest()),
    [](const ::testing::TestParamInfo<BackendUnderTest>& p) { return p.param.label; });

} // namespace
