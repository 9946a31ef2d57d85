// The fast CPU kernels' own maths, per instruction set (each forced, skipped with the reason
// where this CPU lacks it): exp against glibc's expf over a sweep of the whole float range,
// softplus and SiLU against the reference formulas (ops/math.h), and the blocked SGEMM against
// a double-precision product on odd sizes, every layout and every weight dtype, with a
// forward error bound that grows with K.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include <random>

#include <fmt/format.h>

#include "backends/cpu_fast_dispatch.h"
#include "backends/cpu_gemm.h"
#include "base/thread_pool.h"
#include "ops/math.h"
#include "tensor/dtype.h"

using namespace archlens;
using namespace archlens::fastcpu;

namespace {

// Distance in units in the last place between two finite floats of the same sign.
double ulpDistance(float a, float b)
{
    if (a == b)
        return 0;
    int32_t ia, ib;
    std::memcpy(&ia, &a, 4);
    std::memcpy(&ib, &b, 4);
    if ((ia < 0) != (ib < 0))
        return INFINITY;
    return std::fabs(double(ia) - double(ib));
}

class CpuKernels : public ::testing::TestWithParam<Isa> {
protected:
    void SetUp() override
    {
        k = kernelsFor(GetParam());
        if (!k)
            GTEST_SKIP() << "this CPU (or build) has no " << isaName(GetParam()) << " kernels";
    }
    const Kernels* k = nullptr;
};

TEST_P(CpuKernels, ExpWithinTwoUlpOfExpf)
{
    // every 61st float bit pattern between -104 and 89: about 30 million values in all
    std::vector<float> xs;
    for (float lo : { 0.f, -0.f }) {
        const float hi = std::signbit(lo) ? -104.f : 89.f;
        uint32_t a, b;
        std::memcpy(&a, &lo, 4);
        std::memcpy(&b, &hi, 4);
        for (uint32_t i = a; i <= b; i += 61) {
            float v;
            std::memcpy(&v, &i, 4);
            xs.push_back(v);
        }
    }
    std::vector<float> ys(xs.size());
    k->exp(xs.data(), ys.data(), int64_t(xs.size()));
    double worst = 0;
    float worstX = 0;
    for (size_t i = 0; i < xs.size(); ++i) {
        const float want = std::exp(xs[i]);
        double d;
        if (want < std::numeric_limits<float>::min()) // denormal results: absolute error
            d = std::fabs(double(ys[i]) - double(want)) / double(std::numeric_limits<float>::denorm_min());
        else if (std::isinf(want))
            d = std::isinf(ys[i]) ? 0 : INFINITY;
        else
            d = ulpDistance(ys[i], want);
        if (d > worst) {
            worst = d;
            worstX = xs[i];
        }
    }
    EXPECT_LE(worst, 2.0) << "worst at x = " << worstX;
}

TEST_P(CpuKernels, ExpSpecialValues)
{
    const float inf = std::numeric_limits<float>::infinity();
    const float nan = std::numeric_limits<float>::quiet_NaN();
    std::vector<float> xs = { 0.f, -0.f, 1.f, -inf, inf, nan, 89.f, 1000.f, -104.f, -1000.f, 88.72f, -87.33f, -103.f };
    std::vector<float> ys(xs.size());
    for (size_t n = 0; n <= xs.size(); ++n) { // every tail length
        std::fill(ys.begin(), ys.end(), 7.f);
        k->exp(xs.data(), ys.data(), int64_t(n));
        for (size_t i = 0; i < xs.size(); ++i) {
            if (i >= n) {
                EXPECT_EQ(ys[i], 7.f) << "wrote past n = " << n;
                continue;
            }
            const float want = std::exp(xs[i]);
            if (std::isnan(want))
                EXPECT_TRUE(std::isnan(ys[i])) << xs[i];
            else if (want < std::numeric_limits<float>::min())
                EXPECT_NEAR(ys[i], want, 2 * std::numeric_limits<float>::denorm_min()) << xs[i];
            else
                EXPECT_LE(ulpDistance(ys[i], want), 2.0) << xs[i] << " gave " << ys[i] << ", expf " << want;
        }
    }
}

TEST_P(CpuKernels, SoftplusAndSiluMatchTheReference)
{
    std::vector<float> xs;
    for (float v = -120.f; v <= 120.f; v += 0.00731f)
        xs.push_back(v);
    for (float v : { 0.f, -0.f, 20.f, 20.000002f, 19.999998f, 1e-30f, -1e-30f, 1e30f, -1e30f })
        xs.push_back(v);
    std::vector<float> sp(xs.size()), si(xs.size());
    k->softplus(xs.data(), sp.data(), int64_t(xs.size()));
    k->silu(xs.data(), si.data(), int64_t(xs.size()));
    double worstSp = 0, worstSi = 0;
    for (size_t i = 0; i < xs.size(); ++i) {
        const float wantSp = softplusf(xs[i]), wantSi = siluf(xs[i]);
        // relative error, with an absolute floor where the value itself underflows
        worstSp = std::max(worstSp, std::fabs(double(sp[i]) - wantSp) / std::max(1e-30, std::fabs(double(wantSp))));
        worstSi = std::max(worstSi, std::fabs(double(si[i]) - wantSi) / std::max(1e-30, std::fabs(double(wantSi))));
    }
    EXPECT_LE(worstSp, 5e-7);
    EXPECT_LE(worstSi, 5e-7);
    const float nan = std::numeric_limits<float>::quiet_NaN();
    float out = 0;
    k->softplus(&nan, &out, 1);
    EXPECT_TRUE(std::isnan(out));
}

TEST_P(CpuKernels, TablesAreConsistent)
{
    EXPECT_EQ(k->isa, GetParam());
    EXPECT_STREQ(k->name, isaName(GetParam()));
    EXPECT_GE(k->lanes, 1);
}


// ---- SGEMM ----

struct GemmCase {
    int64_t M, N, K;
};

// Operands stored with padded leading dimensions; B in F32, F16 or BF16 (its widened values
// kept for the double-precision reference).
struct GemmProblem {
    GemmArgs g;
    std::vector<float> a, c, c0, bWide;
    std::vector<uint16_t> bHalf;
    std::vector<float> bF32;

    GemmProblem(GemmCase gc, bool transA, bool transB, GemmBType type, bool accumulate, std::mt19937& rng)
    {
        std::normal_distribution<float> d(0.f, 1.f);
        g.M = gc.M;
        g.N = gc.N;
        g.K = gc.K;
        g.transA = transA;
        g.transB = transB;
        g.bType = type;
        g.accumulate = accumulate;
        const int64_t aRows = transA ? gc.K : gc.M, aCols = transA ? gc.M : gc.K;
        const int64_t bRows = transB ? gc.N : gc.K, bCols = transB ? gc.K : gc.N;
        g.lda = aCols + 3;
        g.ldb = bCols + 5;
        g.ldc = gc.N + 2;
        a.resize(size_t(aRows * g.lda));
        for (float& v : a)
            v = d(rng);
        bWide.resize(size_t(bRows * g.ldb));
        bHalf.resize(bWide.size());
        bF32.resize(bWide.size());
        for (size_t i = 0; i < bWide.size(); ++i) {
            const float v = d(rng);
            if (type == GemmBType::F16) {
                bHalf[i] = f32ToF16(v);
                bWide[i] = f16ToF32(bHalf[i]);
            } else if (type == GemmBType::BF16) {
                bHalf[i] = f32ToBf16(v);
                bWide[i] = bf16ToF32(bHalf[i]);
            } else {
                bF32[i] = bWide[i] = v;
            }
        }
        g.a = a.data();
        g.b = type == GemmBType::F32 ? static_cast<const void*>(bF32.data()) : bHalf.data();
        c.resize(size_t(std::max<int64_t>(1, gc.M) * g.ldc));
        for (float& v : c)
            v = d(rng);
        c0 = c;
        g.c = c.data();
    }
    double A(int64_t i, int64_t k) const { return g.transA ? a[size_t(k * g.lda + i)] : a[size_t(i * g.lda + k)]; }
    double B(int64_t k, int64_t j) const
    {
        return g.transB ? bWide[size_t(j * g.ldb + k)] : bWide[size_t(k * g.ldb + j)];
    }
    // Every element within 2·K·ε·Σ|a||b| (+ the accumulated C's rounding) of the exact
    // product; elements outside the product (padding) untouched. Returns failures.
    int check() const
    {
        const double eps = std::numeric_limits<float>::epsilon();
        int bad = 0;
        for (int64_t i = 0; i < g.M; ++i)
            for (int64_t j = 0; j < g.ldc; ++j) {
                const size_t at = size_t(i * g.ldc + j);
                if (j >= g.N) {
                    bad += c[at] != c0[at];
                    continue;
                }
                double want = g.accumulate ? c0[at] : 0.0, mag = g.accumulate ? std::fabs(c0[at]) : 0.0;
                for (int64_t k = 0; k < g.K; ++k) {
                    want += A(i, k) * B(k, j);
                    mag += std::fabs(A(i, k) * B(k, j));
                }
                const double tol = 2.0 * double(g.K + 1) * eps * mag + 1e-30;
                if (!(std::fabs(c[at] - want) <= tol)) {
                    if (bad < 5)
                        ADD_FAILURE() << fmt::format("C[{},{}] = {} want {} (tolerance {})", i, j, c[at], want, tol);
                    ++bad;
                }
            }
        return bad;
    }
};

const char* typeName(GemmBType t)
{
    return t == GemmBType::F32 ? "F32" : t == GemmBType::F16 ? "F16" : "BF16";
}

// Odd sizes around every blocking edge: the decode GEMV (M = 1) and the few-rows path
// (M ≤ 4), M just past it, K = 1, K past one KC slice (256) and large K, M past MC (128),
// N past NC (512), N = 1.
const GemmCase kGemmCases[] = { { 1, 1, 1 }, { 1, 37, 5 }, { 1, 70, 300 }, { 3, 100, 1 }, { 4, 129, 31 },
    { 5, 17, 33 }, { 13, 70, 257 }, { 130, 65, 19 }, { 7, 600, 3 }, { 2, 33, 2000 }, { 9, 1, 40 }, { 64, 64, 64 },
    { 0, 5, 5 }, { 6, 5, 0 } };

TEST_P(CpuKernels, GemmMatchesDoublePrecisionOnOddSizesLayoutsAndDtypes)
{
    std::mt19937 rng(7);
    std::vector<float> scratch(static_cast<size_t>(kGemmScratchFloats));
    for (GemmCase gc : kGemmCases)
        for (bool transA : { false, true })
            for (bool transB : { true, false })
                for (GemmBType type : { GemmBType::F32, GemmBType::F16, GemmBType::BF16 })
                    for (bool acc : { false, true }) {
                        SCOPED_TRACE(fmt::format("M={} N={} K={} transA={} transB={} B={} accumulate={}", gc.M, gc.N,
                            gc.K, transA, transB, typeName(type), acc));
                        GemmProblem p(gc, transA, transB, type, acc, rng);
                        k->gemm(p.g, 0, gc.M, 0, gc.N, scratch.data());
                        ASSERT_EQ(p.check(), 0);
                    }
}

// The same product computed in blocks (as threads split it) is bit-identical to the whole.
TEST_P(CpuKernels, GemmBlocksGiveTheSameBits)
{
    std::mt19937 rng(11);
    std::vector<float> scratch(static_cast<size_t>(kGemmScratchFloats));
    for (GemmCase gc : { GemmCase { 1, 300, 70 }, GemmCase { 3, 130, 40 }, GemmCase { 150, 200, 300 } })
        for (bool transB : { true, false }) {
            SCOPED_TRACE(fmt::format("M={} N={} K={} transB={}", gc.M, gc.N, gc.K, transB));
            GemmProblem whole(gc, false, transB, GemmBType::F32, false, rng);
            GemmProblem parts = whole;
            parts.g.a = parts.a.data();
            parts.g.b = parts.bF32.data();
            parts.g.c = parts.c.data();
            k->gemm(whole.g, 0, gc.M, 0, gc.N, scratch.data());
            const int64_t mSplit = gc.M / 3, nSplit = 64;
            k->gemm(parts.g, 0, mSplit, 0, nSplit, scratch.data());
            k->gemm(parts.g, 0, mSplit, nSplit, gc.N, scratch.data());
            k->gemm(parts.g, mSplit, gc.M, 0, gc.N, scratch.data());
            EXPECT_EQ(std::memcmp(whole.c.data(), parts.c.data(), whole.c.size() * sizeof(float)), 0);
        }
}

// Every F16 bit pattern goes through the kernels' widening exactly as f16ToF32 does
// (subnormals, infinities, NaN included; -0 sums to +0), in the GEMV path (B by rows) and the packed one.
TEST_P(CpuKernels, GemmWidensEveryHalfExactly)
{
    std::vector<uint16_t> halves(65536);
    for (size_t i = 0; i < halves.size(); ++i)
        halves[i] = uint16_t(i);
    std::vector<float> scratch(static_cast<size_t>(kGemmScratchFloats)), c(halves.size());
    const float one = 1.f;
    for (bool transB : { true, false }) {
        GemmArgs g;
        g.M = 1;
        g.N = int64_t(halves.size());
        g.K = 1;
        g.a = &one;
        g.lda = 1;
        g.b = halves.data();
        g.ldb = transB ? 1 : g.N;
        g.transB = transB;
        g.bType = GemmBType::F16;
        g.c = c.data();
        g.ldc = g.N;
        k->gemm(g, 0, 1, 0, g.N, scratch.data());
        int bad = 0;
        for (size_t i = 0; i < halves.size(); ++i) {
            const float want = f16ToF32(halves[i]);
            // a sum starting from +0 turns -0 into +0, as in any BLAS; every other value keeps its bits
            if (std::isnan(want) ? !std::isnan(c[i]) : (want != 0.f && std::memcmp(&want, &c[i], 4) != 0) || c[i] != want)
                ++bad;
        }
        EXPECT_EQ(bad, 0) << "transB=" << transB;
    }
}

// sgemm over a pool: the same bits for 1, 2 and 3 threads (the split never changes an
// element's summation order), and right.
TEST_P(CpuKernels, SgemmOverThreadsIsReproducible)
{
    std::mt19937 rng(5);
    for (GemmCase gc : { GemmCase { 1, 1000, 300 }, GemmCase { 200, 40, 100 }, GemmCase { 100, 300, 200 } }) {
        SCOPED_TRACE(fmt::format("M={} N={} K={}", gc.M, gc.N, gc.K));
        GemmProblem base(gc, false, true, GemmBType::F32, false, rng);
        std::vector<std::vector<float>> results;
        for (int threads : { 1, 2, 3 }) {
            GemmProblem p = base;
            p.g.a = p.a.data();
            p.g.b = p.bF32.data();
            p.g.c = p.c.data();
            ThreadPool pool(threads);
            sgemm(p.g, &pool, k);
            EXPECT_EQ(p.check(), 0);
            results.push_back(p.c);
        }
        EXPECT_EQ(results[0], results[1]);
        EXPECT_EQ(results[0], results[2]);
    }
}

INSTANTIATE_TEST_SUITE_P(Isa, CpuKernels, ::testing::Values(Isa::Scalar, Isa::Avx2, Isa::Avx512),
    [](const ::testing::TestParamInfo<Isa>& p) { return std::string(isaName(p.param)); });

TEST(CpuKernelDispatch, ScalarIsAlwaysThereAndTheBestIsAvailable)
{
    const auto all = availableIsas();
    ASSERT_FALSE(all.empty());
    EXPECT_EQ(all.front(), Isa::Scalar);
    EXPECT_NE(kernelsFor(bestIsa()), nullptr);
}

} // namespace
