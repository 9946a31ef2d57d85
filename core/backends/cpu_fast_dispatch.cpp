// Run-time choice of the fast kernels' instruction set. This file is compiled with the
// baseline flags: it only asks the CPU (GCC's __builtin_cpu_supports, which also checks
// that the OS saves the AVX/AVX-512 registers) and hands out the right table.
#include "backends/cpu_fast_dispatch.h"

#include <cstdlib>

#include "base/error.h"

namespace archlens::fastcpu {

const char* isaName(Isa isa)
{
    switch (isa) {
    case Isa::Scalar:
        return "scalar";
    case Isa::Avx2:
        return "avx2";
    case Isa::Avx512:
        return "avx512";
    }
    return "?";
}

std::optional<Isa> isaFromName(std::string_view name)
{
    for (Isa isa : { Isa::Scalar, Isa::Avx2, Isa::Avx512 })
        if (name == isaName(isa))
            return isa;
    return std::nullopt;
}

const Kernels* kernelsFor(Isa isa)
{
    switch (isa) {
    case Isa::Scalar:
        return kernelsScalar();
#ifdef ARCHLENS_FAST_X86
    case Isa::Avx2:
        __builtin_cpu_init();
        if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
            return kernelsAvx2();
        return nullptr;
    case Isa::Avx512:
        __builtin_cpu_init();
        if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq"))
            return kernelsAvx512();
        return nullptr;
#endif
    default:
        return nullptr;
    }
}

std::vector<Isa> availableIsas()
{
    std::vector<Isa> out;
    for (Isa isa : { Isa::Scalar, Isa::Avx2, Isa::Avx512 })
        if (kernelsFor(isa))
            out.push_back(isa);
    return out;
}

Isa bestIsa()
{
    const auto all = availableIsas();
    Isa best = all.back();
    if (const char* cap = std::getenv("ARCHLENS_CPU_ISA"); cap && *cap) {
        const auto capped = isaFromName(cap);
        if (!capped)
            throw makeError(ErrorCode::InvalidArgument,
                "ARCHLENS_CPU_ISA: unknown instruction set '{}' (expected scalar, avx2 or avx512)", cap);
        if (int(*capped) < int(best))
            best = *capped;
    }
    return best;
}

} // namespace archlens::fastcpu
