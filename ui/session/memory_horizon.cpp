#include "session/memory_horizon.h"

#include <algorithm>
#include <cmath>

namespace archlens::ui {

MemoryHorizon computeMemoryHorizon(const TraceModel& m, int layer, float epsilon, float spikeFactor)
{
    MemoryHorizon out;
    out.epsilon = epsilon;
    out.spikeFactor = spikeFactor;
    const ProbeSeries* ds = m.series(layer, Probe::SsmDelta);
    const std::vector<float>& A = m.A(layer);
    const int64_t E = m.dInner(), N = m.dState();
    if (!ds || ds->count() == 0 || A.size() != size_t(E * N) || ds->width() != E)
        return out;
    const int64_t T = ds->count();
    out.tokens = T;
    out.channels = E;
    if (T <= 0 || E <= 0)
        return out;
    const size_t tokens = size_t(T), channels = size_t(E);
    std::vector<float> H(tokens * channels);
    std::vector<double> cum(tokens + 1);
    std::vector<float> col(tokens);
    const double threshold = std::log(double(epsilon)); // negative
    for (int64_t c = 0; c < E; ++c) {
        float slow = -INFINITY; // A < 0: the slowest decay is the largest A
        for (int64_t n = 0; n < N; ++n)
            slow = std::max(slow, A[size_t(c * N + n)]);
        cum[0] = 0;
        for (int64_t t = 0; t < T; ++t) {
            col[size_t(t)] = ds->at(t, c);
            cum[size_t(t + 1)] = cum[size_t(t)] + double(col[size_t(t)]);
        }
        // decay from s to t: exp(slow * (cum[t+1] - cum[s+1])) < ε  <=>  cum[t+1] > cum[s+1] + threshold / slow
        const double need = slow < 0 ? threshold / double(slow) : INFINITY;
        for (int64_t s = 0; s < T; ++s) {
            const double target = cum[size_t(s + 1)] + need;
            const auto it = std::upper_bound(cum.begin() + s + 1, cum.end(), target);
            H[size_t(s * E + c)] = it == cum.end() ? NAN : float((it - cum.begin() - 1) - s);
        }
        std::vector<float> sorted = col;
        std::nth_element(sorted.begin(), sorted.begin() + long(T / 2), sorted.end());
        const float median = sorted[size_t(T / 2)];
        for (int64_t t = 0; t < T; ++t)
            if (col[size_t(t)] > spikeFactor * median)
                out.spikes.push_back({t, c});
    }
    out.horizon = ProbeSeries(E);
    out.horizon.append(H.data(), T);
    return out;
}

} // namespace archlens::ui
