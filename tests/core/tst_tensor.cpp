#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "tensor/tensor.h"

using namespace archlens;

TEST(DType, Bf16RoundTripAndRounding)
{
    EXPECT_EQ(bf16ToF32(f32ToBf16(1.0f)), 1.0f);
    EXPECT_EQ(bf16ToF32(f32ToBf16(-3.5f)), -3.5f);
    // 1 + 2^-8 is exactly halfway between two bf16 values: ties go to even (1.0)
    EXPECT_EQ(bf16ToF32(f32ToBf16(1.0f + 1.0f / 256)), 1.0f);
    EXPECT_EQ(bf16ToF32(f32ToBf16(1.0f + 3.0f / 256)), 1.0f + 4.0f / 256);
    EXPECT_TRUE(std::isnan(bf16ToF32(f32ToBf16(std::numeric_limits<float>::quiet_NaN()))));
}

TEST(DType, F16KnownValues)
{
    EXPECT_EQ(f16ToF32(0x3c00), 1.0f);
    EXPECT_EQ(f16ToF32(0xc000), -2.0f);
    EXPECT_EQ(f16ToF32(0x7bff), 65504.0f);
    EXPECT_EQ(f16ToF32(0x0001), std::ldexp(1.0f, -24)); // smallest subnormal
    EXPECT_TRUE(std::isinf(f16ToF32(0x7c00)));
    for (float v : {0.f, 1.f, -0.5f, 1234.f, 65504.f, 6.1e-5f, 3e-7f})
        EXPECT_EQ(f16ToF32(f32ToF16(v)), f16ToF32(f32ToF16(f16ToF32(f32ToF16(v))))) << v;
    EXPECT_EQ(f32ToF16(1.0f), 0x3c00);
    EXPECT_EQ(f32ToF16(65520.f), 0x7c00); // rounds to infinity
    EXPECT_EQ(f32ToF16(1.0f + 1.0f / 2048), 0x3c00); // tie to even
}

TEST(Tensor, ShapesViewsAndConversions)
{
    Tensor t = Tensor::fromVector({2, 3}, {1, 2, 3, 4, 5, 6});
    EXPECT_EQ(t.numel(), 6);
    EXPECT_EQ(t.dim(-1), 3);
    Tensor r = t.rows(1, 2);
    EXPECT_EQ(r.shape(), (Shape{1, 3}));
    EXPECT_EQ(r.f32()[0], 4.f);
    r.f32()[0] = 40.f; // shares storage
    EXPECT_EQ(t.f32()[3], 40.f);
    Tensor c = t.clone();
    c.f32()[0] = -1.f;
    EXPECT_EQ(t.f32()[0], 1.f);
    Tensor bf = t.toDType(DType::BF16);
    EXPECT_EQ(bf.nbytes(), 12u);
    Tensor back = bf.toF32();
    EXPECT_EQ(back.f32()[3], 40.f);
    EXPECT_EQ(t.reshaped({3, 2}).dim(0), 3);
    EXPECT_EQ(shapeToString({2, 3}), "[2, 3]");
    Tensor z = Tensor::zeros({0, 4});
    EXPECT_EQ(z.numel(), 0);
}
