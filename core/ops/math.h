// Scalar building blocks shared by the backends, with the exact conventions of the
// PyTorch functions the reference models use.
#pragma once

#include <cmath>
#include <cstdint>

namespace archlens {

inline float sigmoidf(float v) { return 1.0f / (1.0f + std::exp(-v)); }
inline float siluf(float v) { return v * sigmoidf(v); }
// torch.nn.functional.softplus with beta 1, threshold 20: linear above the threshold.
inline float softplusf(float v) { return v > 20.0f ? v : std::log1p(std::exp(v)); }
inline float geluErf(float v) { return 0.5f * v * (1.0f + std::erf(v * 0.70710678118654752f)); }
inline float geluTanh(float v)
{
    return 0.5f * v * (1.0f + std::tanh(0.7978845608028654f * (v + 0.044715f * v * v * v)));
}

// Numerically stable softmax of n values into out.
void softmax(const float* in, float* out, int64_t n);

// splitmix64: a tiny, well-known generator; the same seed gives the same stream
// everywhere. Returns a double in [0, 1).
uint64_t splitmix64(uint64_t& state);
double uniform01(uint64_t& state);

// Greedy when temperature <= 0 (first maximum wins). Otherwise softmax(logits / T),
// keep the topK most likely (0: all), then the smallest set whose mass reaches topP
// (always at least one), renormalise and draw.
int32_t sampleFromLogits(const float* logits, int64_t n, float temperature, int topK, float topP, uint64_t& rngState);

} // namespace archlens
