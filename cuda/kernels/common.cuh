// Small device helpers shared by the kernels (no host code, no archlens headers).
#pragma once

#include <cstdint>

#include <cuda_bf16.h>
#include <cuda_fp16.h>

namespace archlens::cuda {

// The exact conventions of core/ops/math.h, in device code.
__device__ __forceinline__ float sigmoidDev(float v) { return 1.0f / (1.0f + expf(-v)); }
__device__ __forceinline__ float siluDev(float v) { return v * sigmoidDev(v); }
__device__ __forceinline__ float softplusDev(float v) { return v > 20.0f ? v : log1pf(expf(v)); }

// Element i of a table stored as F32 (0), F16 (1) or BF16 (2), widened to F32.
__device__ __forceinline__ float loadAsF32(const void* p, int dtype, int64_t i)
{
    if (dtype == 1)
        return __half2float(static_cast<const __half*>(p)[i]);
    if (dtype == 2)
        return __bfloat162float(static_cast<const __nv_bfloat16*>(p)[i]);
    return static_cast<const float*>(p)[i];
}

__device__ __forceinline__ float warpSum(float v)
{
    for (int o = 16; o > 0; o >>= 1)
        v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
__device__ __forceinline__ double warpSumD(double v)
{
    for (int o = 16; o > 0; o >>= 1)
        v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
__device__ __forceinline__ float warpMax(float v)
{
    for (int o = 16; o > 0; o >>= 1)
        v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

// Sum over a block of up to 1024 threads (blockDim.x a multiple of 32); every thread gets it.
__device__ __forceinline__ double blockSumD(double v)
{
    __shared__ double partial[32];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    v = warpSumD(v);
    __syncthreads(); // partial may still be read by a previous call
    if (lane == 0)
        partial[warp] = v;
    __syncthreads();
    const int warps = int(blockDim.x + 31) >> 5;
    double total = 0;
    for (int i = 0; i < warps; ++i)
        total += partial[i];
    return total;
}

__host__ __device__ __forceinline__ int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }
__host__ __device__ __forceinline__ int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }

inline unsigned gridFor(int64_t n, int block) { return unsigned((n + block - 1) / block); }

} // namespace archlens::cuda
