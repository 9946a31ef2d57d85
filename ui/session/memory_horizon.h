// Memory horizon: for each channel c and source token s, how many tokens pass before what
// token s wrote into the state decays below ε of its size. What s wrote into h[c, n] is
// multiplied by exp(A[c,n]·Δ_u[c]) at every later token u, so after t−s tokens it is scaled by
// exp(A[c,n]·Σ_{u=s+1..t} Δ_u[c]); the slowest state dimension (A closest to zero) sets the
// channel's horizon. When the run ends first, the horizon is only known to be at least
// T−1−s (censored). Δ spikes (Δ_s[c] above m× the channel's median) mark resets: large Δ
// lets the token in and wipes what was there. Interim: the runtime's core/analysis version
// replaces this when it lands.
#pragma once

#include <vector>

#include "session/trace_model.h"

namespace archlens::ui {

struct MemoryHorizon {
    int64_t tokens = 0, channels = 0;
    float epsilon = 0.01f, spikeFactor = 5.f;
    ProbeSeries horizon;    // (T, E) tokens until below ε; NaN when censored (still remembered)
    std::vector<std::pair<int64_t, int64_t>> spikes; // (token, channel)
};

// Empty (tokens == 0) when the layer lacks Δ or A.
MemoryHorizon computeMemoryHorizon(const TraceModel& m, int layer, float epsilon = 0.01f, float spikeFactor = 5.f);

} // namespace archlens::ui
