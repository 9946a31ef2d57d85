// See cpu_gemm.h. Compiled with the baseline flags: it only picks a kernel table and splits
// the output; the arithmetic is in the per-ISA translation units.
#include "backends/cpu_gemm.h"

#include <algorithm>
#include <vector>

#include <Eigen/Core>

#include "backends/cpu_fast_dispatch.h"
#include "base/thread_pool.h"
#include "tensor/dtype.h"

namespace archlens {

namespace {

using RowMatrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using ColMatrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::ColMajor>;
using RowMap = Eigen::Map<const RowMatrix, 0, Eigen::OuterStride<>>;
using ColMap = Eigen::Map<const ColMatrix, 0, Eigen::OuterStride<>>; // a stored transposed
using OutMap = Eigen::Map<RowMatrix, 0, Eigen::OuterStride<>>;

float* threadScratch()
{
    thread_local std::vector<float> scratch;
    if (scratch.size() < size_t(fastcpu::kGemmScratchFloats))
        scratch.resize(size_t(fastcpu::kGemmScratchFloats));
    return scratch.data();
}

template<class MA, class MB> void eigenProduct(const MA& A, const MB& B, OutMap& C, bool accumulate)
{
    if (accumulate)
        C.noalias() += A * B;
    else
        C.noalias() = A * B;
}

// The scalar ISA: Eigen on the block, its own summation order (also fixed per element).
void eigenBlock(const fastcpu::GemmArgs& g, const float* b, int64_t m0, int64_t m1, int64_t n0, int64_t n1)
{
    const int64_t rows = m1 - m0, cols = n1 - n0;
    OutMap C(g.c + m0 * g.ldc + n0, rows, cols, Eigen::OuterStride<>(g.ldc));
    const Eigen::OuterStride<> sa(g.lda), sb(g.ldb);
    if (g.transA) {
        ColMap A(g.a + m0, rows, g.K, sa);
        if (g.transB)
            eigenProduct(A, ColMap(b + n0 * g.ldb, g.K, cols, sb), C, g.accumulate);
        else
            eigenProduct(A, RowMap(b + n0, g.K, cols, sb), C, g.accumulate);
    } else {
        RowMap A(g.a + m0 * g.lda, rows, g.K, sa);
        if (g.transB)
            eigenProduct(A, ColMap(b + n0 * g.ldb, g.K, cols, sb), C, g.accumulate);
        else
            eigenProduct(A, RowMap(b + n0, g.K, cols, sb), C, g.accumulate);
    }
}

} // namespace

const fastcpu::Kernels& defaultGemmKernels()
{
    static const fastcpu::Kernels* k = fastcpu::kernelsFor(fastcpu::bestIsa());
    return *k;
}

void sgemm(const fastcpu::GemmArgs& g, ThreadPool* pool, const fastcpu::Kernels* kernels)
{
    if (g.M <= 0 || g.N <= 0)
        return;
    const fastcpu::Kernels& k = kernels ? *kernels : defaultGemmKernels();
    const bool eigen = k.isa == fastcpu::Isa::Scalar;
    // Eigen takes F32 only: widen a narrow B once (scalar ISA only, a fallback).
    std::vector<float> widened;
    const float* bf = static_cast<const float*>(g.b);
    if (eigen && g.bType != fastcpu::GemmBType::F32) {
        const int64_t rows = g.transB ? g.N : g.K, cols = g.transB ? g.K : g.N;
        widened.resize(size_t(rows * cols));
        const auto* src = static_cast<const uint16_t*>(g.b);
        for (int64_t r = 0; r < rows; ++r)
            for (int64_t c = 0; c < cols; ++c) {
                const uint16_t v = src[r * g.ldb + c];
                widened[size_t(r * cols + c)] = g.bType == fastcpu::GemmBType::BF16 ? bf16ToF32(v) : f16ToF32(v);
            }
        bf = widened.data();
    }
    fastcpu::GemmArgs gw = g;
    if (!widened.empty()) {
        gw.b = bf;
        gw.ldb = g.transB ? g.K : g.N;
        gw.bType = fastcpu::GemmBType::F32;
    }
    auto block = [&](int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
        if (eigen)
            eigenBlock(gw, bf, m0, m1, n0, n1);
        else
            k.gemm(gw, m0, m1, n0, n1, threadScratch());
    };
    const double flops = 2.0 * double(g.M) * double(g.N) * double(std::max<int64_t>(1, g.K));
    if (!pool || pool->threads() == 1 || flops < 2e6) {
        block(0, g.M, 0, g.N);
        return;
    }
    const int64_t colAlign = fastcpu::kGemmColumnAlign;
    const int threads = pool->threads();
    if (g.N >= colAlign * threads || g.M < 16 * threads) {
        pool->parallelFor(g.N, colAlign, [&](int64_t n0, int64_t n1) { block(0, g.M, n0, n1); }, colAlign);
    } else {
        pool->parallelFor(g.M, 16, [&](int64_t m0, int64_t m1) { block(m0, m1, 0, g.N); }, 16);
    }
}

} // namespace archlens
