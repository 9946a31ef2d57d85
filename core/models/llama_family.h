// What Llama, Mixtral, OLMoE and Qwen2-MoE share (model-formats §6–§8): config keys for
// shape, RMSNorm, rotary and attention; the embedding/norm/head names under `model.`;
// and a check that a router's row count matches the config's expert count.
#pragma once

#include <cstdint>
#include <string>

#include "models/decoder.h"

namespace archlens {

struct LlamaFamilyConfig {
    int64_t D = 0, layers = 0, V = 0, I = 0;
    double eps = 1e-6;
    bool tied = false;
    AttentionConfig attn; // H, Hkv, Dh, rope, scale, sliding window
};

// hidden_size, num_hidden_layers, num_attention_heads, num_key_value_heads (→ heads),
// head_dim (→ hidden/heads), intermediate_size, vocab_size, rms_norm_eps, rope keys,
// tie_word_embeddings (default false), hidden_act (must be silu).
LlamaFamilyConfig readLlamaFamily(const HfConfig& c, double epsDefault, double thetaDefault);

// Embedding, final norm and head under the usual names; fills spec.D/V/embedding/finalNorm/lmHead.
void bindLlamaEnds(WeightBinder& wb, const LlamaFamilyConfig& f, DecoderSpec& spec);
NormWeights rmsNormWeights(WeightBinder& wb, const std::string& name, int64_t D, double eps);

// Error(Config) naming `key` and the router tensor when its rows differ from X.
void checkExpertCount(const HfConfig& c, const WeightBinder& wb, const std::string& routerName, const char* key,
                      int64_t X, int64_t k, const char* topkKey);

// Facts for `info` common to the family (heads, rotary, window ...).
void addAttentionFacts(ModelInfo& info, const LlamaFamilyConfig& f);

} // namespace archlens
