#include "tensor/dtype.h"

#include <cmath>

namespace archlens {

size_t dtypeSize(DType t)
{
    switch (t) {
    case DType::F32: return 4;
    case DType::F16: return 2;
    case DType::BF16: return 2;
    case DType::I32: return 4;
    case DType::I64: return 8;
    }
    return 0;
}

std::string_view dtypeName(DType t)
{
    switch (t) {
    case DType::F32: return "F32";
    case DType::F16: return "F16";
    case DType::BF16: return "BF16";
    case DType::I32: return "I32";
    case DType::I64: return "I64";
    }
    return "?";
}

float f16ToF32(uint16_t h)
{
    const uint32_t sign = uint32_t(h & 0x8000u) << 16;
    const uint32_t exp = (h >> 10) & 0x1fu;
    const uint32_t man = h & 0x3ffu;
    uint32_t bits;
    if (exp == 0) {
        if (man == 0) {
            bits = sign;
        } else { // subnormal: value = man * 2^-24
            float f = std::ldexp(float(man), -24);
            std::memcpy(&bits, &f, 4);
            bits |= sign;
        }
    } else if (exp == 31) {
        bits = sign | 0x7f800000u | (man << 13);
    } else {
        bits = sign | ((exp + 112) << 23) | (man << 13);
    }
    float f;
    std::memcpy(&f, &bits, 4);
    return f;
}

uint16_t f32ToF16(float f)
{
    uint32_t bits;
    std::memcpy(&bits, &f, 4);
    const uint16_t sign = uint16_t((bits >> 16) & 0x8000u);
    const uint32_t absBits = bits & 0x7fffffffu;
    if (absBits > 0x7f800000u)
        return uint16_t(sign | 0x7e00u); // NaN
    if (absBits >= 0x477ff000u)          // rounds to >= 65520: overflow to inf
        return uint16_t(sign | 0x7c00u);
    if (absBits < 0x38800000u) { // below the smallest normal half: subnormal or zero
        float a;
        std::memcpy(&a, &absBits, 4);
        const float scaled = a * 16777216.0f; // 2^24
        return uint16_t(sign | uint16_t(std::nearbyint(scaled)));
    }
    // normal: round mantissa to 10 bits, nearest even
    uint32_t e = ((absBits >> 23) - 112) << 10;
    uint32_t m = absBits & 0x7fffffu;
    uint32_t h = e | (m >> 13);
    const uint32_t rem = m & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (h & 1u)))
        ++h;
    return uint16_t(sign | h);
}

} // namespace archlens
