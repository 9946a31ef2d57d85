// Embedding lookup: one block row per token, the table in its stored dtype widened to F32.
#include "common.cuh"
#include "kernels.h"

namespace archlens::cuda {

namespace {

__global__ void embeddingKernel(const int32_t* __restrict__ ids, const void* table, int dtype, int64_t D, float* out)
{
    const int64_t t = blockIdx.x;
    const int64_t row = ids[t];
    for (int64_t d = threadIdx.x; d < D; d += blockDim.x)
        out[t * D + d] = loadAsF32(table, dtype, row * D + d);
}

} // namespace

void launchEmbedding(const int32_t* ids, int64_t T, const void* table, int tableDtype, int64_t D, float* out,
                     cudaStream_t stream)
{
    if (T <= 0 || D <= 0)
        return;
    embeddingKernel<<<unsigned(T), 256, 0, stream>>>(ids, table, tableDtype, D, out);
}

} // namespace archlens::cuda
