// Add, Mul, SiLU and GELU (erf and tanh forms), one thread per element, grid-stride.
#include "common.cuh"
#include "kernels.h"

namespace archlens::cuda {

namespace {

template <Elementwise op>
__global__ void elementwiseKernel(const float* __restrict__ a, const float* __restrict__ b, float* out, int64_t n)
{
    for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
        const float v = a[i];
        if constexpr (op == Elementwise::Add)
            out[i] = v + b[i];
        else if constexpr (op == Elementwise::Mul)
            out[i] = v * b[i];
        else if constexpr (op == Elementwise::Silu)
            out[i] = siluDev(v);
        else if constexpr (op == Elementwise::GeluErf)
            out[i] = 0.5f * v * (1.0f + erff(v * 0.70710678118654752f));
        else
            out[i] = 0.5f * v * (1.0f + tanhf(0.7978845608028654f * (v + 0.044715f * v * v * v)));
    }
}

} // namespace

void launchElementwise(Elementwise op, const float* a, const float* b, float* out, int64_t n, cudaStream_t stream)
{
    if (n <= 0)
        return;
    const int block = 256;
    const unsigned grid = gridFor(n, block) < 65535u ? gridFor(n, block) : 65535u;
    switch (op) {
    case Elementwise::Add: elementwiseKernel<Elementwise::Add><<<grid, block, 0, stream>>>(a, b, out, n); break;
    case Elementwise::Mul: elementwiseKernel<Elementwise::Mul><<<grid, block, 0, stream>>>(a, b, out, n); break;
    case Elementwise::Silu: elementwiseKernel<Elementwise::Silu><<<grid, block, 0, stream>>>(a, b, out, n); break;
    case Elementwise::GeluErf:
        elementwiseKernel<Elementwise::GeluErf><<<grid, block, 0, stream>>>(a, b, out, n);
        break;
    case Elementwise::GeluTanh:
        elementwiseKernel<Elementwise::GeluTanh><<<grid, block, 0, stream>>>(a, b, out, n);
        break;
    }
}

} // namespace archlens::cuda
