// The selective scan over a chunk of T tokens, time-parallel so that a batch-1 prompt fills
// the GPU. One thread owns one channel c and keeps its state h[c, :] in registers (N <= 64;
// larger N keeps it in the scratch buffer, correct but slower). Time is cut into chunks of
// L tokens, each chunk a block column:
//   pass 1  every chunk scans from h = 0 and keeps its local end state and Σ Δ;
//   pass 2  one thread per (c, n) walks the chunks in order: the state entering chunk k is
//           exp(A · Σ_{k-1} Δ) · h_in(k-1) + local(k-1) (A is diagonal, so the decay over a
//           chunk is one exp), written over the local state in place;
//   pass 3  every chunk scans again from its true entering state, writing y and only the
//           probes asked for; the last chunk writes the final state.
// Softplus(Δ + bias), the D skip and the SiLU(z) gate are fused into pass 3. A prompt that
// fits one chunk (and every decode step) runs pass 3 alone, straight from the state.
#include <algorithm>

#include "common.cuh"
#include "kernels.h"

namespace archlens::cuda {

namespace {

constexpr int kBlock = 128;

// Registers for N <= NT, else (NT = 0) the state stays in global memory at `slot`.
template <int NT> struct ScanState {
    float h[NT];
    float a[NT];
    __device__ void load(const float* slot, const float* A, int64_t N, bool zero)
    {
#pragma unroll
        for (int n = 0; n < NT; ++n)
            if (n < N) {
                h[n] = zero ? 0.f : slot[n];
                a[n] = A[n];
            }
    }
    __device__ void store(float* slot, int64_t N) const
    {
#pragma unroll
        for (int n = 0; n < NT; ++n)
            if (n < N)
                slot[n] = h[n];
    }
};

template <bool Final, int NT>
__device__ void scanTokens(const ScanPointers& p, int64_t c, int64_t t0, int64_t t1, float* slot, bool zero,
                           float* sumDelta)
{
    const int64_t E = p.E, N = p.N;
    const float* A = p.A + c * N;
    const float bias = p.dtBias ? p.dtBias[c] : 0.f;
    const float Dc = p.D ? p.D[c] : 0.f;
    ScanState<(NT > 0 ? NT : 1)> s;
    if constexpr (NT > 0) {
        s.load(slot, A, N, zero);
    } else if (zero) {
        for (int64_t n = 0; n < N; ++n)
            slot[n] = 0.f;
    }
    float dsum = 0.f;
    for (int64_t t = t0; t < t1; ++t) {
        const int64_t i = t * E + c;
        const float xtc = p.x[i];
        const float delta = softplusDev(p.dt[i] + bias);
        const float* Bt = p.B + t * N;
        const float* Ct = p.C + t * N;
        float y = 0.f;
        double norm2 = 0.0;
        if constexpr (NT > 0) {
#pragma unroll
            for (int n = 0; n < NT; ++n)
                if (n < N) {
                    s.h[n] = expf(delta * s.a[n]) * s.h[n] + delta * __ldg(Bt + n) * xtc;
                    if constexpr (Final) {
                        y += __ldg(Ct + n) * s.h[n];
                        if (p.stateNormOut)
                            norm2 += double(s.h[n]) * s.h[n];
                        if (p.statesOut)
                            p.statesOut[i * N + n] = s.h[n];
                    }
                }
        } else {
            for (int64_t n = 0; n < N; ++n) {
                const float h = expf(delta * A[n]) * slot[n] + delta * Bt[n] * xtc;
                slot[n] = h;
                if constexpr (Final) {
                    y += Ct[n] * h;
                    norm2 += double(h) * h;
                    if (p.statesOut)
                        p.statesOut[i * N + n] = h;
                }
            }
        }
        if constexpr (Final) {
            if (p.D)
                y += Dc * xtc;
            if (p.deltaOut)
                p.deltaOut[i] = delta;
            if (p.stateNormOut)
                p.stateNormOut[i] = float(sqrt(norm2));
            if (p.yPreGateOut)
                p.yPreGateOut[i] = y;
            if (p.z) {
                const float g = siluDev(p.z[i]);
                if (p.gateOut)
                    p.gateOut[i] = g;
                y *= g;
            }
            p.y[i] = y;
        } else {
            dsum += delta;
        }
    }
    if constexpr (NT > 0)
        s.store(slot, N);
    if (sumDelta)
        *sumDelta = dsum;
}

// scratch layout: chunk states (chunks, E, N), then Σ Δ (chunks, E)
template <int NT> __global__ void localPass(ScanPointers p, int64_t L, float* scratch)
{
    const int64_t c = blockIdx.x * int64_t(blockDim.x) + threadIdx.x, k = blockIdx.y;
    if (c >= p.E)
        return;
    const int64_t chunks = gridDim.y;
    const int64_t t0 = k * L, t1 = min64(p.T, t0 + L);
    float* slot = scratch + (k * p.E + c) * p.N;
    float* sums = scratch + chunks * p.E * p.N;
    scanTokens<false, NT>(p, c, t0, t1, slot, true, sums + k * p.E + c);
}

__global__ void carryPass(ScanPointers p, int64_t chunks, float* scratch)
{
    const int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; // (c, n)
    if (i >= p.E * p.N)
        return;
    const int64_t c = i / p.N;
    const float a = p.A[i];
    const float* sums = scratch + chunks * p.E * p.N;
    float h = p.state[i];
    for (int64_t k = 0; k < chunks; ++k) {
        float* slot = scratch + k * p.E * p.N + i;
        const float local = *slot;
        *slot = h; // the state entering chunk k
        h = expf(a * sums[k * p.E + c]) * h + local;
    }
}

template <int NT> __global__ void finalPass(ScanPointers p, int64_t L, float* scratch)
{
    const int64_t c = blockIdx.x * int64_t(blockDim.x) + threadIdx.x, k = blockIdx.y;
    if (c >= p.E)
        return;
    const int64_t chunks = gridDim.y;
    const int64_t t0 = k * L, t1 = min64(p.T, t0 + L);
    if (chunks == 1) { // straight from the state, in place
        scanTokens<true, NT>(p, c, t0, t1, p.state + c * p.N, false, nullptr);
        return;
    }
    float* slot = scratch + (k * p.E + c) * p.N;
    scanTokens<true, NT>(p, c, t0, t1, slot, false, nullptr);
    if (k == chunks - 1)
        for (int64_t n = 0; n < p.N; ++n)
            p.state[c * p.N + n] = slot[n];
}

template <int NT> void run(const ScanPointers& p, int64_t L, float* scratch, cudaStream_t stream)
{
    const int64_t chunks = (p.T + L - 1) / L;
    const dim3 grid(gridFor(p.E, kBlock), unsigned(chunks));
    if (chunks > 1) {
        localPass<NT><<<grid, kBlock, 0, stream>>>(p, L, scratch);
        carryPass<<<gridFor(p.E * p.N, 256), 256, 0, stream>>>(p, chunks, scratch);
    }
    finalPass<NT><<<grid, kBlock, 0, stream>>>(p, L, scratch);
}

} // namespace

int64_t scanChunkLength(int64_t T, int64_t E, int multiprocessors)
{
    // enough chunks that E × chunks threads fill every multiprocessor twice over (2,048
    // resident threads each), but never chunks shorter than 32 tokens, and at most 65,535
    const int64_t target = int64_t(multiprocessors > 0 ? multiprocessors : 1) * 2048;
    const int64_t chunks = std::max<int64_t>(1, (target + E - 1) / E);
    int64_t L = std::max<int64_t>(32, (T + chunks - 1) / chunks);
    L = std::max<int64_t>(L, (T + 65534) / 65535);
    return L;
}

size_t scanScratchFloats(int64_t T, int64_t E, int64_t N, int64_t chunk)
{
    const int64_t chunks = (T + chunk - 1) / chunk;
    return chunks > 1 ? size_t(chunks * E * (N + 1)) : 0;
}

void launchSelectiveScan(const ScanPointers& p, int64_t chunk, float* scratch, cudaStream_t stream)
{
    if (p.T <= 0 || p.E <= 0)
        return;
    if (p.N <= 16)
        run<16>(p, chunk, scratch, stream);
    else if (p.N <= 64)
        run<64>(p, chunk, scratch, stream);
    else
        run<0>(p, chunk, scratch, stream);
}

} // namespace archlens::cuda
