// Tensor: a shape, a dtype and contiguous row-major storage that is either owned
// (64-byte aligned heap memory) or a view into a memory-mapped file kept alive by a
// shared owner. Copies share storage (like torch); clone() makes a deep copy.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "base/error.h"
#include "tensor/dtype.h"

namespace archlens {

using Shape = std::vector<int64_t>;

std::string shapeToString(const Shape& s); // "[2, 3]"
int64_t shapeNumel(const Shape& s);

class Storage {
public:
    virtual ~Storage() = default;
    virtual std::byte* data() = 0;
    virtual size_t bytes() const = 0;
    virtual bool mapped() const = 0;
};

class Tensor {
public:
    Tensor() = default;

    // Zero-filled owned tensor.
    static Tensor zeros(const Shape& shape, DType dtype = DType::F32);
    // Uninitialised owned tensor (for outputs that are fully written).
    static Tensor empty(const Shape& shape, DType dtype = DType::F32);
    static Tensor fromVector(const Shape& shape, const std::vector<float>& values);
    static Tensor fromVectorI32(const Shape& shape, const std::vector<int32_t>& values);
    // A view of bytes owned by someone else (a mapped file); `owner` keeps them alive.
    static Tensor view(std::shared_ptr<Storage> owner, size_t byteOffset, const Shape& shape, DType dtype);

    bool defined() const { return m_storage != nullptr; }
    const Shape& shape() const { return m_shape; }
    int rank() const { return int(m_shape.size()); }
    int64_t dim(int i) const; // negative i counts from the end
    int64_t numel() const { return shapeNumel(m_shape); }
    DType dtype() const { return m_dtype; }
    size_t nbytes() const { return size_t(numel()) * dtypeSize(m_dtype); }
    bool isMapped() const { return m_storage && m_storage->mapped(); }

    void* raw();
    const void* raw() const;

    float* f32();
    const float* f32() const;
    int32_t* i32();
    const int32_t* i32() const;
    int64_t* i64();
    const int64_t* i64() const;
    std::span<float> span();
    std::span<const float> span() const;

    // Same storage, new shape of equal numel.
    Tensor reshaped(const Shape& shape) const;
    // Rows [begin, end) along dim 0, sharing storage.
    Tensor rows(int64_t begin, int64_t end) const;
    Tensor clone() const;
    // Widen F16/BF16 (or copy F32) into a new owned F32 tensor.
    Tensor toF32() const;
    Tensor toDType(DType dtype) const;

    void fill(float value);

private:
    std::shared_ptr<Storage> m_storage;
    size_t m_offset = 0;
    Shape m_shape;
    DType m_dtype = DType::F32;
};

} // namespace archlens
