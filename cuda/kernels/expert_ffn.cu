// Expert dispatch for the SwiGLU experts of MoE layers: the host groups the (token, slot)
// pairs by expert (cuda_backend.cpp), and for each expert with tokens these kernels gather
// its rows into one contiguous block (so its three GEMMs run on all of them at once through
// cuBLAS), fuse silu(gate) * up, and scatter-add the weighted results back into the output.
#include "common.cuh"
#include "kernels.h"

namespace archlens::cuda {

namespace {

__global__ void gatherKernel(const float* __restrict__ x, const int32_t* __restrict__ tokens, int64_t D, float* rows)
{
    const int64_t i = blockIdx.x;
    const float* src = x + int64_t(tokens[i]) * D;
    for (int64_t d = threadIdx.x; d < D; d += blockDim.x)
        rows[i * D + d] = src[d];
}

__global__ void scatterAddKernel(const float* __restrict__ y, const int32_t* __restrict__ tokens,
                                 const float* __restrict__ weights, int64_t D, float* out)
{
    const int64_t i = blockIdx.x;
    float* dst = out + int64_t(tokens[i]) * D;
    const float w = weights[i];
    for (int64_t d = threadIdx.x; d < D; d += blockDim.x)
        dst[d] += w * y[i * D + d];
}

__global__ void siluMulKernel(float* gate, const float* __restrict__ up, int64_t n)
{
    for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
        gate[i] = siluDev(gate[i]) * up[i];
}

} // namespace

void launchGatherRows(const float* x, const int32_t* tokens, int64_t count, int64_t D, float* rows,
                      cudaStream_t stream)
{
    if (count > 0 && D > 0)
        gatherKernel<<<unsigned(count), 128, 0, stream>>>(x, tokens, D, rows);
}

void launchScatterAddRows(const float* y, const int32_t* tokens, const float* weights, int64_t count, int64_t D,
                          float* out, cudaStream_t stream)
{
    // a token appears at most once per expert, so the rows of one launch never collide
    if (count > 0 && D > 0)
        scatterAddKernel<<<unsigned(count), 128, 0, stream>>>(y, tokens, weights, D, out);
}

void launchSiluMul(float* gate, const float* up, int64_t n, cudaStream_t stream)
{
    if (n <= 0)
        return;
    const unsigned grid = gridFor(n, 256) < 65535u ? gridFor(n, 256) : 65535u;
    siluMulKernel<<<grid, 256, 0, stream>>>(gate, up, n);
}

} // namespace archlens::cuda
