// Mixtral (MixtralForCausalLM), model-formats §7: Llama attention with an optional sliding
// window; the FFN is block_sparse_moe: router softmax over all experts, top-k, weights
// renormalised to sum 1, SwiGLU experts w1 (gate), w3 (up), w2 (down). transformers v5's
// `mlp.` prefix with fused gate_up_proj / down_proj is read too.
#include <fmt/format.h>

#include "models/llama_family.h"

namespace archlens {

namespace {

DecoderSpec buildMixtral(const HfConfig& c, WeightBinder& wb)
{
    LlamaFamilyConfig f = readLlamaFamily(c, 1e-5, 1e6);
    f.attn.slidingWindow = c.getInt("sliding_window", 0);
    MoeConfig mc;
    mc.D = f.D;
    mc.I = f.I;
    mc.X = positiveInt(c, "num_local_experts", 8);
    mc.k = positiveInt(c, "num_experts_per_tok", 2);
    mc.renormalize = true;
    DecoderSpec s;
    bindLlamaEnds(wb, f, s);
    for (int64_t i = 0; i < f.layers; ++i) {
        const std::string p = fmt::format("model.layers.{}.", i);
        DecoderLayer L;
        L.inputNorm = rmsNormWeights(wb, p + "input_layernorm.weight", f.D, f.eps);
        L.attention = std::make_unique<AttentionBlock>(
            f.attn, bindLlamaAttention(wb, p + "self_attn.", f.attn, false, false, false));
        L.ffnNorm = rmsNormWeights(wb, p + "post_attention_layernorm.weight", f.D, f.eps);
        const bool v5 = !wb.has(p + "block_sparse_moe.gate.weight") && wb.has(p + "mlp.gate.weight");
        const std::string moe = p + (v5 ? "mlp." : "block_sparse_moe.");
        checkExpertCount(c, wb, moe + "gate.weight", "num_local_experts", mc.X, mc.k, "num_experts_per_tok");
        MoeWeights w;
        w.router = wb.get(moe + "gate.weight", {mc.X, f.D});
        w.experts = bindExperts(wb, {moe + "experts.", "w1", "w3", "w2"}, mc);
        L.moe = std::make_unique<MoeBlock>(mc, std::move(w));
        s.layers.push_back(std::move(L));
    }
    s.info.bosTokenId = tokenIdKey(c, "bos_token_id", 1);
    s.info.eosTokenId = tokenIdKey(c, "eos_token_id", 2);
    addAttentionFacts(s.info, f);
    s.info.facts.emplace_back("experts", fmt::format("{} per layer, top-{} (renormalised)", mc.X, mc.k));
    return s;
}

} // namespace

ModelFactory mixtralFactory()
{
    return decoderFactory("mixtral", {"MixtralForCausalLM"}, {"mixtral"}, buildMixtral);
}

} // namespace archlens
