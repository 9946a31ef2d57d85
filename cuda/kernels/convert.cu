// Helpers of the GEMM path (cuda_backend.cpp's linear): activations narrowed to the weights'
// half type for cublasGemmEx, and the bias added after the GEMM.
#include "common.cuh"
#include "kernels.h"

namespace archlens::cuda {

namespace {

__global__ void toHalfKernel(const float* __restrict__ in, __half* out, int64_t n)
{
    for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
        out[i] = __float2half_rn(in[i]);
}

__global__ void toBf16Kernel(const float* __restrict__ in, __nv_bfloat16* out, int64_t n)
{
    for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
        out[i] = __float2bfloat16_rn(in[i]);
}

__global__ void addBiasKernel(float* y, const float* __restrict__ bias, int64_t rows, int64_t cols)
{
    const int64_t n = rows * cols;
    for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
        y[i] += bias[i % cols];
}

unsigned capped(int64_t n) { return gridFor(n, 256) < 65535u ? gridFor(n, 256) : 65535u; }

} // namespace

void launchF32ToHalf(const float* in, void* out, int64_t n, int dtype, cudaStream_t stream)
{
    if (n <= 0)
        return;
    if (dtype == 1)
        toHalfKernel<<<capped(n), 256, 0, stream>>>(in, static_cast<__half*>(out), n);
    else
        toBf16Kernel<<<capped(n), 256, 0, stream>>>(in, static_cast<__nv_bfloat16*>(out), n);
}

void launchAddBias(float* y, const float* bias, int64_t rows, int64_t cols, cudaStream_t stream)
{
    if (rows * cols <= 0)
        return;
    addBiasKernel<<<capped(rows * cols), 256, 0, stream>>>(y, bias, rows, cols);
}

} // namespace archlens::cuda
