// Portable kernels of the fast CPU backend: one float per "vector", compiled with the
// project's baseline flags. Same algorithms as the AVX kernels (cpu_fast_kernels_body.inc),
// so every machine computes the same maths; the compiler may still auto-vectorise with the
// baseline ISA.
#include "backends/cpu_fast_kernels.h"

namespace archlens::fastcpu {

namespace {

// The vector vocabulary reads best one definition per line.
// clang-format off
using VF = float;
using VM = bool;
constexpr int kGemmMR = 4; // rows of the GEMM register tile
constexpr int kLanes = 1;
constexpr Isa kIsa = Isa::Scalar;
constexpr const char* kIsaName = "scalar";
const float kExpLo = -104.f, kExpHi = 89.f;

inline VF vzero() { return 0.f; }
inline VF vset1(float v) { return v; }
inline VF vload(const float* p) { return *p; }
inline VF vloadN(const float* p, int n) { return n > 0 ? *p : 0.f; }
inline void vstore(float* p, VF v) { *p = v; }
inline void vstoreN(float* p, VF v, int n)
{
    if (n > 0)
        *p = v;
}
inline VF vadd(VF a, VF b) { return a + b; }
inline VF vsub(VF a, VF b) { return a - b; }
inline VF vmul(VF a, VF b) { return a * b; }
inline VF vdiv(VF a, VF b) { return a / b; }
inline VF vfma(VF a, VF b, VF c) { return a * b + c; }
inline VF vfnma(VF a, VF b, VF c) { return c - a * b; }
inline VF vabs(VF a) { return a < 0.f ? -a : a; }
// comparisons with NaN are false, so NaN falls through both
inline VF vclamp(VF x, VF lo, VF hi) { return x < lo ? lo : (x > hi ? hi : x); }
// adding and subtracting 1.5·2²³ rounds to nearest for |x| < 2²² (we need |x| < 151)
inline VF vround(VF x)
{
    return (x + 12582912.f) - 12582912.f;
}
inline float pow2i(int n) { return __builtin_bit_cast(float, (n + 127) << 23); }
inline VF vscale2n(VF p, VF n)
{
    if (n != n)
        return p + n;
    const int ni = int(n), n1 = ni >> 1;
    return p * pow2i(n1) * pow2i(ni - n1);
}
inline VM vgt(VF a, VF b) { return a > b; }
inline VF vblend(VM m, VF t, VF f) { return m ? t : f; }
inline VF vsqrt(VF a) { return __builtin_sqrtf(a); }
inline float vhsum(VF a) { return a; }
constexpr bool kHasScalef = false;
// 2ⁿ from t = 1.5·2²³ + 127 + n (see vexpScan); NaN stays NaN through the product
inline VF vpow2FromMagic(VF t) { return __builtin_bit_cast(float, __builtin_bit_cast(unsigned, t) << 23); }

// clang-format on

#include "backends/cpu_fast_kernels_body.inc"

} // namespace

const Kernels* kernelsScalar()
{
    return &kTable;
}

} // namespace archlens::fastcpu
