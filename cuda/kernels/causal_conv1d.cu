// Causal depthwise conv over a chunk (Mamba's conv1d): one thread per (token, channel), the
// K-1 inputs before the chunk read from the rolling history; a second kernel writes the
// chunk's last K-1 inputs as the new history (into a separate buffer: it reads the old one).
#include "common.cuh"
#include "kernels.h"

namespace archlens::cuda {

namespace {

// input at relative time r (negative: from the history, oldest first)
__device__ __forceinline__ float convInput(const float* x, const float* history, int64_t r, int64_t c, int64_t E,
                                           int64_t K)
{
    return r >= 0 ? x[r * E + c] : history[c * (K - 1) + (K - 1 + r)];
}

__global__ void convKernel(const float* __restrict__ x, const float* __restrict__ w, const float* __restrict__ b,
                           const float* __restrict__ history, int64_t T, int64_t E, int64_t K, float* y)
{
    const int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
    if (i >= T * E)
        return;
    const int64_t t = i / E, c = i % E;
    float acc = b ? b[c] : 0.f;
    for (int64_t k = 0; k < K; ++k)
        acc += w[c * K + k] * convInput(x, history, t - (K - 1) + k, c, E, K);
    y[i] = acc;
}

__global__ void historyKernel(const float* __restrict__ x, const float* __restrict__ history, int64_t T, int64_t E,
                              int64_t K, float* next)
{
    const int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
    if (i >= E * (K - 1))
        return;
    const int64_t c = i / (K - 1), j = i % (K - 1);
    next[i] = convInput(x, history, T - (K - 1) + j, c, E, K);
}

} // namespace

void launchCausalConv1d(const float* x, const float* w, const float* b, const float* history, int64_t T, int64_t E,
                        int64_t K, float* y, float* newHistory, cudaStream_t stream)
{
    if (T > 0 && E > 0)
        convKernel<<<gridFor(T * E, 256), 256, 0, stream>>>(x, w, b, history, T, E, K, y);
    if (E > 0 && K > 1)
        historyKernel<<<gridFor(E * (K - 1), 256), 256, 0, stream>>>(x, history, T, E, K, newHistory);
}

} // namespace archlens::cuda
