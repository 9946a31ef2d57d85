// One row of LayerNorm, shared by the CPU backends (the reference loops over rows, the
// fast backend splits rows over its threads): y = (x - mean) / sqrt(var + eps) ⊙ w + b,
// mean and biased variance accumulated in double.
#pragma once

#include <cstdint>

namespace archlens {

void layerNormRow(const float* x, const float* w, const float* b, float eps, int64_t D, float* y);

} // namespace archlens
