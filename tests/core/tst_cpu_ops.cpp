// CPU reference ops: the chunk and step forms agree, and each op matches a direct
// evaluation of its formula on small odd-sized inputs.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "backends/backend.h"
#include "ops/math.h"
#include "test_support.h"

using namespace archlens;
using archlens::test::relError;

namespace {

Tensor randn(const Shape& shape, std::mt19937& rng, float scale = 1.f)
{
    std::normal_distribution<float> d(0.f, scale);
    Tensor t = Tensor::empty(shape);
    for (float& v : t.span())
        v = d(rng);
    return t;
}

class CpuOps : public ::testing::Test {
protected:
    std::unique_ptr<Backend> be = makeCpuReferenceBackend();
    std::mt19937 rng{1234};
};

TEST_F(CpuOps, LinearMatchesDirectSum)
{
    Tensor x = randn({5, 7}, rng), w = randn({3, 7}, rng), b = randn({3}, rng), y = Tensor::empty({5, 3});
    be->linear(x, w, &b, y);
    for (int t = 0; t < 5; ++t)
        for (int o = 0; o < 3; ++o) {
            double acc = b.f32()[o];
            for (int i = 0; i < 7; ++i)
                acc += double(x.f32()[t * 7 + i]) * w.f32()[o * 7 + i];
            EXPECT_NEAR(y.f32()[t * 3 + o], acc, 1e-5);
        }
}

TEST_F(CpuOps, EmbeddingRejectsOutOfRangeIds)
{
    Tensor table = randn({4, 3}, rng), out = Tensor::empty({1, 3});
    EXPECT_THROW(be->embedding({4}, table, out), Error);
    EXPECT_THROW(be->embedding({-1}, table, out), Error);
    be->embedding({2}, table, out);
    EXPECT_EQ(out.f32()[1], table.f32()[2 * 3 + 1]);
}

TEST_F(CpuOps, ConvChunkEqualsSteps)
{
    const int64_t T = 9, E = 5, K = 4;
    Tensor x = randn({T, E}, rng), w = randn({E, K}, rng), b = randn({E}, rng);
    Tensor hist = Tensor::zeros({E, K - 1}), y = Tensor::empty({T, E});
    be->causalConv1d(x, w, &b, hist, y);
    // direct formula with zero padding
    for (int64_t t = 0; t < T; ++t)
        for (int64_t c = 0; c < E; ++c) {
            double acc = b.f32()[c];
            for (int64_t k = 0; k < K; ++k) {
                const int64_t src = t - (K - 1) + k;
                if (src >= 0)
                    acc += double(w.f32()[c * K + k]) * x.f32()[src * E + c];
            }
            EXPECT_NEAR(y.f32()[t * E + c], acc, 1e-5);
        }
    Tensor hist2 = Tensor::zeros({E, K - 1}), ys = Tensor::empty({1, E});
    for (int64_t t = 0; t < T; ++t) {
        Tensor xt = x.rows(t, t + 1);
        be->causalConv1dStep(xt, w, &b, hist2, ys);
        EXPECT_LE(relError(ys, y.rows(t, t + 1)), 1e-6);
    }
    EXPECT_TRUE(test::bitEqual(hist, hist2));
}

TEST_F(CpuOps, ConvChunksContinueAcrossCalls)
{
    const int64_t T = 7, E = 3, K = 3;
    Tensor x = randn({T, E}, rng), w = randn({E, K}, rng);
    Tensor h1 = Tensor::zeros({E, K - 1}), y = Tensor::empty({T, E});
    be->causalConv1d(x, w, nullptr, h1, y);
    Tensor h2 = Tensor::zeros({E, K - 1}), ya = Tensor::empty({2, E}), yb = Tensor::empty({T - 2, E});
    be->causalConv1d(x.rows(0, 2), w, nullptr, h2, ya);
    be->causalConv1d(x.rows(2, T), w, nullptr, h2, yb);
    EXPECT_LE(relError(ya, y.rows(0, 2)), 1e-6);
    EXPECT_LE(relError(yb, y.rows(2, T)), 1e-6);
}

TEST_F(CpuOps, ScanChunkEqualsStepsAndFormula)
{
    const int64_t T = 6, E = 5, N = 3;
    Tensor x = randn({T, E}, rng), dt = randn({T, E}, rng), bias = randn({E}, rng, 0.5f);
    Tensor A = Tensor::empty({E, N});
    for (int64_t i = 0; i < A.numel(); ++i)
        A.f32()[i] = -float(1 + i % N);
    Tensor B = randn({T, N}, rng), C = randn({T, N}, rng), D = randn({E}, rng), z = randn({T, E}, rng);
    Tensor state = Tensor::zeros({E, N}), y = Tensor::empty({T, E});
    Tensor delta = Tensor::empty({T, E}), states = Tensor::empty({T, E, N}), norms = Tensor::empty({T, E});
    Tensor yPre = Tensor::empty({T, E}), gate = Tensor::empty({T, E});
    ScanArgs a{&x, &dt, &bias, &A, &B, &C, &D, &z, &state, &y, &delta, &states, &norms, &yPre, &gate};
    be->selectiveScan(a);

    // direct formula, in double
    std::vector<double> h(size_t(E * N), 0.0);
    for (int64_t t = 0; t < T; ++t)
        for (int64_t c = 0; c < E; ++c) {
            const double v = double(dt.f32()[t * E + c]) + bias.f32()[c];
            const double dl = v > 20 ? v : std::log1p(std::exp(v));
            EXPECT_NEAR(delta.f32()[t * E + c], dl, 1e-5);
            double yy = 0, n2 = 0;
            for (int64_t n = 0; n < N; ++n) {
                double& hv = h[size_t(c * N + n)];
                hv = std::exp(dl * A.f32()[c * N + n]) * hv + dl * B.f32()[t * N + n] * x.f32()[t * E + c];
                yy += C.f32()[t * N + n] * hv;
                n2 += hv * hv;
                EXPECT_NEAR(states.f32()[(t * E + c) * N + n], hv, 1e-4);
            }
            yy += D.f32()[c] * x.f32()[t * E + c];
            EXPECT_NEAR(yPre.f32()[t * E + c], yy, 1e-4);
            EXPECT_NEAR(norms.f32()[t * E + c], std::sqrt(n2), 1e-4);
            const double zz = z.f32()[t * E + c];
            const double g = zz / (1 + std::exp(-zz));
            EXPECT_NEAR(gate.f32()[t * E + c], g, 1e-6);
            EXPECT_NEAR(y.f32()[t * E + c], yy * g, 1e-4);
        }

    Tensor state2 = Tensor::zeros({E, N}), ys = Tensor::empty({1, E});
    for (int64_t t = 0; t < T; ++t) {
        Tensor xt = x.rows(t, t + 1), dtt = dt.rows(t, t + 1), Bt = B.rows(t, t + 1), Ct = C.rows(t, t + 1),
               zt = z.rows(t, t + 1);
        ScanArgs s{&xt, &dtt, &bias, &A, &Bt, &Ct, &D, &zt, &state2, &ys};
        be->selectiveScanStep(s);
        EXPECT_LE(relError(ys, y.rows(t, t + 1)), 1e-5);
    }
    EXPECT_LE(relError(state2, state), 1e-5);
}

TEST_F(CpuOps, SoftplusIsLinearAboveThreshold)
{
    EXPECT_EQ(softplusf(25.f), 25.f);
    EXPECT_NEAR(softplusf(0.f), std::log(2.f), 1e-7);
    EXPECT_NEAR(softplusf(-30.f), std::exp(-30.f), 1e-18);
}

TEST_F(CpuOps, RmsAndLayerNorm)
{
    Tensor x = randn({3, 8}, rng), w = randn({8}, rng), b = randn({8}, rng), y = Tensor::empty({3, 8});
    be->rmsNorm(x, w, 1e-5f, y);
    for (int t = 0; t < 3; ++t) {
        double ms = 0;
        for (int i = 0; i < 8; ++i)
            ms += double(x.f32()[t * 8 + i]) * x.f32()[t * 8 + i];
        ms /= 8;
        for (int i = 0; i < 8; ++i)
            EXPECT_NEAR(y.f32()[t * 8 + i], w.f32()[i] * x.f32()[t * 8 + i] / std::sqrt(ms + 1e-5), 1e-5);
    }
    be->layerNorm(x, w, &b, 1e-5f, y);
    for (int t = 0; t < 3; ++t) {
        double mean = 0, var = 0;
        for (int i = 0; i < 8; ++i)
            mean += x.f32()[t * 8 + i];
        mean /= 8;
        for (int i = 0; i < 8; ++i)
            var += (x.f32()[t * 8 + i] - mean) * (x.f32()[t * 8 + i] - mean);
        var /= 8;
        for (int i = 0; i < 8; ++i)
            EXPECT_NEAR(y.f32()[t * 8 + i], (x.f32()[t * 8 + i] - mean) / std::sqrt(var + 1e-5) * w.f32()[i] + b.f32()[i],
                        1e-5);
    }
}

TEST_F(CpuOps, AttentionCausalGqaWithWeights)
{
    const int64_t T = 4, H = 4, Hkv = 2, Dh = 3;
    Tensor q = randn({T, H, Dh}, rng), k = randn({T, Hkv, Dh}, rng), v = randn({T, Hkv, Dh}, rng);
    Tensor out = Tensor::empty({T, H, Dh}), wts = Tensor::empty({H, T, T});
    AttentionArgs a{&q, &k, &v, &out, 0, 0.5f, 0, &wts};
    be->attention(a);
    for (int64_t h = 0; h < H; ++h)
        for (int64_t t = 0; t < T; ++t) {
            double sum = 0;
            for (int64_t s = 0; s < T; ++s) {
                const float wv = wts.f32()[(h * T + t) * T + s];
                if (s > t) {
                    EXPECT_EQ(wv, 0.f);
                }
                sum += wv;
            }
            EXPECT_NEAR(sum, 1.0, 1e-6);
        }
    // the first query sees only the first key: output = v[0] of its kv head
    for (int64_t h = 0; h < H; ++h)
        for (int64_t d = 0; d < Dh; ++d)
            EXPECT_NEAR(out.f32()[(0 * H + h) * Dh + d], v.f32()[(0 * Hkv + h / 2) * Dh + d], 1e-6);
}

TEST_F(CpuOps, RouterTopKRenormalises)
{
    Tensor logits = Tensor::fromVector({1, 4}, {1.f, 3.f, 2.f, 0.f});
    Tensor probs = Tensor::empty({1, 4}), ids = Tensor::empty({1, 2}, DType::I32), w = Tensor::empty({1, 2});
    RouterArgs r{&logits, 2, true, &probs, &ids, &w};
    be->routerTopK(r);
    EXPECT_EQ(ids.i32()[0], 1);
    EXPECT_EQ(ids.i32()[1], 2);
    EXPECT_NEAR(w.f32()[0] + w.f32()[1], 1.0, 1e-6);
    EXPECT_NEAR(w.f32()[0] / w.f32()[1], std::exp(1.0), 1e-5);
    r.renormalize = false;
    be->routerTopK(r);
    EXPECT_NEAR(w.f32()[0], probs.f32()[1], 1e-7);
}

TEST_F(CpuOps, SamplingGreedyAndSeeded)
{
    Tensor logits = Tensor::fromVector({5}, {0.1f, 2.f, 1.9f, -1.f, 0.f});
    uint64_t s = 0;
    EXPECT_EQ(be->sample(logits, {0.f, 0, 1.f}, s), 1);
    // top-k 1 is greedy whatever the temperature
    s = 7;
    EXPECT_EQ(be->sample(logits, {1.5f, 1, 1.f}, s), 1);
    // a seed reproduces its stream; top-p 0.5 keeps only the two leaders here
    std::vector<int32_t> a, b;
    uint64_t s1 = 42, s2 = 42;
    for (int i = 0; i < 50; ++i) {
        a.push_back(be->sample(logits, {1.f, 0, 0.5f}, s1));
        b.push_back(be->sample(logits, {1.f, 0, 0.5f}, s2));
    }
    EXPECT_EQ(a, b);
    for (int32_t id : a)
        EXPECT_TRUE(id == 1 || id == 2);
    EXPECT_NE(std::count(a.begin(), a.end(), 2), 0);
}

} // namespace
