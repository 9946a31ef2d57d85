// The fast CPU kernels' own maths, per instruction set (each forced, skipped with the reason
// where this CPU lacks it): exp against glibc's expf over a sweep of the whole float range,
// softplus and SiLU against the reference formulas (ops/math.h).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "backends/cpu_fast_dispatch.h"
#include "ops/math.h"

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
