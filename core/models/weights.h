// Binding checkpoint tensors to a model by name, and the small pieces every decoder layer
// shares (norms, column slices). The same binding code runs twice: to describe a model
// from headers only (`info` on a 90 GB folder reads nothing but headers) and to load it
// (tensors widened to F32). So the facts `info` prints are exactly what loading binds.
#pragma once

#include <cstdint>
#include <string>

#include "backends/backend.h"
#include "formats/safetensors.h"

namespace archlens {

class WeightBinder {
public:
    // load = false: shapes and dtypes are checked from the headers, get() returns an
    // undefined Tensor and only the counts are kept.
    WeightBinder(const Checkpoint& ckpt, bool load);

    bool loading() const { return m_load; }
    const Checkpoint& checkpoint() const { return m_ckpt; }
    bool has(const std::string& name) const { return m_ckpt.contains(name); }
    // A required tensor: missing is Error(Format) naming it; a wrong shape or a non-float
    // dtype is Error(Shape) naming tensor, file, got and expected.
    Tensor get(const std::string& name, const Shape& shape);
    // The same, or an undefined Tensor when the checkpoint does not have it.
    Tensor getIfPresent(const std::string& name, const Shape& shape);

    // Parameters bound so far (each tensor once: a tied head is not bound twice).
    int64_t parameters() const { return m_params; }
    // Parameters a token does not touch: routed experts it is not sent to.
    int64_t inactiveParameters() const { return m_inactive; }
    // Called by an MoE block after binding its routed experts (X experts of `perExpert`
    // parameters each, k used per token).
    void routedExperts(int64_t perExpert, int64_t X, int64_t k) { m_inactive += perExpert * (X - k); }
    uint64_t loadedBytes() const { return uint64_t(m_params) * sizeof(float); }

private:
    const Checkpoint& m_ckpt;
    bool m_load;
    int64_t m_params = 0;
    int64_t m_inactive = 0;
};

// RMSNorm (no bias) or LayerNorm (weight and optional bias), with its epsilon.
struct NormWeights {
    Tensor w, b;
    float eps = 1e-5f;
    bool layerNorm = false;
};
void applyNorm(Backend& be, const NormWeights& n, const Tensor& x, Tensor& y);

// Copies columns [begin, begin + width) of a (T, W) tensor into a new (T, width) tensor.
Tensor columns(const Tensor& src, int64_t begin, int64_t width);

inline const Tensor* optionalTensor(const Tensor& t) { return t.defined() ? &t : nullptr; }

} // namespace archlens
