// LayerNorm, one block per row, two passes (mean, then variance) in double as the CPU
// reference (core/ops/norm_row.cpp) does: y = (x - mean) / sqrt(var + eps) ⊙ w + b.
#include "common.cuh"
#include "kernels.h"

namespace archlens::cuda {

namespace {

__global__ void layerNormKernel(const float* __restrict__ x, const float* __restrict__ w,
                                const float* __restrict__ b, float eps, int64_t D, float* y)
{
    const float* xr = x + blockIdx.x * D;
    float* yr = y + blockIdx.x * D;
    double s = 0;
    for (int64_t i = threadIdx.x; i < D; i += blockDim.x)
        s += xr[i];
    const double mean = blockSumD(s) / double(D);
    double v = 0;
    for (int64_t i = threadIdx.x; i < D; i += blockDim.x)
        v += (xr[i] - mean) * (xr[i] - mean);
    const double var = blockSumD(v) / double(D);
    const float inv = float(1.0 / sqrt(var + eps));
    for (int64_t i = threadIdx.x; i < D; i += blockDim.x)
        yr[i] = float(xr[i] - mean) * inv * w[i] + (b ? b[i] : 0.f);
}

} // namespace

void launchLayerNorm(const float* x, const float* w, const float* b, float eps, int64_t T, int64_t D, float* y,
                     cudaStream_t stream)
{
    if (T <= 0 || D <= 0)
        return;
    layerNormKernel<<<unsigned(T), D >= 1024 ? 512 : 128, 0, stream>>>(x, w, b, eps, D, y);
}

} // namespace archlens::cuda
