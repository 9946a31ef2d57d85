#include "models/llama_family.h"

#include <cmath>

#include <fmt/format.h>

#include "formats/safetensors.h"

namespace archlens {

LlamaFamilyConfig readLlamaFamily(const HfConfig& c, double epsDefault, double thetaDefault)
{
    LlamaFamilyConfig f;
    f.D = positiveInt(c, "hidden_size");
    f.layers = positiveInt(c, "num_hidden_layers");
    f.V = positiveInt(c, "vocab_size");
    f.I = positiveInt(c, "intermediate_size");
    f.eps = c.getDouble("rms_norm_eps", epsDefault);
    f.tied = c.getBool("tie_word_embeddings", false);
    const std::string act = c.getString("hidden_act", "silu");
    if (act != "silu")
        c.fail("hidden_act", fmt::format("only \"silu\" is supported, found \"{}\"", act));
    auto& a = f.attn;
    a.D = f.D;
    a.H = positiveInt(c, "num_attention_heads");
    a.Hkv = positiveInt(c, "num_key_value_heads", a.H);
    if (a.H % a.Hkv != 0)
        c.fail("num_key_value_heads", fmt::format("{} does not divide num_attention_heads {}", a.Hkv, a.H));
    if (!c.has("head_dim") && f.D % a.H != 0)
        c.fail("num_attention_heads", fmt::format("{} does not divide hidden_size {}", a.H, f.D));
    a.Dh = positiveInt(c, "head_dim", f.D / a.H);
    a.scale = float(1.0 / std::sqrt(double(a.Dh)));
    a.rope = readRopeConfig(c, a.Dh, c.getDouble("partial_rotary_factor", 1.0), thetaDefault);
    a.normEps = float(f.eps);
    return f;
}

NormWeights rmsNormWeights(WeightBinder& wb, const std::string& name, int64_t D, double eps)
{
    return {wb.get(name, {D}), {}, float(eps), false};
}

void bindLlamaEnds(WeightBinder& wb, const LlamaFamilyConfig& f, DecoderSpec& spec)
{
    spec.D = f.D;
    spec.V = f.V;
    spec.embedding = wb.get("model.embed_tokens.weight", {f.V, f.D});
    spec.finalNorm = rmsNormWeights(wb, "model.norm.weight", f.D, f.eps);
    spec.lmHead = bindOutputHead(wb, "lm_head.weight", spec.embedding, f.V, f.D, f.tied);
    spec.info.tiedEmbeddings = !wb.has("lm_head.weight");
}

void checkExpertCount(const HfConfig& c, const WeightBinder& wb, const std::string& routerName, const char* key,
                      int64_t X, int64_t k, const char* topkKey)
{
    if (k > X)
        c.fail(topkKey, fmt::format("{} experts per token, but {} is {}", k, key, X));
    if (!wb.has(routerName))
        return; // the binder names it as missing
    const Shape& s = wb.checkpoint().info(routerName).shape;
    if (s.size() == 2 && s[0] != X)
        throw Error(ErrorCode::Config,
                    fmt::format("key '{}' is {}, but the router '{}' has {} rows (one per expert)", key, X, routerName,
                                s[0]),
                    c.path().string(), fmt::format("set {} to the number of experts the checkpoint has", key));
}

void addAttentionFacts(ModelInfo& info, const LlamaFamilyConfig& f)
{
    const auto& a = f.attn;
    info.facts.emplace_back("heads (q/kv)", fmt::format("{}/{} × {} dims", a.H, a.Hkv, a.Dh));
    info.facts.emplace_back("intermediate", std::to_string(f.I));
    info.facts.emplace_back("rotary", a.rotary ? a.rope.describe() : "none");
    if (a.slidingWindow > 0)
        info.facts.emplace_back("sliding window", std::to_string(a.slidingWindow));
    info.facts.emplace_back("rms_norm eps", fmt::format("{:g}", f.eps));
}

} // namespace archlens
