#include "tensor/tensor.h"

#include <cstdlib>
#include <cstring>

#include <fmt/ranges.h>

namespace archlens {

namespace {

class OwnedStorage final : public Storage {
public:
    explicit OwnedStorage(size_t bytes)
        : m_bytes(bytes)
    {
        // aligned_alloc needs a size that is a multiple of the alignment
        size_t rounded = (bytes + 63) / 64 * 64;
        m_data = static_cast<std::byte*>(std::aligned_alloc(64, rounded == 0 ? 64 : rounded));
        if (!m_data)
            throw makeError(ErrorCode::Backend, "out of host memory allocating {} bytes", bytes);
    }
    ~OwnedStorage() override { std::free(m_data); }
    std::byte* data() override { return m_data; }
    size_t bytes() const override { return m_bytes; }
    bool mapped() const override { return false; }

private:
    std::byte* m_data = nullptr;
    size_t m_bytes;
};

} // namespace

std::string shapeToString(const Shape& s) { return fmt::format("[{}]", fmt::join(s, ", ")); }

int64_t shapeNumel(const Shape& s)
{
    int64_t n = 1;
    for (int64_t d : s)
        n *= d;
    return n;
}

Tensor Tensor::empty(const Shape& shape, DType dtype)
{
    for (int64_t d : shape)
        ARCHLENS_ASSERT(d >= 0, "negative dimension in {}", shapeToString(shape));
    Tensor t;
    t.m_shape = shape;
    t.m_dtype = dtype;
    t.m_storage = std::make_shared<OwnedStorage>(size_t(shapeNumel(shape)) * dtypeSize(dtype));
    return t;
}

Tensor Tensor::zeros(const Shape& shape, DType dtype)
{
    Tensor t = empty(shape, dtype);
    std::memset(t.raw(), 0, t.nbytes());
    return t;
}

Tensor Tensor::fromVector(const Shape& shape, const std::vector<float>& values)
{
    ARCHLENS_ASSERT(int64_t(values.size()) == shapeNumel(shape));
    Tensor t = empty(shape, DType::F32);
    std::memcpy(t.raw(), values.data(), values.size() * sizeof(float));
    return t;
}

Tensor Tensor::fromVectorI32(const Shape& shape, const std::vector<int32_t>& values)
{
    ARCHLENS_ASSERT(int64_t(values.size()) == shapeNumel(shape));
    Tensor t = empty(shape, DType::I32);
    std::memcpy(t.raw(), values.data(), values.size() * sizeof(int32_t));
    return t;
}

Tensor Tensor::view(std::shared_ptr<Storage> owner, size_t byteOffset, const Shape& shape, DType dtype)
{
    Tensor t;
    t.m_shape = shape;
    t.m_dtype = dtype;
    ARCHLENS_ASSERT(byteOffset + t.nbytes() <= owner->bytes(), "view out of range");
    t.m_storage = std::move(owner);
    t.m_offset = byteOffset;
    return t;
}

int64_t Tensor::dim(int i) const
{
    if (i < 0)
        i += rank();
    ARCHLENS_ASSERT(i >= 0 && i < rank(), "dim {} of rank-{} tensor", i, rank());
    return m_shape[size_t(i)];
}

void* Tensor::raw()
{
    ARCHLENS_ASSERT(m_storage);
    return m_storage->data() + m_offset;
}

const void* Tensor::raw() const
{
    ARCHLENS_ASSERT(m_storage);
    return m_storage->data() + m_offset;
}

float* Tensor::f32()
{
    ARCHLENS_ASSERT(m_dtype == DType::F32, "tensor is {}", dtypeName(m_dtype));
    return static_cast<float*>(raw());
}
const float* Tensor::f32() const
{
    ARCHLENS_ASSERT(m_dtype == DType::F32, "tensor is {}", dtypeName(m_dtype));
    return static_cast<const float*>(raw());
}
int32_t* Tensor::i32()
{
    ARCHLENS_ASSERT(m_dtype == DType::I32);
    return static_cast<int32_t*>(raw());
}
const int32_t* Tensor::i32() const
{
    ARCHLENS_ASSERT(m_dtype == DType::I32);
    return static_cast<const int32_t*>(raw());
}
int64_t* Tensor::i64()
{
    ARCHLENS_ASSERT(m_dtype == DType::I64);
    return static_cast<int64_t*>(raw());
}
const int64_t* Tensor::i64() const
{
    ARCHLENS_ASSERT(m_dtype == DType::I64);
    return static_cast<const int64_t*>(raw());
}
std::span<float> Tensor::span() { return {f32(), size_t(numel())}; }
std::span<const float> Tensor::span() const { return {f32(), size_t(numel())}; }

Tensor Tensor::reshaped(const Shape& shape) const
{
    ARCHLENS_ASSERT(shapeNumel(shape) == numel(), "reshape {} -> {}", shapeToString(m_shape), shapeToString(shape));
    Tensor t = *this;
    t.m_shape = shape;
    return t;
}

Tensor Tensor::rows(int64_t begin, int64_t end) const
{
    ARCHLENS_ASSERT(rank() >= 1 && begin >= 0 && begin <= end && end <= m_shape[0]);
    const size_t rowBytes = m_shape[0] == 0 ? 0 : nbytes() / size_t(m_shape[0]);
    Tensor t = *this;
    t.m_shape[0] = end - begin;
    t.m_offset += size_t(begin) * rowBytes;
    return t;
}

Tensor Tensor::clone() const
{
    Tensor t = empty(m_shape, m_dtype);
    std::memcpy(t.raw(), raw(), nbytes());
    return t;
}

Tensor Tensor::toF32() const { return toDType(DType::F32); }

Tensor Tensor::toDType(DType dtype) const
{
    if (dtype == m_dtype)
        return clone();
    Tensor out = empty(m_shape, dtype);
    const int64_t n = numel();
    auto load = [&](int64_t i) -> float {
        switch (m_dtype) {
        case DType::F32: return static_cast<const float*>(raw())[i];
        case DType::F16: return f16ToF32(static_cast<const uint16_t*>(raw())[i]);
        case DType::BF16: return bf16ToF32(static_cast<const uint16_t*>(raw())[i]);
        case DType::I32: return float(static_cast<const int32_t*>(raw())[i]);
        case DType::I64: return float(static_cast<const int64_t*>(raw())[i]);
        }
        return 0.f;
    };
    for (int64_t i = 0; i < n; ++i) {
        const float v = load(i);
        switch (dtype) {
        case DType::F32: static_cast<float*>(out.raw())[i] = v; break;
        case DType::F16: static_cast<uint16_t*>(out.raw())[i] = f32ToF16(v); break;
        case DType::BF16: static_cast<uint16_t*>(out.raw())[i] = f32ToBf16(v); break;
        case DType::I32: static_cast<int32_t*>(out.raw())[i] = int32_t(v); break;
        case DType::I64: static_cast<int64_t*>(out.raw())[i] = int64_t(v); break;
        }
    }
    return out;
}

void Tensor::fill(float value)
{
    for (float& v : span())
        v = value;
}

} // namespace archlens
