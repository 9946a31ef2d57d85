// AVX-512 (F + DQ) kernels of the fast CPU backend: 16 channels per vector. Compiled with
// -mavx512f -mavx512dq -mfma (see core/CMakeLists.txt) and called only when the CPU and
// the OS support AVX-512 (cpu_fast_dispatch.cpp). Read cpu_fast_kernels.h before adding
// any include here.
#include <immintrin.h>

#include "backends/cpu_fast_kernels.h"

namespace archlens::fastcpu {

namespace {

// The vector vocabulary reads best one definition per line.
// clang-format off
using VF = __m512;
using VM = __mmask16;
constexpr int kGemmMR = 8; // rows of the GEMM register tile
constexpr int kLanes = 16;
constexpr Isa kIsa = Isa::Avx512;
constexpr const char* kIsaName = "avx512";
// vscalef applies 2ⁿ exactly, underflow and overflow included, so the clamp only has to
// keep n finite.
const float kExpLo = -104.f, kExpHi = 89.f;

inline __mmask16 laneMask(int n) { return __mmask16((1u << n) - 1u); }
inline VF vzero() { return _mm512_setzero_ps(); }
inline VF vset1(float v) { return _mm512_set1_ps(v); }
inline VF vload(const float* p) { return _mm512_loadu_ps(p); }
inline VF vloadN(const float* p, int n) { return _mm512_maskz_loadu_ps(laneMask(n), p); }
inline void vstore(float* p, VF v) { _mm512_storeu_ps(p, v); }
inline void vstoreN(float* p, VF v, int n) { _mm512_mask_storeu_ps(p, laneMask(n), v); }
inline VF vadd(VF a, VF b) { return _mm512_add_ps(a, b); }
inline VF vsub(VF a, VF b) { return _mm512_sub_ps(a, b); }
inline VF vmul(VF a, VF b) { return _mm512_mul_ps(a, b); }
inline VF vdiv(VF a, VF b) { return _mm512_div_ps(a, b); }
inline VF vfma(VF a, VF b, VF c) { return _mm512_fmadd_ps(a, b, c); }
inline VF vfnma(VF a, VF b, VF c) { return _mm512_fnmadd_ps(a, b, c); }
inline VF vabs(VF a) { return _mm512_abs_ps(a); }
// max/min return their second operand when either is NaN, so x goes second: NaN survives.
inline VF vclamp(VF x, VF lo, VF hi) { return _mm512_min_ps(hi, _mm512_max_ps(lo, x)); }
inline VF vclamp(VF x, float lo, float hi) { return vclamp(x, vset1(lo), vset1(hi)); }
inline VF vround(VF x) { return _mm512_roundscale_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
inline VF vscale2n(VF p, VF n) { return _mm512_scalef_ps(p, n); }
inline VM vgt(VF a, VF b) { return _mm512_cmp_ps_mask(a, b, _CMP_GT_OQ); }
inline VF vblend(VM m, VF t, VF f) { return _mm512_mask_blend_ps(m, f, t); }
inline VF vsqrt(VF a) { return _mm512_sqrt_ps(a); }
inline float vhsum(VF a) { return _mm512_reduce_add_ps(a); }
constexpr bool kHasScalef = true;
inline VF vpow2FromMagic(VF t) { return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_castps_si512(t), 23)); }

// clang-format on

#include "backends/cpu_fast_kernels_body.inc"

} // namespace

const Kernels* kernelsAvx512()
{
    return &kTable;
}

} // namespace archlens::fastcpu
