// RMSNorm, one block per row: y = w ⊙ x / sqrt(mean(x²) + eps). The sum of squares is kept in
// double, like the CPU reference, so long rows agree to F32 rounding.
#include "common.cuh"
#include "kernels.h"

namespace archlens::cuda {

namespace {

__global__ void rmsNormKernel(const float* __restrict__ x, const float* __restrict__ w, float eps, int64_t D,
                              float* y)
{
    const float* xr = x + blockIdx.x * D;
    float* yr = y + blockIdx.x * D;
    double ss = 0;
    for (int64_t i = threadIdx.x; i < D; i += blockDim.x)
        ss += double(xr[i]) * xr[i];
    ss = blockSumD(ss);
    const float inv = 1.0f / sqrtf(float(ss / double(D)) + eps);
    for (int64_t i = threadIdx.x; i < D; i += blockDim.x)
        yr[i] = w[i] * (xr[i] * inv);
}

} // namespace

void launchRmsNorm(const float* x, const float* w, float eps, int64_t T, int64_t D, float* y, cudaStream_t stream)
{
    if (T <= 0 || D <= 0)
        return;
    rmsNormKernel<<<unsigned(T), D >= 1024 ? 512 : 128, 0, stream>>>(x, w, eps, D, y);
}

} // namespace archlens::cuda
