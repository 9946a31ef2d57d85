// Mamba-1 (MambaForCausalLM and the original state-spaces layout), computed as
// transformers' slow path does (../shared/docs/model-formats.md §3):
//   h = E[ids]; per layer h = h + Mixer(RMSNorm(h)); logits = RMSNorm_f(h) · Wₗₘᵀ
//   Mixer: in_proj -> x | z; causal depthwise conv; SiLU; x_proj -> δ | B | C;
//          Δ = softplus(dt_proj(δ) + b_dt); selective scan with A = -exp(A_log) and D skip;
//          y ⊙ SiLU(z); out_proj.
// A decoder (models/decoder.h) of Mamba mixers without feed-forward blocks; the mixer is
// models/mamba_mixer.h, shared with Jamba.
#include <fmt/format.h>

#include "formats/hf_config.h"
#include "formats/safetensors.h"
#include "models/decoder.h"

namespace archlens {

namespace {

struct MambaConfig {
    int64_t D = 0, layers = 0, N = 0, E = 0, K = 0, R = 0, V = 0;
    bool useBias = false, useConvBias = true, tied = true, original = false;
    double eps = 1e-5;
    int64_t bos = -1, eos = -1;
};

// The original state-spaces config: d_model, n_layer, ssm_cfg, no model_type.
bool isOriginalLayout(const HfConfig& c)
{
    return c.has("d_model") && c.has("n_layer") && !c.has("model_type") && c.architectures().empty();
}

int64_t resolveDtRank(const HfConfig& c, const char* key, int64_t D)
{
    if (!c.has(key))
        return (D + 15) / 16;
    const auto& v = [&]() -> const nlohmann::json& {
        const nlohmann::json* node = &c.json();
        std::string k(key);
        size_t dot;
        while ((dot = k.find('.')) != std::string::npos) {
            node = &node->at(k.substr(0, dot));
            k = k.substr(dot + 1);
        }
        return node->at(k);
    }();
    if (v.is_string()) {
        if (v.get<std::string>() != "auto")
            c.fail(key, fmt::format("expected \"auto\" or an integer, found {}", v.dump()));
        return (D + 15) / 16;
    }
    const int64_t r = c.getInt(key);
    if (r <= 0)
        c.fail(key, fmt::format("must be positive, found {}", r));
    return r;
}

MambaConfig readConfig(const HfConfig& c, const Checkpoint& ckpt)
{
    MambaConfig m;
    m.original = isOriginalLayout(c);
    const std::string embKey = ckpt.contains("backbone.embeddings.weight") ? "backbone.embeddings.weight"
                                                                           : "backbone.embedding.weight";
    if (!ckpt.contains(embKey))
        throw Error(ErrorCode::Format, "missing tensor 'backbone.embeddings.weight' (or 'backbone.embedding.weight')",
                    ckpt.dir().string());
    const Shape embShape = ckpt.info(embKey).shape;
    if (embShape.size() != 2)
        throw Error(ErrorCode::Shape, fmt::format("tensor '{}' has shape {}, expected [vocab, d_model]", embKey,
                                                  shapeToString(embShape)),
                    ckpt.fileOf(embKey).string());
    m.V = embShape[0];

    if (m.original) {
        if (c.has("rms_norm") && !c.getBool("rms_norm"))
            throw Error(ErrorCode::Unsupported, "key 'rms_norm' is false: LayerNorm Mamba blocks are not supported",
                        c.path().string());
        m.D = c.getInt("d_model");
        m.layers = c.getInt("n_layer");
        m.N = c.getInt("ssm_cfg.d_state", 16);
        const int64_t expand = c.getInt("ssm_cfg.expand", 2);
        m.E = expand * m.D;
        m.K = c.getInt("ssm_cfg.d_conv", 4);
        m.R = resolveDtRank(c, "ssm_cfg.dt_rank", m.D);
        m.useBias = c.getBool("ssm_cfg.bias", false);
        m.useConvBias = c.getBool("ssm_cfg.conv_bias", true);
        m.eps = c.getDouble("norm_epsilon", 1e-5);
        m.tied = c.getBool("tie_embeddings", true);
        // pad_vocab_size_multiple applies only here: the stored rows must be the padded size.
        int64_t vocab = c.getInt("vocab_size");
        const int64_t mult = c.getInt("pad_vocab_size_multiple", 8);
        if (mult > 0 && vocab % mult != 0)
            vocab += mult - vocab % mult;
        if (vocab != m.V)
            c.fail("vocab_size", fmt::format("padded to a multiple of {} it is {}, but '{}' has {} rows", mult, vocab,
                                              embKey, m.V));
    } else {
        m.D = c.getInt("hidden_size", 768);
        m.layers = c.getInt("num_hidden_layers", 32);
        m.N = c.getInt("state_size", 16);
        const double expand = c.getDouble("expand", 2);
        m.E = int64_t(expand * double(m.D));
        if (c.has("intermediate_size") && c.getInt("intermediate_size") != m.E)
            c.fail("intermediate_size", fmt::format("is {}, but expand × hidden_size = {} × {} = {}",
                                                    c.getInt("intermediate_size"), expand, m.D, m.E));
        m.K = c.getInt("conv_kernel", 4);
        m.R = resolveDtRank(c, "time_step_rank", m.D);
        m.useBias = c.getBool("use_bias", true);
        m.useConvBias = c.getBool("use_conv_bias", true);
        m.eps = c.getDouble("layer_norm_epsilon", 1e-5);
        m.tied = c.getBool("tie_word_embeddings", true);
        if (c.has("vocab_size") && c.getInt("vocab_size") != m.V)
            c.fail("vocab_size", fmt::format("is {}, but '{}' has {} rows", c.getInt("vocab_size"), embKey, m.V));
        m.bos = c.getInt("bos_token_id", 0);
        m.eos = c.getInt("eos_token_id", 0);
        const std::string act = c.getString("hidden_act", "silu");
        if (act != "silu")
            c.fail("hidden_act", fmt::format("only \"silu\" is supported, found \"{}\"", act));
    }
    if (m.D <= 0 || m.layers <= 0 || m.N <= 0 || m.E <= 0 || m.K <= 0)
        throw Error(ErrorCode::Config,
                    fmt::format("dimensions must be positive (d_model {}, layers {}, d_state {}, d_inner {}, d_conv {})",
                                m.D, m.layers, m.N, m.E, m.K),
                    c.path().string());
    if (embShape[1] != m.D)
        throw Error(ErrorCode::Shape,
                    fmt::format("tensor '{}' has {} columns, but the config's d_model is {}", embKey, embShape[1], m.D),
                    ckpt.fileOf(embKey).string());
    return m;
}

std::string embeddingKey(const Checkpoint& ckpt)
{
    return ckpt.contains("backbone.embeddings.weight") ? "backbone.embeddings.weight" : "backbone.embedding.weight";
}

DecoderSpec buildMamba(const HfConfig& config, WeightBinder& wb)
{
    const Checkpoint& ckpt = wb.checkpoint();
    const MambaConfig c = readConfig(config, ckpt);
    DecoderSpec s;
    s.D = c.D;
    s.V = c.V;
    s.embedding = wb.get(embeddingKey(ckpt), {c.V, c.D});
    MambaMixerConfig mc;
    mc.D = c.D;
    mc.E = c.E;
    mc.N = c.N;
    mc.K = c.K;
    mc.R = c.R;
    mc.projBias = c.useBias;
    mc.convBias = c.useConvBias;
    for (int64_t i = 0; i < c.layers; ++i) {
        const std::string p = fmt::format("backbone.layers.{}.", i);
        DecoderLayer L;
        L.inputNorm = {wb.get(p + "norm.weight", {c.D}), {}, float(c.eps), false};
        L.mamba = std::make_unique<MambaMixer>(mc, bindMambaMixer(wb, p + "mixer.", mc));
        s.layers.push_back(std::move(L));
    }
    s.finalNorm = {wb.get("backbone.norm_f.weight", {c.D}), {}, float(c.eps), false};
    s.lmHead = bindOutputHead(wb, "lm_head.weight", s.embedding, c.V, c.D, c.tied);

    ModelInfo& info = s.info;
    info.architecture = c.original ? "MambaLMHeadModel (original state-spaces layout)" : config.architectureName();
    info.modelType = c.original ? "mamba" : config.modelType();
    if (info.architecture.empty())
        info.architecture = "MambaForCausalLM";
    if (info.modelType.empty())
        info.modelType = "mamba";
    info.tiedEmbeddings = !ckpt.contains("lm_head.weight");
    info.bosTokenId = c.bos;
    info.eosTokenId = c.eos;
    info.facts = {{"d_inner (E)", std::to_string(c.E)},
                  {"d_state (N)", std::to_string(c.N)},
                  {"d_conv (K)", std::to_string(c.K)},
                  {"dt_rank (R)", std::to_string(c.R)},
                  {"in/out_proj bias", c.useBias ? "yes" : "no"},
                  {"conv bias", c.useConvBias ? "yes" : "no"},
                  {"rms_norm eps", fmt::format("{:g}", c.eps)}};
    return s;
}

} // namespace

ModelFactory mambaFactory()
{
    ModelFactory f = decoderFactory("mamba", {"MambaForCausalLM", "MambaModel", "MambaLMHeadModel"}, {"mamba"},
                                    buildMamba);
    f.recognise = isOriginalLayout;
    return f;
}

} // namespace archlens
