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
};

// Defined by the per-ISA translation units; null when the build does not include that ISA
// (for example on a non-x86 machine).
const Kernels* kernelsScalar();
const Kernels* kernelsAvx2();
const Kernels* kernelsAvx512();

} // namespace archlens::fastcpu
