// AVX2 + FMA kernels of the fast CPU backend: 8 channels per vector. Compiled with
// -mavx2 -mfma (see core/CMakeLists.txt) and called only when the CPU and the OS support
// both (cpu_fast_dispatch.cpp). Read cpu_fast_kernels.h before adding any include here.
#include <immintrin.h>

#include "backends/cpu_fast_kernels.h"

namespace archlens::fastcpu {

namespace {

// The vector vocabulary reads best one definition per line.
// clang-format off
using VF = __m256;
using VM = __m256;
constexpr int kGemmMR = 6; // rows of the GEMM register tile
constexpr int kLanes = 8;
constexpr Isa kIsa = Isa::Avx2;
constexpr const char* kIsaName = "avx2";
const float kExpLo = -104.f, kExpHi = 89.f;

inline VF vzero() { return _mm256_setzero_ps(); }
inline VF vset1(float v) { return _mm256_set1_ps(v); }
inline __m256i laneMask(int n)
{
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}
inline VF vload(const float* p) { return _mm256_loadu_ps(p); }
inline VF vloadN(const float* p, int n) { return _mm256_maskload_ps(p, laneMask(n)); }
inline void vstore(float* p, VF v) { _mm256_storeu_ps(p, v); }
inline void vstoreN(float* p, VF v, int n) { _mm256_maskstore_ps(p, laneMask(n), v); }
inline VF vadd(VF a, VF b) { return _mm256_add_ps(a, b); }
inline VF vsub(VF a, VF b) { return _mm256_sub_ps(a, b); }
inline VF vmul(VF a, VF b) { return _mm256_mul_ps(a, b); }
inline VF vdiv(VF a, VF b) { return _mm256_div_ps(a, b); }
inline VF vfma(VF a, VF b, VF c) { return _mm256_fmadd_ps(a, b, c); }
inline VF vfnma(VF a, VF b, VF c) { return _mm256_fnmadd_ps(a, b, c); }
inline VF vabs(VF a) { return _mm256_andnot_ps(_mm256_set1_ps(-0.f), a); }
// max/min return their second operand when either is NaN, so x goes second: NaN survives.
inline VF vclamp(VF x, VF lo, VF hi) { return _mm256_min_ps(hi, _mm256_max_ps(lo, x)); }
inline VF vclamp(VF x, float lo, float hi) { return vclamp(x, vset1(lo), vset1(hi)); }
inline VF vround(VF x) { return _mm256_round_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
// p·2ⁿ as p·2^⌊n/2⌋·2^(n−⌊n/2⌋): both factors stay normal for n in [-150, 128], so the
// one rounding happens in the last product (denormals and overflow come out right).
inline VF vscale2n(VF p, VF n)
{
    const __m256i ni = _mm256_cvtps_epi32(n);
    const __m256i n1 = _mm256_srai_epi32(ni, 1);
    const __m256i n2 = _mm256_sub_epi32(ni, n1);
    const __m256i bias = _mm256_set1_epi32(127);
    const VF f1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n1, bias), 23));
    const VF f2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n2, bias), 23));
    return _mm256_mul_ps(_mm256_mul_ps(p, f1), f2);
}
inline VM vgt(VF a, VF b) { return _mm256_cmp_ps(a, b, _CMP_GT_OQ); }
inline VF vblend(VM m, VF t, VF f) { return _mm256_blendv_ps(f, t, m); }
inline VF vsqrt(VF a) { return _mm256_sqrt_ps(a); }
constexpr bool kHasScalef = false;
// 2ⁿ from t = 1.5·2²³ + 127 + n (see vexpScan)
inline VF vpow2FromMagic(VF t) { return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_castps_si256(t), 23)); }
inline float vhsum(VF a)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

// clang-format on

#include "backends/cpu_fast_kernels_body.inc"

} // namespace

const Kernels* kernelsAvx2()
{
    return &kTable;
}

} // namespace archlens::fastcpu
