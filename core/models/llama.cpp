// Llama (LlamaForCausalLM; Mistral is the same with a sliding window), model-formats §6:
//   h += Attn(RMSNorm(h)) with GQA and rotary (rope_theta; rope_scaling linear, dynamic,
//   llama3, yarn); h += SwiGLU(RMSNorm(h)); logits = RMSNorm_f(h) · Wₗₘᵀ (tied or untied).
#include <fmt/format.h>

#include "models/llama_family.h"

namespace archlens {

namespace {

DecoderSpec buildLlama(const HfConfig& c, WeightBinder& wb)
{
    LlamaFamilyConfig f = readLlamaFamily(c, 1e-6, 10000);
    f.attn.slidingWindow = c.getInt("sliding_window", 0); // Mistral; Llama configs have none
    const bool attnBias = c.getBool("attention_bias", false);
    const bool mlpBias = c.getBool("mlp_bias", false);
    DecoderSpec s;
    bindLlamaEnds(wb, f, s);
    for (int64_t i = 0; i < f.layers; ++i) {
        const std::string p = fmt::format("model.layers.{}.", i);
        DecoderLayer L;
        L.inputNorm = rmsNormWeights(wb, p + "input_layernorm.weight", f.D, f.eps);
        L.attention = std::make_unique<AttentionBlock>(
            f.attn, bindLlamaAttention(wb, p + "self_attn.", f.attn, attnBias, attnBias, false));
        L.ffnNorm = rmsNormWeights(wb, p + "post_attention_layernorm.weight", f.D, f.eps);
        L.mlp = std::make_unique<MlpBlock>(MlpBlock::Kind::SwiGlu, bindSwiGlu(wb, p + "mlp.", f.D, f.I, mlpBias));
        s.layers.push_back(std::move(L));
    }
    s.info.bosTokenId = tokenIdKey(c, "bos_token_id", 1);
    s.info.eosTokenId = tokenIdKey(c, "eos_token_id", 2);
    addAttentionFacts(s.info, f);
    return s;
}

} // namespace

ModelFactory llamaFactory()
{
    return decoderFactory("llama", {"LlamaForCausalLM", "MistralForCausalLM"}, {"llama", "mistral"}, buildLlama);
}

} // namespace archlens
