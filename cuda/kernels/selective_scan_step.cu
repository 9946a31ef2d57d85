// One token of the selective scan (the decoder's recurrent form), one thread per channel
// updating its state row in place, in the operation order of the CPU reference's step:
// h = h · exp(Δ A) + (Δ x) B, then y = C·h + D x, gated by SiLU(z).
#include "common.cuh"
#include "kernels.h"

namespace archlens::cuda {

namespace {

__global__ void scanStepKernel(ScanPointers p)
{
    const int64_t c = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
    if (c >= p.E)
        return;
    const int64_t N = p.N;
    const float xc = p.x[c];
    const float delta = softplusDev(p.dt[c] + (p.dtBias ? p.dtBias[c] : 0.f));
    float* h = p.state + c * N;
    const float* A = p.A + c * N;
    float y = 0.f;
    double norm2 = 0.0;
    for (int64_t n = 0; n < N; ++n) {
        const float hn = h[n] * expf(delta * A[n]) + (delta * xc) * p.B[n];
        h[n] = hn;
        if (p.statesOut)
            p.statesOut[c * N + n] = hn;
    }
    for (int64_t n = 0; n < N; ++n) {
        y += h[n] * p.C[n];
        norm2 += double(h[n]) * h[n];
    }
    if (p.D)
        y += p.D[c] * xc;
    if (p.deltaOut)
        p.deltaOut[c] = delta;
    if (p.stateNormOut)
        p.stateNormOut[c] = float(sqrt(norm2));
    if (p.yPreGateOut)
        p.yPreGateOut[c] = y;
    if (p.z) {
        const float g = siluDev(p.z[c]);
        if (p.gateOut)
            p.gateOut[c] = g;
        y *= g;
    }
    p.y[c] = y;
}

} // namespace

void launchSelectiveScanStep(const ScanPointers& p, cudaStream_t stream)
{
    if (p.E <= 0)
        return;
    scanStepKernel<<<gridFor(p.E, 128), 128, 0, stream>>>(p);
}

} // namespace archlens::cuda
