#include "ops/norm_row.h"

#include <cmath>

namespace archlens {

void layerNormRow(const float* x, const float* w, const float* b, float eps, int64_t D, float* y)
{
    double mean = 0;
    for (int64_t i = 0; i < D; ++i)
        mean += x[i];
    mean /= double(D);
    double var = 0;
    for (int64_t i = 0; i < D; ++i)
        var += (x[i] - mean) * (x[i] - mean);
    var /= double(D);
    const float inv = float(1.0 / std::sqrt(var + eps));
    for (int64_t i = 0; i < D; ++i)
        y[i] = float(x[i] - mean) * inv * w[i] + (b ? b[i] : 0.f);
}

} // namespace archlens
