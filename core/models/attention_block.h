// Self-attention with a KV cache, shared by every attention-bearing architecture:
// Llama/Mixtral/OLMoE/Qwen2-MoE (separate q/k/v/o, optional biases, GQA, optional q/k
// RMSNorm over the whole projection and clip_qkv), GPT-NeoX (fused per-head QKV split into
// q/k/v at load, partial rotary, biases) and Jamba (no positional encoding).
//   q = x Wqᵀ (+b) [→ RMSNorm(q)]; k, v likewise; rotary on q, k at absolute positions;
//   append k, v to the cache; o = softmax(q kᵀ · scale + causal/sliding mask) v; out = o Woᵀ (+b)
// Keys are cached after rotary, so a cached key keeps the frequencies it was given.
#pragma once

#include <cstdint>
#include <string>

#include "backends/backend.h"
#include "models/rope.h"
#include "models/weights.h"
#include "probes/probes.h"

namespace archlens {

struct AttentionConfig {
    int64_t D = 0, H = 0, Hkv = 0, Dh = 0;
    bool rotary = true;       // false: no positional encoding (Jamba)
    RopeConfig rope;
    int64_t slidingWindow = 0; // 0: none
    float scale = 0;           // 1/sqrt(Dh)
    float clipQkv = 0;         // 0: off (OLMoE clip_qkv)
    float normEps = 1e-6f;     // q/k norm epsilon
};

struct AttentionWeights {
    Tensor q, k, v, o;          // (H·Dh, D), (Hkv·Dh, D), (Hkv·Dh, D), (D, H·Dh)
    Tensor qBias, kBias, vBias, oBias;
    Tensor qNorm, kNorm;        // (H·Dh), (Hkv·Dh) or undefined
};

// Keys and values of every position so far, (capacity, Hkv, Dh) each, grown by doubling.
struct KvCache {
    Tensor k, v;
    int64_t length = 0;
    void append(const Tensor& kNew, const Tensor& vNew); // (T, Hkv, Dh)
    KvCache clone() const;
};

class AttentionBlock {
public:
    AttentionBlock(AttentionConfig cfg, AttentionWeights w);
    const AttentionConfig& config() const { return m_cfg; }
    uint64_t cacheBytesPerToken() const { return uint64_t(2 * m_cfg.Hkv * m_cfg.Dh) * sizeof(float); }
    // x (T, D) at positions [cache.length, cache.length + T) -> out (T, D). Records attn.weights
    // (H, T, S) when the sink asks for it.
    void forward(Backend& be, const Tensor& x, KvCache& cache, ProbeSink* sink, int layer, Tensor& out) const;

private:
    AttentionConfig m_cfg;
    AttentionWeights m_w;
};

// Binds Llama-style names `<prefix>{q,k,v,o}_proj.{weight,bias}` (+ q_norm/k_norm when
// qkNorm). Biases: required when `bias` says so, for o only when `outputBias`.
AttentionWeights bindLlamaAttention(WeightBinder& wb, const std::string& prefix, const AttentionConfig& c, bool qkvBias,
                                    bool outputBias, bool qkNorm);

} // namespace archlens
