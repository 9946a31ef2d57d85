// Single-precision GEMM for the fast CPU backend and the training engine: the per-ISA
// blocked kernels (cpu_fast_kernels.h, GemmArgs) with per-thread scratch, optionally split
// over a thread pool, and Eigen for the scalar instruction set.
#pragma once

#include <cstdint>

#include "backends/cpu_fast_kernels.h"

namespace archlens {

class ThreadPool;

// C (M, N) = op(A) · op(B), or += with g.accumulate (see fastcpu::GemmArgs). `kernels` null:
// the best instruction set (ARCHLENS_CPU_ISA caps it). On the scalar ISA the product goes
// through Eigen (F32 B only; F16/BF16 B are widened first). With a pool, the output is split
// over its threads by column blocks (or row blocks when N is narrow); each element is
// computed by one thread in a fixed order, so results do not depend on the thread count.
// Allocates nothing per call beyond each thread's reusable scratch.
void sgemm(const fastcpu::GemmArgs& g, ThreadPool* pool = nullptr, const fastcpu::Kernels* kernels = nullptr);

// The kernels sgemm uses when given none.
const fastcpu::Kernels& defaultGemmKernels();

} // namespace archlens
