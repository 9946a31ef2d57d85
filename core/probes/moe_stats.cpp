#include "probes/moe_stats.h"

#include <cmath>

namespace archlens {

Tensor routerEntropy(const Tensor& probs)
{
    const int64_t T = probs.dim(0), X = probs.dim(1);
    Tensor out = Tensor::empty({T});
    for (int64_t t = 0; t < T; ++t) {
        double h = 0;
        for (int64_t e = 0; e < X; ++e) {
            const double p = probs.f32()[t * X + e];
            if (p > 0)
                h -= p * std::log(p);
        }
        out.f32()[t] = float(h);
    }
    return out;
}

MoeRouterStats::MoeRouterStats(int64_t X)
    : experts(X)
    , picks(size_t(X), 0)
    , probSum(size_t(X), 0.0)
{
}

void MoeRouterStats::add(const Tensor& probs, const Tensor& topkIds)
{
    const int64_t T = probs.dim(0), X = probs.dim(1), k = topkIds.dim(1);
    ARCHLENS_ASSERT(X == experts && topkIds.dim(0) == T, "router stats: probs {} ids {} for X={}",
                    shapeToString(probs.shape()), shapeToString(topkIds.shape()), experts);
    for (int64_t t = 0; t < T; ++t) {
        for (int64_t e = 0; e < X; ++e)
            probSum[size_t(e)] += probs.f32()[t * X + e];
        for (int64_t j = 0; j < k; ++j)
            ++picks[size_t(topkIds.i32()[t * k + j])];
    }
    rows += T;
}

void MoeRouterStats::merge(const MoeRouterStats& other)
{
    ARCHLENS_ASSERT(other.experts == experts, "router stats of {} and {} experts", experts, other.experts);
    rows += other.rows;
    for (size_t e = 0; e < picks.size(); ++e) {
        picks[e] += other.picks[e];
        probSum[e] += other.probSum[e];
    }
}

Tensor MoeRouterStats::expertLoad() const
{
    Tensor out = Tensor::empty({experts}, DType::I64);
    for (int64_t e = 0; e < experts; ++e)
        out.i64()[e] = picks[size_t(e)];
    return out;
}

double MoeRouterStats::loadBalancingLoss() const
{
    if (rows == 0)
        return 0.0;
    // mean over rows of the one-hot picks, summed over slots, times mean probability
    double sum = 0;
    for (int64_t e = 0; e < experts; ++e)
        sum += (double(picks[size_t(e)]) / double(rows)) * (probSum[size_t(e)] / double(rows));
    return sum * double(experts);
}

} // namespace archlens
