// One token of the causal conv (the decoder's recurrent form): one thread per channel reads
// its K-1 history inputs and the new one, then shifts its own history row in place.
#include "common.cuh"
#include "kernels.h"

namespace archlens::cuda {

namespace {

__global__ void convStepKernel(const float* __restrict__ x, const float* __restrict__ w,
                               const float* __restrict__ b, float* history, int64_t E, int64_t K, float* y)
{
    const int64_t c = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
    if (c >= E)
        return;
    float* hist = history + c * (K - 1);
    const float* wc = w + c * K;
    const float xc = x[c];
    float acc = (b ? b[c] : 0.f) + xc * wc[K - 1];
    for (int64_t k = 0; k < K - 1; ++k)
        acc += hist[k] * wc[k];
    y[c] = acc;
    if (K > 1) {
        for (int64_t k = 0; k + 1 < K - 1; ++k)
            hist[k] = hist[k + 1];
        hist[K - 2] = xc;
    }
}

} // namespace

void launchCausalConv1dStep(const float* x, const float* w, const float* b, float* history, int64_t E, int64_t K,
                            float* y, cudaStream_t stream)
{
    if (E <= 0)
        return;
    convStepKernel<<<gridFor(E, 128), 128, 0, stream>>>(x, w, b, history, E, K, y);
}

} // namespace archlens::cuda
