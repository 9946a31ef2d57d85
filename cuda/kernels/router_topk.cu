// Router softmax + top-k: one thread per token (X experts, k of them chosen; both small).
// The softmax follows core/ops/math.cpp (max subtracted, F32 exp, sum in double), and top-k
// picks by descending probability with ties to the lower expert id, as the CPU reference's
// stable sort does, so the chosen ids match it exactly.
#include "common.cuh"
#include "kernels.h"

namespace archlens::cuda {

namespace {

constexpr int kMaxTopK = kRouterMaxTopK;

__global__ void routerKernel(const float* __restrict__ logits, int64_t T, int64_t X, int k, bool renormalize,
                             float* probs, int32_t* ids, float* weights)
{
    const int64_t t = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
    if (t >= T)
        return;
    const float* l = logits + t * X;
    float* p = probs + t * X;
    float m = -INFINITY;
    for (int64_t e = 0; e < X; ++e)
        m = fmaxf(m, l[e]);
    double sum = 0;
    for (int64_t e = 0; e < X; ++e) {
        p[e] = expf(l[e] - m);
        sum += p[e];
    }
    for (int64_t e = 0; e < X; ++e)
        p[e] = float(p[e] / sum);
    int32_t chosen[kMaxTopK];
    double chosenSum = 0;
    for (int j = 0; j < k; ++j) {
        int32_t best = -1;
        for (int64_t e = 0; e < X; ++e) {
            bool taken = false;
            for (int i = 0; i < j; ++i)
                taken = taken || chosen[i] == e;
            if (!taken && (best < 0 || p[e] > p[best]))
                best = int32_t(e);
        }
        chosen[j] = best;
        chosenSum += p[best];
    }
    for (int j = 0; j < k; ++j) {
        if (ids)
            ids[t * k + j] = chosen[j];
        if (weights)
            weights[t * k + j] = renormalize ? float(p[chosen[j]] / chosenSum) : p[chosen[j]];
    }
}

} // namespace

void launchRouterTopK(const float* logits, int64_t T, int64_t X, int k, bool renormalize, float* probs, int32_t* ids,
                      float* weights, cudaStream_t stream)
{
    if (T <= 0)
        return;
    routerKernel<<<gridFor(T, 64), 64, 0, stream>>>(logits, T, X, k, renormalize, probs, ids, weights);
}

} // namespace archlens::cuda
