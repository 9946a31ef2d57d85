#include "models/weights.h"

#include <cstring>

#include <fmt/format.h>

namespace archlens {

WeightBinder::WeightBinder(const Checkpoint& ckpt, bool load)
    : m_ckpt(ckpt)
    , m_load(load)
{
}

Tensor WeightBinder::get(const std::string& name, const Shape& shape)
{
    const SafetensorInfo& i = m_ckpt.info(name); // Error(Format) naming a missing tensor
    if (i.shape != shape)
        throw Error(ErrorCode::Shape,
                    fmt::format("tensor '{}' has shape {}, expected {}", name, shapeToString(i.shape),
                                shapeToString(shape)),
                    m_ckpt.fileOf(name).string());
    if (i.dtype != StDType::F32 && i.dtype != StDType::F16 && i.dtype != StDType::BF16)
        throw Error(ErrorCode::Shape,
                    fmt::format("tensor '{}' has dtype {}, expected a floating type (F32, F16 or BF16)", name,
                                stDTypeName(i.dtype)),
                    m_ckpt.fileOf(name).string());
    m_params += shapeNumel(shape);
    return m_load ? m_ckpt.getF32(name, shape) : Tensor();
}

Tensor WeightBinder::getIfPresent(const std::string& name, const Shape& shape)
{
    return has(name) ? get(name, shape) : Tensor();
}

void applyNorm(Backend& be, const NormWeights& n, const Tensor& x, Tensor& y)
{
    if (n.layerNorm)
        be.layerNorm(x, n.w, optionalTensor(n.b), n.eps, y);
    else
        be.rmsNorm(x, n.w, n.eps, y);
}

Tensor columns(const Tensor& src, int64_t begin, int64_t width)
{
    const int64_t T = src.dim(0), W = src.dim(1);
    Tensor out = Tensor::empty({T, width});
    for (int64_t t = 0; t < T; ++t)
        std::memcpy(out.f32() + t * width, src.f32() + t * W + begin, size_t(width) * sizeof(float));
    return out;
}

} // namespace archlens
