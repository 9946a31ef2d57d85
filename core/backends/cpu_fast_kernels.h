// The vectorised kernels of the fast CPU backend, as plain tables of function pointers,
// one table per instruction set, chosen at run time (never -march=native).
//
// Each ISA's table is compiled in its own translation unit with that ISA's -m flags
// (cpu_fast_kernels_avx2.cpp, cpu_fast_kernels_avx512.cpp) and a portable one
// (cpu_fast_kernels_scalar.cpp). Those TUs include only this header (plain structs and
// declarations, no inline code), <immintrin.h> and the shared kernel body
// (cpu_fast_kernels_body.inc) inside an unnamed namespace, and call nothing from the
// standard library: any inline function or template they instantiated would become a weak
// symbol compiled with AVX instructions that the linker may pick for ordinary callers too
// (the one-definition rule), which crashes with SIGILL on CPUs without that ISA. Eigen is
// kept out of them for the same reason. tst_isa_objects checks that these objects define
// no weak symbols.
#pragma once

#include <cstdint>

namespace archlens::fastcpu {

enum class Isa : int { Scalar = 0, Avx2 = 1, Avx512 = 2 };

// The selective scan over raw pointers, as Backend::selectiveScan documents it (ScanArgs).
// Optional pointers (dtBias, D, z and every *Out) may be null. T = 1 is the step form.
struct ScanKernelArgs {
    int64_t T = 0, E = 0, N = 0;
    const float* x = nullptr; // (T, E)
    const float* dt = nullptr; // (T, E) before bias and softplus
    const float* dtBias = nullptr; // (E)
    const float* A = nullptr; // (E, N)
    const float* B = nullptr; // (T, N)
    const float* C = nullptr; // (T, N)
    const float* D = nullptr; // (E)
    const float* z = nullptr; // (T, E)
    float* state = nullptr; // (E, N) in and out
    float* y = nullptr; // (T, E)
    float* deltaOut = nullptr; // (T, E)
    float* statesOut = nullptr; // (T, E, N)
    float* stateNormOut = nullptr; // (T, E)
    float* yPreGateOut = nullptr; // (T, E)
    float* gateOut = nullptr; // (T, E)
};

// The largest d_state the scan kernels hold on the stack; larger states go to the reference.
constexpr int64_t kMaxScanState = 256;

// Single-precision GEMM over raw pointers: C (M, N) = op(A) · op(B), or C += op(A) · op(B)
// when accumulate is set. op(A)(i, k) = transA ? a[k·lda + i] : a[i·lda + k];
// op(B)(k, j) = transB ? b[j·ldb + k] : b[k·ldb + j], so Linear's y = x·Wᵀ with W (out, in)
// is transB. B may be F16 or BF16 (widened to F32 as each panel is packed, accumulating in
// F32); A and C are F32.
enum class GemmBType : int { F32 = 0, F16 = 1, BF16 = 2 };
struct GemmArgs {
    int64_t M = 0, N = 0, K = 0;
    const float* a = nullptr;
    int64_t lda = 0;
    bool transA = false;
    const void* b = nullptr;
    int64_t ldb = 0;
    bool transB = false;
    GemmBType bType = GemmBType::F32;
    float* c = nullptr;
    int64_t ldc = 0;
    bool accumulate = false;
};

// Floats of scratch one gemm call needs (packed A and B panels), whatever the ISA.
constexpr int64_t kGemmScratchFloats = (128 + 16) * 256 + (512 + 64) * 256;
// Rows at or below which a transB GEMM runs as dot products against W's rows (decode's
// GEMV) instead of packing W; chosen from the whole M so that the summation order does not
// depend on how the rows are split over threads.
constexpr int64_t kGemvMaxRows = 4;
// Output columns per thread part should be a multiple of this (the widest NR).
constexpr int64_t kGemmColumnAlign = 64;

struct Kernels {
    Isa isa;
    const char* name; // "scalar", "avx2", "avx512"
    int lanes; // floats per vector
    // Channels [c0, c1) of the scan, every token. Channel ranges of different calls must not
    // overlap; that is how the backend spreads a scan over threads.
    void (*scan)(const ScanKernelArgs& a, int64_t c0, int64_t c1);
    // Elementwise over n floats (in place allowed).
    void (*exp)(const float* x, float* y, int64_t n);
    void (*silu)(const float* x, float* y, int64_t n); // x · σ(x)
    void (*softplus)(const float* x, float* y, int64_t n); // torch softplus, threshold 20
    void (*add)(const float* a, const float* b, float* y, int64_t n);
    void (*mul)(const float* a, const float* b, float* y, int64_t n);
    // y = w ⊙ x / sqrt(mean(x²) + eps) for one row of n
    void (*rmsNormRow)(const float* x, const float* w, float eps, float* y, int64_t n);
    // The block [m0, m1) × [n0, n1) of the GEMM `a` describes, with scratch of
    // kGemmScratchFloats floats. Blocks of different calls must not overlap; each element's
    // sum runs in the same order whatever the block (reproducible across thread counts).
    // Blocked and packed (BLIS-style: KC-deep panels, an MR × NR register tile).
    void (*gemm)(const GemmArgs& a, int64_t m0, int64_t m1, int64_t n0, int64_t n1, float* scratch);
};

// Defined by the per-ISA translation units; null when the build does not include that ISA
// (for example on a non-x86 machine).
const Kernels* kernelsScalar();
const Kernels* kernelsAvx2();
const Kernels* kernelsAvx512();

} // namespace archlens::fastcpu
