// Causal (optionally sliding-window) attention with grouped KV heads, memory-efficient: a
// warp owns one query row and walks its keys in tiles of 32 (one key per lane for the dot
// products, then each lane accumulates its Dh/32 output dims), keeping a running max and
// sum (online softmax), so no T × S matrix is ever stored. Prefill launches one warp per
// (query, head). Decode (few queries, many keys) also splits the keys across blocks
// (flash-decoding): each split writes its partial (max, sum, output) and a combine kernel
// merges them. The optional post-softmax weights (a probe) are recomputed from the final
// per-row max and sum by a third kernel, only when asked for.
#include <algorithm>

#include "common.cuh"
#include "kernels.h"

namespace archlens::cuda {

namespace {

constexpr int kWarps = 4;

struct Range {
    int64_t begin, end; // keys [begin, end)
};

__device__ __forceinline__ Range keyRange(const AttentionPointers& p, int64_t t, int split, int splits)
{
    const int64_t pos = p.pastLength + t;
    int64_t first = p.slidingWindow > 0 ? pos - p.slidingWindow + 1 : 0;
    if (first < 0)
        first = 0;
    const int64_t per = (p.S + splits - 1) / splits;
    Range r { max64(first, int64_t(split) * per), min64(pos + 1, int64_t(split + 1) * per) };
    return r;
}

// scratch: per-row (max, sum) at [0, 2·H·T); partial outputs after, (splits, H, T, Dh + 2)
template <int DPL> __global__ void attentionKernel(AttentionPointers p, int splits, float* scratch)
{
    __shared__ float qs[kWarps][kAttentionMaxHeadDim];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int64_t t = blockIdx.x * int64_t(kWarps) + warp, h = blockIdx.y;
    const int split = blockIdx.z;
    if (t >= p.T)
        return; // no block-wide barriers below
    const int64_t Dh = p.Dh, hk = h / (p.H / p.Hkv);
    const float* q = p.q + (t * p.H + h) * Dh;
    for (int64_t d = lane; d < Dh; d += 32)
        qs[warp][d] = q[d];
    __syncwarp();
    const Range r = keyRange(p, t, split, splits);
    float m = -INFINITY, l = 0.f;
    float o[DPL];
#pragma unroll
    for (int j = 0; j < DPL; ++j)
        o[j] = 0.f;
    const int64_t kvStride = p.Hkv * Dh;
    for (int64_t s0 = r.begin; s0 < r.end; s0 += 32) {
        const int64_t s = s0 + lane;
        float score = -INFINITY;
        if (s < r.end) {
            const float* k = p.k + s * kvStride + hk * Dh;
            float dot = 0.f;
            for (int64_t d = 0; d < Dh; ++d)
                dot += qs[warp][d] * k[d];
            score = dot * p.scale;
        }
        const float mNew = fmaxf(m, warpMax(score));
        const float pj = s < r.end ? expf(score - mNew) : 0.f;
        const float corr = m == -INFINITY ? 0.f : expf(m - mNew);
        l = l * corr + warpSum(pj);
#pragma unroll
        for (int j = 0; j < DPL; ++j)
            o[j] *= corr;
        const int64_t n = min64(32, r.end - s0);
        for (int jj = 0; jj < n; ++jj) {
            const float w = __shfl_sync(0xffffffffu, pj, jj);
            const float* v = p.v + (s0 + jj) * kvStride + hk * Dh;
#pragma unroll
            for (int j = 0; j < DPL; ++j) {
                const int64_t d = lane + 32 * j;
                if (d < Dh)
                    o[j] += w * v[d];
            }
        }
        m = mNew;
    }
    const int64_t row = h * p.T + t;
    if (splits == 1) {
        float* out = p.out + (t * p.H + h) * Dh;
#pragma unroll
        for (int j = 0; j < DPL; ++j) {
            const int64_t d = lane + 32 * j;
            if (d < Dh)
                out[d] = l > 0.f ? o[j] / l : 0.f;
        }
        if (lane == 0) {
            scratch[2 * row] = m;
            scratch[2 * row + 1] = l;
        }
        return;
    }
    float* part = scratch + 2 * p.H * p.T + (int64_t(split) * p.H * p.T + row) * (Dh + 2);
#pragma unroll
    for (int j = 0; j < DPL; ++j) {
        const int64_t d = lane + 32 * j;
        if (d < Dh)
            part[2 + d] = o[j];
    }
    if (lane == 0) {
        part[0] = m;
        part[1] = l;
    }
}

// one warp per (query, head): merges the splits' partial results
__global__ void combineKernel(AttentionPointers p, int splits, float* scratch)
{
    const int lane = threadIdx.x & 31;
    const int64_t row = blockIdx.x; // h * T + t
    const int64_t h = row / p.T, t = row % p.T, Dh = p.Dh;
    const float* parts = scratch + 2 * p.H * p.T;
    const int64_t stride = p.H * p.T * (Dh + 2);
    float M = -INFINITY;
    for (int s = 0; s < splits; ++s)
        M = fmaxf(M, parts[s * stride + row * (Dh + 2)]);
    float L = 0.f;
    for (int s = 0; s < splits; ++s) {
        const float* part = parts + s * stride + row * (Dh + 2);
        if (part[1] > 0.f)
            L += part[1] * expf(part[0] - M);
    }
    float* out = p.out + (t * p.H + h) * Dh;
    for (int64_t d = lane; d < Dh; d += 32) {
        float acc = 0.f;
        for (int s = 0; s < splits; ++s) {
            const float* part = parts + s * stride + row * (Dh + 2);
            if (part[1] > 0.f)
                acc += part[2 + d] * expf(part[0] - M);
        }
        out[d] = L > 0.f ? acc / L : 0.f;
    }
    if (lane == 0) {
        scratch[2 * row] = M;
        scratch[2 * row + 1] = L;
    }
}

// weights (H, T, S) = exp(score - max) / sum inside the window, 0 outside
__global__ void weightsKernel(AttentionPointers p, const float* stats)
{
    const int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
    if (i >= p.H * p.T * p.S)
        return;
    const int64_t s = i % p.S, row = i / p.S, h = row / p.T, t = row % p.T;
    const Range r = keyRange(p, t, 0, 1);
    float w = 0.f;
    if (s >= r.begin && s < r.end) {
        const int64_t hk = h / (p.H / p.Hkv);
        const float* q = p.q + (t * p.H + h) * p.Dh;
        const float* k = p.k + (s * p.Hkv + hk) * p.Dh;
        float dot = 0.f;
        for (int64_t d = 0; d < p.Dh; ++d)
            dot += q[d] * k[d];
        w = expf(dot * p.scale - stats[2 * row]) / stats[2 * row + 1];
    }
    p.weightsOut[i] = w;
}

} // namespace

int attentionSplits(const AttentionPointers& p, int multiprocessors)
{
    const int64_t warps = p.T * p.H;
    const int64_t want = int64_t(std::max(multiprocessors, 1)) * 16;
    if (warps >= want || p.S < 512)
        return 1;
    const int64_t bySize = p.S / 256;
    const int64_t byFill = (want + warps - 1) / warps;
    return int(std::max<int64_t>(1, std::min<int64_t>({ bySize, byFill, 64 })));
}

size_t attentionScratchFloats(const AttentionPointers& p, int splits)
{
    size_t n = size_t(2 * p.H * p.T);
    if (splits > 1)
        n += size_t(splits) * size_t(p.H * p.T) * size_t(p.Dh + 2);
    return n;
}

void launchAttention(const AttentionPointers& p, int splits, float* scratch, cudaStream_t stream)
{
    if (p.T <= 0 || p.H <= 0)
        return;
    const dim3 grid(gridFor(p.T, kWarps), unsigned(p.H), unsigned(splits));
    const int block = kWarps * 32;
    if (p.Dh <= 32)
        attentionKernel<1><<<grid, block, 0, stream>>>(p, splits, scratch);
    else if (p.Dh <= 64)
        attentionKernel<2><<<grid, block, 0, stream>>>(p, splits, scratch);
    else if (p.Dh <= 128)
        attentionKernel<4><<<grid, block, 0, stream>>>(p, splits, scratch);
    else
        attentionKernel<8><<<grid, block, 0, stream>>>(p, splits, scratch);
    if (splits > 1)
        combineKernel<<<unsigned(p.H * p.T), 32, 0, stream>>>(p, splits, scratch);
    if (p.weightsOut && p.S > 0)
        weightsKernel<<<gridFor(p.H * p.T * p.S, 256), 256, 0, stream>>>(p, scratch);
}

} // namespace archlens::cuda
