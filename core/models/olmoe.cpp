// OLMoE (OlmoeForCausalLM), model-formats §8: Llama-like with q/k RMSNorms over the whole
// projected q and k (before the head split and rotary), optional clip_qkv, and an MoE FFN
// of many small experts: softmax over all experts, top-k, renormalised iff norm_topk_prob.
#include <fmt/format.h>

#include "models/llama_family.h"

namespace archlens {

namespace {

DecoderSpec buildOlmoe(const HfConfig& c, WeightBinder& wb)
{
    LlamaFamilyConfig f = readLlamaFamily(c, 1e-5, 10000);
    if (c.has("clip_qkv")) {
        f.attn.clipQkv = float(c.getDouble("clip_qkv"));
        if (!(f.attn.clipQkv > 0))
            c.fail("clip_qkv", fmt::format("must be positive or null, found {:g}", f.attn.clipQkv));
    }
    const bool attnBias = c.getBool("attention_bias", false);
    MoeConfig mc;
    mc.D = f.D;
    mc.I = f.I;
    mc.X = positiveInt(c, "num_experts", 64);
    mc.k = positiveInt(c, "num_experts_per_tok", 8);
    mc.renormalize = c.getBool("norm_topk_prob", false);
    DecoderSpec s;
    bindLlamaEnds(wb, f, s);
    for (int64_t i = 0; i < f.layers; ++i) {
        const std::string p = fmt::format("model.layers.{}.", i);
        DecoderLayer L;
        L.inputNorm = rmsNormWeights(wb, p + "input_layernorm.weight", f.D, f.eps);
        L.attention = std::make_unique<AttentionBlock>(
            f.attn, bindLlamaAttention(wb, p + "self_attn.", f.attn, attnBias, attnBias, true));
        L.ffnNorm = rmsNormWeights(wb, p + "post_attention_layernorm.weight", f.D, f.eps);
        checkExpertCount(c, wb, p + "mlp.gate.weight", "num_experts", mc.X, mc.k, "num_experts_per_tok");
        MoeWeights w;
        w.router = wb.get(p + "mlp.gate.weight", {mc.X, f.D});
        w.experts = bindExperts(wb, {p + "mlp.experts.", "gate_proj", "up_proj", "down_proj"}, mc);
        L.moe = std::make_unique<MoeBlock>(mc, std::move(w));
        s.layers.push_back(std::move(L));
    }
    s.info.bosTokenId = tokenIdKey(c, "bos_token_id", -1);
    s.info.eosTokenId = tokenIdKey(c, "eos_token_id", 50279);
    addAttentionFacts(s.info, f);
    s.info.facts.emplace_back("experts", fmt::format("{} per layer, top-{} ({})", mc.X, mc.k,
                                                     mc.renormalize ? "renormalised" : "raw probabilities"));
    return s;
}

} // namespace

ModelFactory olmoeFactory()
{
    return decoderFactory("olmoe", {"OlmoeForCausalLM"}, {"olmoe"}, buildOlmoe);
}

} // namespace archlens
