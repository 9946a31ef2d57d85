// Qwen2-MoE (Qwen2MoeForCausalLM), model-formats §8: Llama-like attention with q/k/v biases;
// layer i has an MoE FFN iff it is not in mlp_only_layers and (i + 1) % decoder_sparse_step
// == 0 (else a dense SwiGLU of intermediate_size). The MoE adds a shared expert scaled by
// sigmoid(shared_expert_gate · x); routed weights are renormalised iff norm_topk_prob.
// A sliding window applies to layers ≥ max_window_layers when use_sliding_window is true.
#include <algorithm>

#include <fmt/format.h>

#include "models/llama_family.h"

namespace archlens {

namespace {

DecoderSpec buildQwen2Moe(const HfConfig& c, WeightBinder& wb)
{
    LlamaFamilyConfig f = readLlamaFamily(c, 1e-6, 10000);
    const bool qkvBias = c.getBool("qkv_bias", true);
    MoeConfig mc;
    mc.D = f.D;
    mc.X = c.getInt("num_experts", 60);
    mc.k = positiveInt(c, "num_experts_per_tok", 4);
    mc.I = positiveInt(c, "moe_intermediate_size", 1408);
    mc.sharedI = c.getInt("shared_expert_intermediate_size", 5632);
    mc.renormalize = c.getBool("norm_topk_prob", false);
    if (mc.X < 0)
        c.fail("num_experts", fmt::format("must not be negative, found {}", mc.X));
    if (mc.sharedI < 0)
        c.fail("shared_expert_intermediate_size", fmt::format("must not be negative, found {}", mc.sharedI));
    const int64_t sparseStep = positiveInt(c, "decoder_sparse_step", 1);
    std::vector<int64_t> mlpOnly;
    if (c.has("mlp_only_layers")) {
        const auto& j = c.json().at("mlp_only_layers");
        if (!j.is_array())
            c.fail("mlp_only_layers", fmt::format("expected a list of layer indices, found {}", j.dump()));
        for (const auto& v : j) {
            if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() >= f.layers)
                c.fail("mlp_only_layers", fmt::format("{} is not a layer index (0..{})", v.dump(), f.layers - 1));
            mlpOnly.push_back(v.get<int64_t>());
        }
    }
    const bool window = c.getBool("use_sliding_window", false);
    const int64_t windowSize = window ? positiveInt(c, "sliding_window") : 0;
    const int64_t maxWindowLayers = c.getInt("max_window_layers", f.layers);

    DecoderSpec s;
    bindLlamaEnds(wb, f, s);
    int64_t moeLayers = 0;
    for (int64_t i = 0; i < f.layers; ++i) {
        const std::string p = fmt::format("model.layers.{}.", i);
        DecoderLayer L;
        AttentionConfig ac = f.attn;
        ac.slidingWindow = (window && i >= maxWindowLayers) ? windowSize : 0;
        L.inputNorm = rmsNormWeights(wb, p + "input_layernorm.weight", f.D, f.eps);
        L.attention = std::make_unique<AttentionBlock>(
            ac, bindLlamaAttention(wb, p + "self_attn.", ac, qkvBias, false, false));
        L.ffnNorm = rmsNormWeights(wb, p + "post_attention_layernorm.weight", f.D, f.eps);
        const bool sparse = std::find(mlpOnly.begin(), mlpOnly.end(), i) == mlpOnly.end() && mc.X > 0
            && (i + 1) % sparseStep == 0;
        if (sparse) {
            ++moeLayers;
            checkExpertCount(c, wb, p + "mlp.gate.weight", "num_experts", mc.X, mc.k, "num_experts_per_tok");
            MoeWeights w;
            w.router = wb.get(p + "mlp.gate.weight", {mc.X, f.D});
            w.experts = bindExperts(wb, {p + "mlp.experts.", "gate_proj", "up_proj", "down_proj"}, mc);
            if (mc.sharedI > 0) {
                const MlpWeights sh = bindSwiGlu(wb, p + "mlp.shared_expert.", f.D, mc.sharedI);
                w.shared = {sh.gate, sh.up, sh.down};
                w.sharedGate = wb.get(p + "mlp.shared_expert_gate.weight", {1, f.D});
            }
            L.moe = std::make_unique<MoeBlock>(mc, std::move(w));
        } else {
            L.mlp = std::make_unique<MlpBlock>(MlpBlock::Kind::SwiGlu, bindSwiGlu(wb, p + "mlp.", f.D, f.I));
        }
        s.layers.push_back(std::move(L));
    }
    s.info.bosTokenId = tokenIdKey(c, "bos_token_id", -1);
    s.info.eosTokenId = tokenIdKey(c, "eos_token_id", -1);
    addAttentionFacts(s.info, f);
    s.info.facts.emplace_back(
        "experts", fmt::format("{} per MoE layer ({} of {} layers), top-{} ({}), shared expert {}", mc.X, moeLayers,
                               f.layers, mc.k, mc.renormalize ? "renormalised" : "raw probabilities",
                               mc.sharedI > 0 ? fmt::format("of width {}", mc.sharedI) : std::string("none")));
    return s;
}

} // namespace

ModelFactory qwen2MoeFactory()
{
    return decoderFactory("qwen2_moe", {"Qwen2MoeForCausalLM"}, {"qwen2_moe"}, buildQwen2Moe);
}

} // namespace archlens
