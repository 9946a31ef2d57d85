// Element types a Tensor can hold. The CPU computes in F32; F16/BF16 exist for weights
// as stored and for the GPU backend. I32/I64 hold token ids, expert ids and counts.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>

namespace archlens {

enum class DType : uint8_t { F32, F16, BF16, I32, I64 };

size_t dtypeSize(DType t);
std::string_view dtypeName(DType t); // "F32", "F16", "BF16", "I32", "I64" (safetensors spelling)

inline float bf16ToF32(uint16_t v)
{
    uint32_t bits = uint32_t(v) << 16;
    float f;
    std::memcpy(&f, &bits, 4);
    return f;
}

// Round to nearest even, as torch does; NaN stays NaN.
inline uint16_t f32ToBf16(float f)
{
    uint32_t bits;
    std::memcpy(&bits, &f, 4);
    if ((bits & 0x7fffffffu) > 0x7f800000u)
        return uint16_t((bits >> 16) | 0x40);
    uint32_t rounding = 0x7fffu + ((bits >> 16) & 1u);
    return uint16_t((bits + rounding) >> 16);
}

float f16ToF32(uint16_t v);
uint16_t f32ToF16(float f);

} // namespace archlens
