// Rotary embedding (rotate_half convention) in place: one thread per (token, head, pair i),
// rotating x[i] and x[i + rotaryDims/2] by the angle (position + t) · invFreq[i], with cos
// and sin scaled by mscale (YaRN), computed in F32 as the CPU reference does.
#include "common.cuh"
#include "kernels.h"

namespace archlens::cuda {

namespace {

__global__ void rotaryKernel(float* x, int64_t T, int64_t H, int64_t Dh, int64_t position, int64_t half,
                             const float* __restrict__ invFreq, float mscale)
{
    const int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
    if (i >= T * H * half)
        return;
    const int64_t pair = i % half, th = i / half, t = th / H;
    float* v = x + th * Dh;
    const float angle = float(position + t) * invFreq[pair];
    const float c = cosf(angle) * mscale, s = sinf(angle) * mscale;
    const float a = v[pair], b = v[pair + half];
    v[pair] = a * c - b * s;
    v[pair + half] = b * c + a * s;
}

} // namespace

void launchRotary(float* x, int64_t T, int64_t H, int64_t Dh, int64_t position, int64_t rotaryDims,
                  const float* invFreq, float mscale, cudaStream_t stream)
{
    const int64_t half = rotaryDims / 2;
    if (T <= 0 || H <= 0 || half <= 0)
        return;
    rotaryKernel<<<gridFor(T * H * half, 256), 256, 0, stream>>>(x, T, H, Dh, position, half, invFreq, mscale);
}

} // namespace archlens::cuda
