// Finite-difference helpers shared by the backward-pass tests: random vectors, dot
// products, and a central-difference check of an analytic gradient (double precision).
#pragma once

#include <algorithm>
#include <cmath>
#include <functional>
#include <random>
#include <vector>

#include <gtest/gtest.h>

namespace archlens::train::test {

using Vec = std::vector<double>;

inline Vec randVec(size_t n, std::mt19937_64& rng, double scale = 1.0)
{
    std::normal_distribution<double> d(0.0, scale);
    Vec v(n);
    for (auto& x : v)
        x = d(rng);
    return v;
}

inline double dot(const Vec& a, const Vec& b)
{
    double s = 0;
    for (size_t i = 0; i < a.size(); ++i)
        s += a[i] * b[i];
    return s;
}

// Compares analytic gradient `grad` of loss() w.r.t. `param` with central differences.
inline void checkGrad(const char* what, Vec& param, const Vec& grad, const std::function<double()>& loss,
                      double tol = 1e-6)
{
    ASSERT_EQ(param.size(), grad.size()) << what;
    double maxErr = 0, maxRef = 0;
    const double h = 1e-6;
    for (size_t i = 0; i < param.size(); ++i) {
        const double keep = param[i];
        param[i] = keep + h;
        const double lp = loss();
        param[i] = keep - h;
        const double lm = loss();
        param[i] = keep;
        const double fd = (lp - lm) / (2 * h);
        maxErr = std::max(maxErr, std::fabs(fd - grad[i]));
        maxRef = std::max(maxRef, std::fabs(fd));
    }
    EXPECT_LT(maxErr, tol * std::max(1.0, maxRef)) << what << ": max |fd − analytic| " << maxErr << " (max |fd| "
                                                   << maxRef << ")";
}

} // namespace archlens::train::test
