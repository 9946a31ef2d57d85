// Jamba (JambaForCausalLM), model-formats §9: a hybrid decoder.
//   layer i mixer: attention iff i % attn_layer_period == attn_layer_offset, else Mamba
//   layer i FFN:   MoE iff num_experts > 1 and i % expert_layer_period == expert_layer_offset,
//                  else a dense SwiGLU MLP
// Attention has no positional encoding (the Mamba layers carry order); the Mamba mixer is
// Mamba-1 with RMSNorms on δ, B and C; the MoE uses the raw top-k router probabilities
// (no renormalisation).
#include <cmath>

#include <fmt/format.h>

#include "models/llama_family.h"

namespace archlens {

namespace {

void checkSchedule(const HfConfig& c, const char* periodKey, int64_t period, const char* offsetKey, int64_t offset)
{
    if (period <= 0)
        c.fail(periodKey, fmt::format("must be positive, found {}", period));
    if (offset < 0 || offset >= period)
        c.fail(offsetKey, fmt::format("{} is not a layer offset within the period {} = {} (expected 0..{})", offset,
                                      periodKey, period, period - 1));
}

DecoderSpec buildJamba(const HfConfig& c, WeightBinder& wb)
{
    LlamaFamilyConfig f;
    f.D = positiveInt(c, "hidden_size", 4096);
    f.layers = positiveInt(c, "num_hidden_layers", 32);
    f.V = positiveInt(c, "vocab_size", 65536);
    f.I = positiveInt(c, "intermediate_size", 14336);
    f.eps = c.getDouble("rms_norm_eps", 1e-6);
    f.tied = c.getBool("tie_word_embeddings", false);
    const std::string act = c.getString("hidden_act", "silu");
    if (act != "silu")
        c.fail("hidden_act", fmt::format("only \"silu\" is supported, found \"{}\"", act));
    auto& a = f.attn;
    a.D = f.D;
    a.H = positiveInt(c, "num_attention_heads", 32);
    a.Hkv = positiveInt(c, "num_key_value_heads", 8);
    if (a.H % a.Hkv != 0)
        c.fail("num_key_value_heads", fmt::format("{} does not divide num_attention_heads {}", a.Hkv, a.H));
    if (f.D % a.H != 0)
        c.fail("num_attention_heads", fmt::format("{} does not divide hidden_size {}", a.H, f.D));
    a.Dh = f.D / a.H;
    a.rotary = false;
    a.scale = float(1.0 / std::sqrt(double(a.Dh)));
    a.slidingWindow = c.getInt("sliding_window", 0);

    const int64_t attnPeriod = c.getInt("attn_layer_period", 8), attnOffset = c.getInt("attn_layer_offset", 4);
    const int64_t expertPeriod = c.getInt("expert_layer_period", 2), expertOffset = c.getInt("expert_layer_offset", 1);
    checkSchedule(c, "attn_layer_period", attnPeriod, "attn_layer_offset", attnOffset);
    checkSchedule(c, "expert_layer_period", expertPeriod, "expert_layer_offset", expertOffset);

    MoeConfig mc;
    mc.D = f.D;
    mc.I = f.I;
    mc.X = positiveInt(c, "num_experts", 16);
    mc.k = positiveInt(c, "num_experts_per_tok", 2);
    mc.renormalize = false;

    MambaMixerConfig mm;
    mm.D = f.D;
    mm.N = positiveInt(c, "mamba_d_state", 16);
    mm.K = positiveInt(c, "mamba_d_conv", 4);
    mm.E = positiveInt(c, "mamba_expand", 2) * f.D;
    mm.R = (f.D + 15) / 16;
    if (c.has("mamba_dt_rank") && !c.json().at("mamba_dt_rank").is_string())
        mm.R = positiveInt(c, "mamba_dt_rank");
    else if (c.has("mamba_dt_rank") && c.getString("mamba_dt_rank") != "auto")
        c.fail("mamba_dt_rank", fmt::format("expected \"auto\" or an integer, found \"{}\"", c.getString("mamba_dt_rank")));
    mm.convBias = c.getBool("mamba_conv_bias", true);
    mm.projBias = c.getBool("mamba_proj_bias", false);
    mm.innerNorms = true;
    mm.innerNormEps = float(f.eps);

    DecoderSpec s;
    s.D = f.D;
    s.V = f.V;
    s.embedding = wb.get("model.embed_tokens.weight", {f.V, f.D});
    int64_t attnLayers = 0, moeLayers = 0;
    for (int64_t i = 0; i < f.layers; ++i) {
        const std::string p = fmt::format("model.layers.{}.", i);
        DecoderLayer L;
        L.inputNorm = rmsNormWeights(wb, p + "input_layernorm.weight", f.D, f.eps);
        if (i % attnPeriod == attnOffset) {
            ++attnLayers;
            L.attention = std::make_unique<AttentionBlock>(
                a, bindLlamaAttention(wb, p + "self_attn.", a, false, false, false));
        } else {
            L.mamba = std::make_unique<MambaMixer>(mm, bindMambaMixer(wb, p + "mamba.", mm));
        }
        L.ffnNorm = rmsNormWeights(wb, p + "pre_ff_layernorm.weight", f.D, f.eps);
        if (mc.X > 1 && i % expertPeriod == expertOffset) {
            ++moeLayers;
            checkExpertCount(c, wb, p + "feed_forward.router.weight", "num_experts", mc.X, mc.k, "num_experts_per_tok");
            MoeWeights w;
            w.router = wb.get(p + "feed_forward.router.weight", {mc.X, f.D});
            w.experts = bindExperts(wb, {p + "feed_forward.experts.", "gate_proj", "up_proj", "down_proj"}, mc);
            L.moe = std::make_unique<MoeBlock>(mc, std::move(w));
        } else {
            L.mlp = std::make_unique<MlpBlock>(MlpBlock::Kind::SwiGlu, bindSwiGlu(wb, p + "feed_forward.", f.D, f.I));
        }
        s.layers.push_back(std::move(L));
    }
    s.finalNorm = rmsNormWeights(wb, "model.final_layernorm.weight", f.D, f.eps);
    s.lmHead = bindOutputHead(wb, "lm_head.weight", s.embedding, f.V, f.D, f.tied);
    s.info.tiedEmbeddings = !wb.has("lm_head.weight");
    s.info.bosTokenId = tokenIdKey(c, "bos_token_id", 1);
    s.info.eosTokenId = tokenIdKey(c, "eos_token_id", 2);
    s.info.facts = {
        {"layer schedule", fmt::format("attention at i % {} == {} ({} layers), MoE at i % {} == {} ({} layers)",
                                       attnPeriod, attnOffset, attnLayers, expertPeriod, expertOffset, moeLayers)},
        {"heads (q/kv)", fmt::format("{}/{} × {} dims, no positional encoding", a.H, a.Hkv, a.Dh)},
        {"mamba", fmt::format("E {}, N {}, K {}, R {}, dt/B/C RMSNorm", mm.E, mm.N, mm.K, mm.R)},
        {"experts", fmt::format("{} per MoE layer, top-{} (raw probabilities)", mc.X, mc.k)},
        {"intermediate", std::to_string(f.I)},
        {"rms_norm eps", fmt::format("{:g}", f.eps)}};
    return s;
}

} // namespace

ModelFactory jambaFactory()
{
    return decoderFactory("jamba", {"JambaForCausalLM"}, {"jamba"}, buildJamba);
}

} // namespace archlens
