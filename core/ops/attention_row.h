// One (head, query) row of causal attention, shared by the CPU backends: the reference
// loops over every row, the fast backend splits the rows over its threads. Scores are
// scaled dot products over the visible keys (causal, optionally a sliding window),
// softmax with the maximum subtracted, then the weighted sum of values.
#pragma once

#include <cstdint>

#include "backends/backend.h"

namespace archlens {

// scores: scratch of at least S = pastLength + T floats.
void attentionRow(const AttentionArgs& a, int64_t h, int64_t t, float* scores);

} // namespace archlens
