#include "training/decoder_train_model.h"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

#include "base/error.h"
#include "formats/atomic_file.h"
#include "formats/hf_config.h"
#include "formats/safetensors.h"
#include "training/mamba_mixer_train.h"
#include "training/train_ops.h"
#include "training/train_ops_attention.h"

namespace archlens::train {

namespace fs = std::filesystem;

// ---------------------------------------------------------------- configuration

bool DecoderTrainConfig::isMoe(int64_t layer) const
{
    if (arch == "mixtral")
        return true;
    if (arch == "jamba")
        return experts > 1 && layer % expertPeriod == expertOffset;
    return false;
}

std::string DecoderTrainConfig::architecture() const
{
    if (arch == "llama")
        return "LlamaForCausalLM";
    if (arch == "mixtral")
        return "MixtralForCausalLM";
    if (arch == "jamba")
        return "JambaForCausalLM";
    throw Error(ErrorCode::InvalidArgument, fmt::format("unknown decoder architecture '{}'", arch), {},
                "expected llama, mixtral or jamba");
}

void DecoderTrainConfig::validate() const
{
    architecture();
    auto positive = [](const char* what, int64_t v) {
        if (v <= 0)
            throw Error(ErrorCode::InvalidArgument, fmt::format("{} must be positive, found {}", what, v));
    };
    positive("vocab size", V);
    positive("d_model", D);
    positive("layers", layers);
    positive("attention heads", H);
    positive("key/value heads", Hkv);
    positive("intermediate size", I);
    if (D % H != 0)
        throw Error(ErrorCode::InvalidArgument, fmt::format("{} heads do not divide d_model {}", H, D));
    if (H % Hkv != 0)
        throw Error(ErrorCode::InvalidArgument, fmt::format("{} key/value heads do not divide {} heads", Hkv, H));
    if (arch != "jamba" && headDim() % 2 != 0)
        throw Error(ErrorCode::InvalidArgument, fmt::format("rotary needs an even head size, found {}", headDim()));
    if (arch == "mixtral" || (arch == "jamba" && experts > 1)) {
        positive("experts", experts);
        if (topK <= 0 || topK > experts)
            throw Error(ErrorCode::InvalidArgument,
                        fmt::format("top-k {} must be between 1 and the number of experts {}", topK, experts));
    }
    if (auxCoef < 0)
        throw Error(ErrorCode::InvalidArgument, fmt::format("the aux loss coefficient must be >= 0, found {}", auxCoef));
    if (arch == "jamba") {
        positive("attention layer period", attnPeriod);
        positive("expert layer period", expertPeriod);
        if (attnOffset < 0 || attnOffset >= attnPeriod)
            throw Error(ErrorCode::InvalidArgument,
                        fmt::format("attention offset {} is not within the period {}", attnOffset, attnPeriod));
        if (expertOffset < 0 || expertOffset >= expertPeriod)
            throw Error(ErrorCode::InvalidArgument,
                        fmt::format("expert offset {} is not within the period {}", expertOffset, expertPeriod));
        positive("d_state", N);
        positive("conv kernel", K);
        positive("expand", expand);
    }
}

nlohmann::ordered_json DecoderTrainConfig::toHfConfig() const
{
    nlohmann::ordered_json j = {
        {"architectures", {architecture()}},
        {"model_type", arch},
        {"vocab_size", V},
        {"hidden_size", D},
        {"intermediate_size", I},
        {"num_hidden_layers", layers},
        {"num_attention_heads", H},
        {"num_key_value_heads", Hkv},
        {"hidden_act", "silu"},
        {"rms_norm_eps", eps},
        {"initializer_range", 0.02},
        {"attention_dropout", 0.0},
        {"tie_word_embeddings", tied},
        {"bos_token_id", 0},
        {"eos_token_id", 0},
        {"pad_token_id", 0},
        {"torch_dtype", "float32"},
    };
    if (arch != "jamba") {
        j["head_dim"] = headDim();
        j["max_position_embeddings"] = maxPositions;
        j["rope_theta"] = ropeTheta;
        j["attention_bias"] = false;
    }
    if (arch == "llama")
        j["mlp_bias"] = false;
    if (arch == "mixtral") {
        j["num_local_experts"] = experts;
        j["num_experts_per_tok"] = topK;
        j["router_aux_loss_coef"] = auxCoef;
        j["output_router_logits"] = routerAux;
        j["router_jitter_noise"] = 0.0;
    }
    if (arch == "jamba") {
        j["max_position_embeddings"] = maxPositions;
        j["num_experts"] = experts;
        j["num_experts_per_tok"] = topK;
        j["router_aux_loss_coef"] = auxCoef;
        j["output_router_logits"] = routerAux;
        j["attn_layer_period"] = attnPeriod;
        j["attn_layer_offset"] = attnOffset;
        j["expert_layer_period"] = expertPeriod;
        j["expert_layer_offset"] = expertOffset;
        j["mamba_d_state"] = N;
        j["mamba_d_conv"] = K;
        j["mamba_expand"] = expand;
        j["mamba_dt_rank"] = dtRank();
        j["mamba_conv_bias"] = true;
        j["mamba_proj_bias"] = false;
        j["use_mamba_kernels"] = false;
    }
    return j;
}

DecoderTrainConfig DecoderTrainConfig::fromHfConfig(const fs::path& dir)
{
    const HfConfig hc = HfConfig::load(dir);
    DecoderTrainConfig c;
    std::string mt = hc.modelType();
    for (const auto& a : hc.architectures()) {
        if (a == "LlamaForCausalLM")
            mt = "llama";
        else if (a == "MixtralForCausalLM")
            mt = "mixtral";
        else if (a == "JambaForCausalLM")
            mt = "jamba";
    }
    if (mt != "llama" && mt != "mixtral" && mt != "jamba")
        throw Error(ErrorCode::Unsupported,
                    fmt::format("training a '{}' model is not supported", mt.empty() ? "?" : mt), hc.path().string(),
                    "trainable: MambaForCausalLM, LlamaForCausalLM, MixtralForCausalLM, JambaForCausalLM");
    c.arch = mt;
    auto unsupported = [&](const std::string& key, const std::string& why) {
        throw Error(ErrorCode::Unsupported, fmt::format("key '{}': {}", key, why), hc.path().string());
    };
    auto isSet = [&](const char* key) { return hc.has(key) && !hc.json().at(key).is_null(); };
    c.V = hc.getInt("vocab_size");
    c.D = hc.getInt("hidden_size");
    c.I = hc.getInt("intermediate_size");
    c.layers = hc.getInt("num_hidden_layers");
    c.H = hc.getInt("num_attention_heads");
    c.Hkv = hc.has("num_key_value_heads") ? hc.getInt("num_key_value_heads") : c.H;
    c.eps = hc.getDouble("rms_norm_eps", 1e-6);
    c.tied = hc.getBool("tie_word_embeddings", false); // transformers' default for all three
    c.maxPositions = hc.getInt("max_position_embeddings", c.maxPositions);
    if (hc.getString("hidden_act", "silu") != "silu")
        unsupported("hidden_act", "training supports only \"silu\"");
    if (mt != "jamba") {
        c.ropeTheta = hc.getDouble("rope_theta", mt == "mixtral" ? 1e6 : 10000.0);
        if (isSet("head_dim") && hc.getInt("head_dim") != c.D / std::max<int64_t>(c.H, 1))
            unsupported("head_dim", "training needs head_dim = hidden_size / num_attention_heads");
        if (isSet("rope_scaling") || isSet("rope_parameters"))
            unsupported("rope_scaling", "training supports only default rotary embeddings");
        if (hc.has("partial_rotary_factor") && hc.getDouble("partial_rotary_factor") != 1.0)
            unsupported("partial_rotary_factor", "training supports only full rotary");
        if (hc.getBool("attention_bias", false))
            unsupported("attention_bias", "training supports only bias-free attention");
        if (hc.getBool("mlp_bias", false))
            unsupported("mlp_bias", "training supports only bias-free MLPs");
    }
    if (isSet("sliding_window"))
        unsupported("sliding_window", "training supports only full causal attention (set it to null)");
    if (mt == "mixtral") {
        c.experts = hc.getInt("num_local_experts", 8);
        c.topK = hc.getInt("num_experts_per_tok", 2);
    }
    if (mt == "mixtral" || mt == "jamba") {
        c.auxCoef = hc.getDouble("router_aux_loss_coef", 0.001);
        c.routerAux = hc.getBool("output_router_logits", false);
    }
    if (mt == "jamba") {
        c.experts = hc.getInt("num_experts", 16);
        c.topK = hc.getInt("num_experts_per_tok", 2);
        c.attnPeriod = hc.getInt("attn_layer_period", 8);
        c.attnOffset = hc.getInt("attn_layer_offset", 4);
        c.expertPeriod = hc.getInt("expert_layer_period", 2);
        c.expertOffset = hc.getInt("expert_layer_offset", 1);
        c.N = hc.getInt("mamba_d_state", 16);
        c.K = hc.getInt("mamba_d_conv", 4);
        c.expand = hc.getInt("mamba_expand", 2);
        if (isSet("mamba_dt_rank") && !hc.json().at("mamba_dt_rank").is_string())
            c.R = hc.getInt("mamba_dt_rank");
        if (!hc.getBool("mamba_conv_bias", true))
            unsupported("mamba_conv_bias", "training needs the conv bias");
        if (hc.getBool("mamba_proj_bias", false))
            unsupported("mamba_proj_bias", "training supports only bias-free Mamba projections");
    }
    try {
        c.validate();
    } catch (const Error& e) {
        throw Error(ErrorCode::Config, e.what(), hc.path().string());
    }
    return c;
}

// ---------------------------------------------------------------- construction

DecoderTrainModel::DecoderTrainModel(DecoderTrainConfig cfg)
    : m_cfg(std::move(cfg))
{
    m_cfg.validate();
    allocate();
    const int64_t Dh = m_cfg.headDim();
    for (int64_t i = 0; i < Dh / 2; ++i) // float32, as torch and the inference loader compute it
        m_invFreq.push_back(double(1.0f / float(std::pow(m_cfg.ropeTheta, double(float(2 * i) / float(Dh))))));
}

void DecoderTrainModel::allocate()
{
    const auto& c = m_cfg;
    const int64_t D = c.D, Dh = c.headDim(), I = c.I;
    const bool jamba = c.arch == "jamba";
    m_emb = m_params.add("model.embed_tokens.weight", {c.V, D}, true);
    for (int64_t i = 0; i < c.layers; ++i) {
        const std::string p = fmt::format("model.layers.{}.", i);
        LayerIdx L;
        L.norm1 = m_params.add(p + "input_layernorm.weight", {D}, false);
        if (c.isAttention(i)) {
            L.wq = m_params.add(p + "self_attn.q_proj.weight", {c.H * Dh, D}, true);
            L.wk = m_params.add(p + "self_attn.k_proj.weight", {c.Hkv * Dh, D}, true);
            L.wv = m_params.add(p + "self_attn.v_proj.weight", {c.Hkv * Dh, D}, true);
            L.wo = m_params.add(p + "self_attn.o_proj.weight", {D, c.H * Dh}, true);
        } else {
            const std::string m = p + "mamba.";
            const int64_t E = c.expand * D, N = c.N, R = c.dtRank();
            L.inProj = m_params.add(m + "in_proj.weight", {2 * E, D}, true);
            L.convW = m_params.add(m + "conv1d.weight", {E, 1, c.K}, true);
            L.convB = m_params.add(m + "conv1d.bias", {E}, false);
            L.xProj = m_params.add(m + "x_proj.weight", {R + 2 * N, E}, true);
            L.dtW = m_params.add(m + "dt_proj.weight", {E, R}, true);
            L.dtB = m_params.add(m + "dt_proj.bias", {E}, false);
            L.aLog = m_params.add(m + "A_log", {E, N}, false);
            L.dSkip = m_params.add(m + "D", {E}, false);
            L.outProj = m_params.add(m + "out_proj.weight", {D, E}, true);
            L.dtNorm = m_params.add(m + "dt_layernorm.weight", {R}, false);
            L.bNorm = m_params.add(m + "b_layernorm.weight", {N}, false);
            L.cNorm = m_params.add(m + "c_layernorm.weight", {N}, false);
        }
        L.norm2 = m_params.add(p + (jamba ? "pre_ff_layernorm.weight" : "post_attention_layernorm.weight"), {D}, false);
        if (c.isMoe(i)) {
            const std::string m = p + (jamba ? "feed_forward." : "block_sparse_moe.");
            L.router = m_params.add(m + (jamba ? "router.weight" : "gate.weight"), {c.experts, D}, true);
            for (int64_t e = 0; e < c.experts; ++e) {
                const std::string x = fmt::format("{}experts.{}.", m, e);
                L.eg.push_back(m_params.add(x + (jamba ? "gate_proj.weight" : "w1.weight"), {I, D}, true));
                L.ed.push_back(m_params.add(x + (jamba ? "down_proj.weight" : "w2.weight"), {D, I}, true));
                L.eu.push_back(m_params.add(x + (jamba ? "up_proj.weight" : "w3.weight"), {I, D}, true));
            }
        } else {
            const std::string m = p + (jamba ? "feed_forward." : "mlp.");
            L.wg = m_params.add(m + "gate_proj.weight", {I, D}, true);
            L.wu = m_params.add(m + "up_proj.weight", {I, D}, true);
            L.wd = m_params.add(m + "down_proj.weight", {D, I}, true);
        }
        m_layers.push_back(std::move(L));
    }
    m_normF = m_params.add(jamba ? "model.final_layernorm.weight" : "model.norm.weight", {D}, false);
    if (!c.tied)
        m_head = m_params.add("lm_head.weight", {c.V, D}, true);
}

int DecoderTrainModel::moeLayers() const
{
    int n = 0;
    for (int64_t l = 0; l < m_cfg.layers; ++l)
        n += m_cfg.isMoe(l) ? 1 : 0;
    return n;
}

namespace {

// splitmix64: the same numbers on every platform (no std distributions).
struct Rng {
    uint64_t s;
    uint64_t next()
    {
        uint64_t z = (s += 0x9E3779B97F4A7C15ull);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        return z ^ (z >> 31);
    }
    double uniform() { return double(next() >> 11) * (1.0 / 9007199254740992.0); }
    double normal()
    {
        const double u1 = std::max(uniform(), 1e-300), u2 = uniform();
        return std::sqrt(-2 * std::log(u1)) * std::cos(6.283185307179586 * u2);
    }
};

} // namespace

DecoderTrainModel DecoderTrainModel::randomInit(const DecoderTrainConfig& cfg, uint64_t seed)
{
    DecoderTrainModel m(cfg);
    Rng rng {seed * 0x2545F4914F6CDD1Dull + 17};
    ParamStore& ps = m.m_params;
    auto fill = [&](int idx, auto f) {
        if (idx < 0)
            return;
        float* p = ps.data(idx);
        for (int64_t i = 0; i < ps.info(idx).numel; ++i)
            p[i] = float(f(i));
    };
    auto normal = [&](int idx) { fill(idx, [&](int64_t) { return 0.02 * rng.normal(); }); };
    auto ones = [&](int idx) { fill(idx, [](int64_t) { return 1.0; }); };
    auto uniform = [&](int idx, double bound) { fill(idx, [&](int64_t) { return (rng.uniform() * 2 - 1) * bound; }); };
    normal(m.m_emb);
    const int64_t N = cfg.N, R = cfg.dtRank();
    for (const LayerIdx& L : m.m_layers) {
        ones(L.norm1);
        ones(L.norm2);
        for (int idx : {L.wq, L.wk, L.wv, L.wo, L.inProj, L.xProj, L.outProj, L.wg, L.wu, L.wd, L.router})
            normal(idx);
        for (size_t e = 0; e < L.eg.size(); ++e) {
            normal(L.eg[e]);
            normal(L.ed[e]);
            normal(L.eu[e]);
        }
        if (L.inProj >= 0) { // Mamba's initialisation of the mixer
            uniform(L.convW, 1.0 / std::sqrt(double(cfg.K)));
            uniform(L.convB, 1.0 / std::sqrt(double(cfg.K)));
            uniform(L.dtW, 1.0 / std::sqrt(double(R)));
            fill(L.dtB, [&](int64_t) {
                const double dt = std::exp(std::log(1e-3) + rng.uniform() * (std::log(1e-1) - std::log(1e-3)));
                return dt + std::log(-std::expm1(-dt)); // softplus⁻¹(dt)
            });
            fill(L.aLog, [&](int64_t i) { return std::log(double(i % N + 1)); });
            ones(L.dSkip);
            ones(L.dtNorm);
            ones(L.bNorm);
            ones(L.cNorm);
        }
    }
    ones(m.m_normF);
    normal(m.m_head);
    return m;
}

DecoderTrainModel DecoderTrainModel::load(const fs::path& dir)
{
    DecoderTrainModel m(DecoderTrainConfig::fromHfConfig(dir));
    const Checkpoint ck = Checkpoint::open(dir);
    for (int i = 0; i < m.m_params.count(); ++i) {
        const ParamInfo& p = m.m_params.info(i);
        const Tensor t = ck.getF32(p.name, p.shape);
        std::copy(t.f32(), t.f32() + t.numel(), m.m_params.data(i));
    }
    return m;
}

nlohmann::ordered_json DecoderTrainModel::sizeJson() const
{
    const auto& c = m_cfg;
    nlohmann::ordered_json j = {{"d_model", c.D},  {"layers", c.layers}, {"heads", c.H},
                                {"kv_heads", c.Hkv}, {"intermediate", c.I}, {"vocab_size", c.V}};
    if (c.arch != "llama") {
        j["experts"] = c.experts;
        j["top_k"] = c.topK;
        j["aux_loss_coef"] = c.routerAux ? c.auxCoef : 0.0;
    }
    if (c.arch == "jamba") {
        j["d_state"] = c.N;
        j["d_inner"] = c.expand * c.D;
        j["attn_layer_period"] = c.attnPeriod;
        j["attn_layer_offset"] = c.attnOffset;
        j["expert_layer_period"] = c.expertPeriod;
        j["expert_layer_offset"] = c.expertOffset;
    }
    return j;
}

void DecoderTrainModel::save(const fs::path& dir, const std::map<std::string, std::string>& metadata) const
{
    std::error_code ec;
    fs::create_directories(dir, ec);
    std::map<std::string, std::string> meta = metadata;
    meta["format"] = "pt";
    writeSafetensors(dir / "model.safetensors", m_params.tensors([](const ParamInfo&) { return true; }), meta);
    writeFileAtomic(dir / "config.json", m_cfg.toHfConfig().dump(2) + "\n");
}

// ---------------------------------------------------------------- activations

struct DecoderTrainModel::Acts {
    struct Expert {
        std::vector<int32_t> rows, slots; // token and top-k slot of every routed row
        std::vector<float> x, act, hh, y; // gathered input (M, D), gate|up (M, 2I), SiLU(g)·u (M, I), output (M, D)
    };
    struct Layer {
        std::vector<float> hin, hn1, r1, hmid, hn2, r2;
        std::vector<float> q, k, v, qr, kr, P, ao; // attention
        MambaMixerActs mamba;
        std::vector<float> act, hh;                 // SwiGLU MLP
        std::vector<float> probs, weights;          // MoE: router softmax (T, X), top-k weights (T, k)
        std::vector<int32_t> experts;               // (T, k)
        std::vector<Expert> ex;
    };
    std::vector<Layer> layers;
    std::vector<float> h, hf, rF, logits; // logits, then ∂L/∂logits
    std::vector<float> ropeCos, ropeSin;  // (T, Dh/2) rotary tables of the last length
    int64_t ropeT = -1;
};

struct DecoderTrainModel::Scratch {
    std::vector<float> out, dh, dmid, dn, dq, dk, dv, dqr, dkr, dao, dact, dhh, dprobs, dlog, dw, dy, dxg, dS;
    MambaMixerScratch mamba;
};

namespace {

void zeroed(std::vector<float>& v, int64_t n)
{
    v.resize(size_t(n));
    std::fill(v.begin(), v.end(), 0.f);
}

// SwiGLU on M rows: act = [x·Wgᵀ | x·Wuᵀ] (M, 2I), hh = SiLU(g)·u, out = hh·Wdᵀ.
void swigluFwd(int64_t M, int64_t D, int64_t I, const float* x, const float* Wg, const float* Wu, const float* Wd,
               std::vector<float>& act, std::vector<float>& hh, float* out)
{
    act.resize(size_t(M * 2 * I));
    hh.resize(size_t(M * I));
    linearForward<float>(M, D, I, x, D, Wg, nullptr, act.data(), 2 * I);
    linearForward<float>(M, D, I, x, D, Wu, nullptr, act.data() + I, 2 * I);
    for (int64_t i = 0; i < M; ++i)
        for (int64_t j = 0; j < I; ++j)
            hh[size_t(i * I + j)] = silu(act[size_t(i * 2 * I + j)]) * act[size_t(i * 2 * I + I + j)];
    linearForward<float>(M, I, D, hh.data(), I, Wd, nullptr, out, D);
}

void swigluBwd(int64_t M, int64_t D, int64_t I, const float* x, const float* Wg, const float* Wu, const float* Wd,
               const std::vector<float>& act, const std::vector<float>& hh, const float* dout, float* dx, float* dWg,
               float* dWu, float* dWd, std::vector<float>& dhh, std::vector<float>& dact)
{
    zeroed(dhh, M * I);
    linearBackward<float>(M, I, D, hh.data(), I, Wd, dout, D, dhh.data(), I, dWd, nullptr);
    dact.resize(size_t(M * 2 * I));
    for (int64_t i = 0; i < M; ++i)
        for (int64_t j = 0; j < I; ++j) {
            const float g = act[size_t(i * 2 * I + j)], u = act[size_t(i * 2 * I + I + j)], d = dhh[size_t(i * I + j)];
            dact[size_t(i * 2 * I + j)] = d * u * siluGrad(g);
            dact[size_t(i * 2 * I + I + j)] = d * silu(g);
        }
    linearBackward<float>(M, D, I, x, D, Wg, dact.data(), 2 * I, dx, D, dWg, nullptr);
    linearBackward<float>(M, D, I, x, D, Wu, dact.data() + I, 2 * I, dx, D, dWu, nullptr);
}


// Rotary on every head of x (T, heads·Dh) with tables cos/sin (T, Dh/2) (ropeForward's maths,
// the tables built once per sequence length instead of per head). Backward accumulates Rᵀ dy.
void ropeFwdTable(int64_t T, int64_t heads, int64_t Dh, const float* cs, const float* sn, const float* x, float* y)
{
    const int64_t h2 = Dh / 2;
    for (int64_t t = 0; t < T; ++t)
        for (int64_t hd = 0; hd < heads; ++hd) {
            const float* xi = x + (t * heads + hd) * Dh;
            float* yi = y + (t * heads + hd) * Dh;
            const float *c = cs + t * h2, *s = sn + t * h2;
            for (int64_t i = 0; i < h2; ++i) {
                yi[i] = xi[i] * c[i] - xi[i + h2] * s[i];
                yi[i + h2] = xi[i + h2] * c[i] + xi[i] * s[i];
            }
        }
}
void ropeBwdTable(int64_t T, int64_t heads, int64_t Dh, const float* cs, const float* sn, const float* dy, float* dx)
{
    const int64_t h2 = Dh / 2;
    for (int64_t t = 0; t < T; ++t)
        for (int64_t hd = 0; hd < heads; ++hd) {
            const float* g = dy + (t * heads + hd) * Dh;
            float* d = dx + (t * heads + hd) * Dh;
            const float *c = cs + t * h2, *s = sn + t * h2;
            for (int64_t i = 0; i < h2; ++i) {
                d[i] += g[i] * c[i] + g[i + h2] * s[i];
                d[i + h2] += g[i + h2] * c[i] - g[i] * s[i];
            }
        }
}

// crossEntropy of train_ops.h for one row, with Eigen's vectorised exp: returns the loss and
// writes dl = scale · (softmax − onehot) in place of the logits when grad is set.
double crossEntropyRow(int64_t V, float* logits, int32_t target, float scale, bool grad)
{
    Eigen::Map<Eigen::ArrayXf> row(logits, V);
    const float mx = row.maxCoeff();
    const float targetLogit = logits[target];
    const float sum = (row - mx).exp().sum();
    const float lse = mx + std::log(sum);
    if (grad) {
        row = (row - lse).exp() * scale;
        logits[target] -= scale;
    }
    return double(lse - targetLogit);
}

// Causal attention with grouped KV heads, per head through Eigen's GEMMs (the same maths as
// attentionForward / attentionBackward of train_ops_attention.h, which the op tests check
// against finite differences; here the T×T products are blocked and vectorised). q, out
// (T, Hq·Dh); k, v (T, Hkv·Dh); P (Hq, T, T) row t holds the probabilities of columns ≤ t.
void attentionFwdFast(int64_t T, int64_t Hq, int64_t Hkv, int64_t Dh, const float* q, const float* k, const float* v,
                      float* out, float* P)
{
    const int64_t group = Hq / Hkv, Q = Hq * Dh, KV = Hkv * Dh;
    const float scale = 1.0f / std::sqrt(float(Dh));
    for (int64_t h = 0; h < Hq; ++h) {
        const int64_t kh = h / group;
        MapC<float> Qm(q + h * Dh, T, Dh, Eigen::OuterStride<>(Q));
        MapC<float> Km(k + kh * Dh, T, Dh, Eigen::OuterStride<>(KV));
        MapC<float> Vm(v + kh * Dh, T, Dh, Eigen::OuterStride<>(KV));
        MapM<float> S(P + h * T * T, T, T, Eigen::OuterStride<>(T));
        S.noalias() = scale * (Qm * Km.transpose());
        for (int64_t t = 0; t < T; ++t) {
            float* p = P + (h * T + t) * T;
            float mx = p[0];
            for (int64_t s = 1; s <= t; ++s)
                mx = std::max(mx, p[s]);
            float sum = 0;
            for (int64_t s = 0; s <= t; ++s)
                sum += (p[s] = std::exp(p[s] - mx));
            const float inv = 1.0f / sum;
            for (int64_t s = 0; s <= t; ++s)
                p[s] *= inv;
            std::fill(p + t + 1, p + T, 0.0f);
        }
        MapM<float> O(out + h * Dh, T, Dh, Eigen::OuterStride<>(Q));
        O.noalias() = S * Vm;
    }
}

// dq, dk, dv accumulated; dS (T·T floats) is scratch.
void attentionBwdFast(int64_t T, int64_t Hq, int64_t Hkv, int64_t Dh, const float* q, const float* k, const float* v,
                      const float* P, const float* dout, float* dq, float* dk, float* dv, float* dS)
{
    const int64_t group = Hq / Hkv, Q = Hq * Dh, KV = Hkv * Dh;
    const float scale = 1.0f / std::sqrt(float(Dh));
    for (int64_t h = 0; h < Hq; ++h) {
        const int64_t kh = h / group;
        MapC<float> Qm(q + h * Dh, T, Dh, Eigen::OuterStride<>(Q));
        MapC<float> Km(k + kh * Dh, T, Dh, Eigen::OuterStride<>(KV));
        MapC<float> Vm(v + kh * Dh, T, Dh, Eigen::OuterStride<>(KV));
        MapC<float> Pm(P + h * T * T, T, T, Eigen::OuterStride<>(T));
        MapC<float> dO(dout + h * Dh, T, Dh, Eigen::OuterStride<>(Q));
        MapM<float> dSm(dS, T, T, Eigen::OuterStride<>(T));
        MapM<float> dV(dv + kh * Dh, T, Dh, Eigen::OuterStride<>(KV));
        dV.noalias() += Pm.transpose() * dO;
        dSm.noalias() = dO * Vm.transpose(); // dP
        for (int64_t t = 0; t < T; ++t) {
            const float* p = P + (h * T + t) * T;
            float* d = dS + t * T;
            float dot = 0;
            for (int64_t s = 0; s <= t; ++s)
                dot += d[s] * p[s];
            for (int64_t s = 0; s <= t; ++s)
                d[s] = p[s] * (d[s] - dot) * scale;
            std::fill(d + t + 1, d + T, 0.0f);
        }
        MapM<float> dQ(dq + h * Dh, T, Dh, Eigen::OuterStride<>(Q));
        MapM<float> dK(dk + kh * Dh, T, Dh, Eigen::OuterStride<>(KV));
        dQ.noalias() += dSm * Km;
        dK.noalias() += dSm.transpose() * Qm;
    }
}

} // namespace

// ---------------------------------------------------------------- forward

void DecoderTrainModel::attentionFwd(const LayerIdx& P, int64_t T, const float* x, float* out, Acts& a,
                                     int64_t l) const
{
    const auto& c = m_cfg;
    const int64_t D = c.D, Dh = c.headDim(), Q = c.H * Dh, KV = c.Hkv * Dh;
    auto& L = a.layers[size_t(l)];
    L.q.resize(size_t(T * Q));
    L.k.resize(size_t(T * KV));
    L.v.resize(size_t(T * KV));
    L.P.resize(size_t(c.H * T * T));
    L.ao.resize(size_t(T * Q));
    linearForward<float>(T, D, Q, x, D, m_params.data(P.wq), nullptr, L.q.data(), Q);
    linearForward<float>(T, D, KV, x, D, m_params.data(P.wk), nullptr, L.k.data(), KV);
    linearForward<float>(T, D, KV, x, D, m_params.data(P.wv), nullptr, L.v.data(), KV);
    const bool rope = c.arch != "jamba";
    if (rope) {
        L.qr.resize(size_t(T * Q));
        L.kr.resize(size_t(T * KV));
        if (a.ropeT != T) { // θ in double, as ropeForward
            a.ropeCos.resize(size_t(T * Dh / 2));
            a.ropeSin.resize(size_t(T * Dh / 2));
            for (int64_t t = 0; t < T; ++t)
                for (int64_t i = 0; i < Dh / 2; ++i) {
                    const double th = double(t) * m_invFreq[size_t(i)];
                    a.ropeCos[size_t(t * Dh / 2 + i)] = float(std::cos(th));
                    a.ropeSin[size_t(t * Dh / 2 + i)] = float(std::sin(th));
                }
            a.ropeT = T;
        }
        ropeFwdTable(T, c.H, Dh, a.ropeCos.data(), a.ropeSin.data(), L.q.data(), L.qr.data());
        ropeFwdTable(T, c.Hkv, Dh, a.ropeCos.data(), a.ropeSin.data(), L.k.data(), L.kr.data());
    }
    const float* q = rope ? L.qr.data() : L.q.data();
    const float* k = rope ? L.kr.data() : L.k.data();
    attentionFwdFast(T, c.H, c.Hkv, Dh, q, k, L.v.data(), L.ao.data(), L.P.data());
    linearForward<float>(T, Q, D, L.ao.data(), Q, m_params.data(P.wo), nullptr, out, D);
}

void DecoderTrainModel::moeFwd(const LayerIdx& P, int64_t T, const float* x, float* out, Acts& a, int64_t l) const
{
    const auto& c = m_cfg;
    const int64_t D = c.D, I = c.I, X = c.experts, k = c.topK;
    auto& L = a.layers[size_t(l)];
    L.probs.resize(size_t(T * X));
    L.weights.resize(size_t(T * k));
    L.experts.resize(size_t(T * k));
    linearForward<float>(T, D, X, x, D, m_params.data(P.router), nullptr, L.probs.data(), X);
    softmaxRowsForward<float>(T, X, L.probs.data(), L.probs.data());
    routerTopK<float>(T, X, k, L.probs.data(), c.arch == "mixtral", L.experts.data(), L.weights.data());
    L.ex.resize(size_t(X));
    for (auto& e : L.ex) {
        e.rows.clear();
        e.slots.clear();
    }
    for (int64_t t = 0; t < T; ++t)
        for (int64_t j = 0; j < k; ++j) {
            auto& e = L.ex[size_t(L.experts[size_t(t * k + j)])];
            e.rows.push_back(int32_t(t));
            e.slots.push_back(int32_t(j));
        }
    std::fill(out, out + T * D, 0.f);
    for (int64_t xi = 0; xi < X; ++xi) {
        auto& e = L.ex[size_t(xi)];
        const int64_t M = int64_t(e.rows.size());
        if (M == 0)
            continue;
        e.x.resize(size_t(M * D));
        e.y.resize(size_t(M * D));
        for (int64_t r = 0; r < M; ++r)
            std::copy(x + e.rows[size_t(r)] * D, x + (e.rows[size_t(r)] + 1) * D, e.x.data() + r * D);
        swigluFwd(M, D, I, e.x.data(), m_params.data(P.eg[size_t(xi)]), m_params.data(P.eu[size_t(xi)]),
                  m_params.data(P.ed[size_t(xi)]), e.act, e.hh, e.y.data());
        for (int64_t r = 0; r < M; ++r) {
            const int64_t t = e.rows[size_t(r)];
            const float w = L.weights[size_t(t * k + e.slots[size_t(r)])];
            for (int64_t d = 0; d < D; ++d)
                out[t * D + d] += w * e.y[size_t(r * D + d)];
        }
    }
}

void DecoderTrainModel::forwardSeq(const int32_t* ids, int64_t T, Acts& a, Scratch& s) const
{
    const auto& c = m_cfg;
    const int64_t D = c.D, V = c.V;
    for (int64_t t = 0; t < T; ++t)
        if (ids[t] < 0 || ids[t] >= V)
            throw Error(ErrorCode::InvalidArgument,
                        fmt::format("token id {} is outside the vocabulary (0..{})", ids[t], V - 1));
    a.layers.resize(size_t(c.layers));
    a.h.resize(size_t(T * D));
    s.out.resize(size_t(T * D));
    embeddingForward<float>(T, D, ids, m_params.data(m_emb), a.h.data());
    MambaMixerDims md {D, c.expand * D, c.N, c.K, c.dtRank(), true, c.eps};
    for (int64_t l = 0; l < c.layers; ++l) {
        const LayerIdx& P = m_layers[size_t(l)];
        auto& L = a.layers[size_t(l)];
        L.hin = a.h;
        L.hn1.resize(size_t(T * D));
        L.r1.resize(size_t(T));
        rmsNormForward<float>(T, D, a.h.data(), m_params.data(P.norm1), c.eps, L.hn1.data(), L.r1.data());
        if (P.wq >= 0) {
            attentionFwd(P, T, L.hn1.data(), s.out.data(), a, l);
        } else {
            MambaMixerWeights w {m_params.data(P.inProj), m_params.data(P.convW), m_params.data(P.convB),
                                 m_params.data(P.xProj),  m_params.data(P.dtW),   m_params.data(P.dtB),
                                 m_params.data(P.aLog),   m_params.data(P.dSkip), m_params.data(P.outProj),
                                 m_params.data(P.dtNorm), m_params.data(P.bNorm), m_params.data(P.cNorm)};
            mambaMixerForward(md, w, T, L.hn1.data(), s.out.data(), L.mamba, s.mamba);
        }
        for (int64_t i = 0; i < T * D; ++i)
            a.h[size_t(i)] += s.out[size_t(i)];
        L.hmid = a.h;
        L.hn2.resize(size_t(T * D));
        L.r2.resize(size_t(T));
        rmsNormForward<float>(T, D, a.h.data(), m_params.data(P.norm2), c.eps, L.hn2.data(), L.r2.data());
        if (P.router >= 0)
            moeFwd(P, T, L.hn2.data(), s.out.data(), a, l);
        else
            swigluFwd(T, D, c.I, L.hn2.data(), m_params.data(P.wg), m_params.data(P.wu), m_params.data(P.wd), L.act,
                      L.hh, s.out.data());
        for (int64_t i = 0; i < T * D; ++i)
            a.h[size_t(i)] += s.out[size_t(i)];
    }
    a.hf.resize(size_t(T * D));
    a.rF.resize(size_t(T));
    rmsNormForward<float>(T, D, a.h.data(), m_params.data(m_normF), c.eps, a.hf.data(), a.rF.data());
    a.logits.resize(size_t(T * V));
    linearForward<float>(T, D, V, a.hf.data(), D, head(), nullptr, a.logits.data(), V);
}

// ---------------------------------------------------------------- backward

void DecoderTrainModel::attentionBwd(const LayerIdx& P, int64_t T, const float* x, const float* dout, float* dx,
                                     Acts& a, Scratch& s, int64_t l, float* g) const
{
    const auto& c = m_cfg;
    const int64_t D = c.D, Dh = c.headDim(), Q = c.H * Dh, KV = c.Hkv * Dh;
    auto& L = a.layers[size_t(l)];
    auto gp = [&](int idx) { return m_params.info(idx).trainable ? g + m_params.info(idx).offset : nullptr; };
    zeroed(s.dao, T * Q);
    linearBackward<float>(T, Q, D, L.ao.data(), Q, m_params.data(P.wo), dout, D, s.dao.data(), Q, gp(P.wo), nullptr);
    const bool rope = c.arch != "jamba";
    zeroed(s.dqr, T * Q);
    zeroed(s.dkr, T * KV);
    zeroed(s.dv, T * KV);
    s.dS.resize(size_t(T * T));
    attentionBwdFast(T, c.H, c.Hkv, Dh, rope ? L.qr.data() : L.q.data(), rope ? L.kr.data() : L.k.data(), L.v.data(),
                     L.P.data(), s.dao.data(), s.dqr.data(), s.dkr.data(), s.dv.data(), s.dS.data());
    const float* dq = s.dqr.data();
    const float* dk = s.dkr.data();
    if (rope) {
        zeroed(s.dq, T * Q);
        zeroed(s.dk, T * KV);
        ropeBwdTable(T, c.H, Dh, a.ropeCos.data(), a.ropeSin.data(), s.dqr.data(), s.dq.data());
        ropeBwdTable(T, c.Hkv, Dh, a.ropeCos.data(), a.ropeSin.data(), s.dkr.data(), s.dk.data());
        dq = s.dq.data();
        dk = s.dk.data();
    }
    linearBackward<float>(T, D, Q, x, D, m_params.data(P.wq), dq, Q, dx, D, gp(P.wq), nullptr);
    linearBackward<float>(T, D, KV, x, D, m_params.data(P.wk), dk, KV, dx, D, gp(P.wk), nullptr);
    linearBackward<float>(T, D, KV, x, D, m_params.data(P.wv), s.dv.data(), KV, dx, D, gp(P.wv), nullptr);
}

void DecoderTrainModel::moeBwd(const LayerIdx& P, int64_t T, const float* x, const float* dout, float* dx, Acts& a,
                               Scratch& s, int64_t l, float* g, const float* auxGrad) const
{
    const auto& c = m_cfg;
    const int64_t D = c.D, I = c.I, X = c.experts, k = c.topK;
    auto& L = a.layers[size_t(l)];
    auto gp = [&](int idx) { return m_params.info(idx).trainable ? g + m_params.info(idx).offset : nullptr; };
    zeroed(s.dw, T * k);
    for (int64_t xi = 0; xi < X; ++xi) {
        auto& e = L.ex[size_t(xi)];
        const int64_t M = int64_t(e.rows.size());
        if (M == 0)
            continue;
        s.dy.resize(size_t(M * D));
        for (int64_t r = 0; r < M; ++r) {
            const int64_t t = e.rows[size_t(r)], slot = t * k + e.slots[size_t(r)];
            const float w = L.weights[size_t(slot)];
            float dot = 0;
            for (int64_t d = 0; d < D; ++d) {
                dot += dout[t * D + d] * e.y[size_t(r * D + d)];
                s.dy[size_t(r * D + d)] = w * dout[t * D + d];
            }
            s.dw[size_t(slot)] += dot;
        }
        zeroed(s.dxg, M * D);
        swigluBwd(M, D, I, e.x.data(), m_params.data(P.eg[size_t(xi)]), m_params.data(P.eu[size_t(xi)]),
                  m_params.data(P.ed[size_t(xi)]), e.act, e.hh, s.dy.data(), s.dxg.data(), gp(P.eg[size_t(xi)]),
                  gp(P.eu[size_t(xi)]), gp(P.ed[size_t(xi)]), s.dhh, s.dact);
        for (int64_t r = 0; r < M; ++r) {
            const int64_t t = e.rows[size_t(r)];
            for (int64_t d = 0; d < D; ++d)
                dx[t * D + d] += s.dxg[size_t(r * D + d)];
        }
    }
    zeroed(s.dprobs, T * X);
    routerTopKBackward<float>(T, X, k, L.probs.data(), c.arch == "mixtral", L.experts.data(), s.dw.data(),
                              s.dprobs.data());
    if (auxGrad)
        for (int64_t t = 0; t < T; ++t)
            for (int64_t e = 0; e < X; ++e)
                s.dprobs[size_t(t * X + e)] += auxGrad[e];
    zeroed(s.dlog, T * X);
    softmaxRowsBackward<float>(T, X, L.probs.data(), s.dprobs.data(), s.dlog.data());
    linearBackward<float>(T, D, X, x, D, m_params.data(P.router), s.dlog.data(), X, dx, D, gp(P.router), nullptr);
}

void DecoderTrainModel::backwardSeq(const int32_t* ids, int64_t T, Acts& a, Scratch& s, float* g,
                                    const float* auxGrad) const
{
    const auto& c = m_cfg;
    const int64_t D = c.D, V = c.V;
    auto gp = [&](int idx) { return m_params.info(idx).trainable ? g + m_params.info(idx).offset : nullptr; };
    zeroed(s.dn, T * D);
    linearBackward<float>(T, D, V, a.hf.data(), D, head(), a.logits.data(), V, s.dn.data(), D,
                          gp(m_head >= 0 ? m_head : m_emb), nullptr);
    zeroed(s.dh, T * D);
    rmsNormBackward<float>(T, D, a.h.data(), m_params.data(m_normF), a.rF.data(), s.dn.data(), s.dh.data(),
                           gp(m_normF));
    MambaMixerDims md {D, c.expand * D, c.N, c.K, c.dtRank(), true, c.eps};
    for (int64_t l = c.layers - 1; l >= 0; --l) {
        const LayerIdx& P = m_layers[size_t(l)];
        auto& L = a.layers[size_t(l)];
        // FFN: h = hmid + ffn(norm2(hmid))
        s.dmid = s.dh;
        zeroed(s.dn, T * D);
        if (P.router >= 0)
            moeBwd(P, T, L.hn2.data(), s.dh.data(), s.dn.data(), a, s, l, g, auxGrad);
        else
            swigluBwd(T, D, c.I, L.hn2.data(), m_params.data(P.wg), m_params.data(P.wu), m_params.data(P.wd), L.act,
                      L.hh, s.dh.data(), s.dn.data(), gp(P.wg), gp(P.wu), gp(P.wd), s.dhh, s.dact);
        rmsNormBackward<float>(T, D, L.hmid.data(), m_params.data(P.norm2), L.r2.data(), s.dn.data(), s.dmid.data(),
                               gp(P.norm2));
        // mixer: hmid = hin + mixer(norm1(hin))
        s.dh = s.dmid;
        zeroed(s.dn, T * D);
        if (P.wq >= 0) {
            attentionBwd(P, T, L.hn1.data(), s.dmid.data(), s.dn.data(), a, s, l, g);
        } else {
            MambaMixerWeights w {m_params.data(P.inProj), m_params.data(P.convW), m_params.data(P.convB),
                                 m_params.data(P.xProj),  m_params.data(P.dtW),   m_params.data(P.dtB),
                                 m_params.data(P.aLog),   m_params.data(P.dSkip), m_params.data(P.outProj),
                                 m_params.data(P.dtNorm), m_params.data(P.bNorm), m_params.data(P.cNorm)};
            MambaMixerGrads mg {gp(P.inProj), gp(P.convW), gp(P.convB),   gp(P.xProj),  gp(P.dtW),   gp(P.dtB),
                                gp(P.aLog),   gp(P.dSkip), gp(P.outProj), gp(P.dtNorm), gp(P.bNorm), gp(P.cNorm)};
            mambaMixerBackward(md, w, T, L.hn1.data(), s.dmid.data(), L.mamba, s.mamba, s.dn.data(), mg);
        }
        rmsNormBackward<float>(T, D, L.hin.data(), m_params.data(P.norm1), L.r1.data(), s.dn.data(), s.dh.data(),
                               gp(P.norm1));
    }
    if (float* dE = gp(m_emb))
        embeddingBackward<float>(T, D, ids, s.dh.data(), dE);
}

// ---------------------------------------------------------------- batch

BatchStats DecoderTrainModel::lossAndGrad(const int32_t* ids, const int32_t* targets, int64_t B, int64_t T,
                                          float* grads, ThreadPool* pool) const
{
    int64_t counted = 0;
    for (int64_t i = 0; i < B * T; ++i)
        counted += targets[i] >= 0;
    const float scale = counted ? 1.0f / float(counted) : 0.0f;
    const int parts = pool ? int(std::min<int64_t>(B, pool->threads())) : 1;
    const int nMoe = moeLayers();
    const int64_t X = nMoe > 0 ? m_cfg.experts : 0, k = m_cfg.topK;
    const double coef = m_cfg.routerAux ? m_cfg.auxCoef : 0.0;
    // the aux loss pools the whole batch: keep every sequence's activations until it is known
    const bool twoPhase = grads && nMoe > 0 && coef > 0;
    std::vector<Acts> seqActs(size_t(twoPhase ? B : 0));
    std::vector<BatchStats> stats(static_cast<size_t>(parts));
    std::vector<std::vector<float>> partGrads(size_t(grads ? parts : 0));
    std::vector<std::vector<double>> counts(size_t(parts), std::vector<double>(size_t(X), 0.0));
    std::vector<std::vector<double>> probSums(size_t(parts), std::vector<double>(size_t(X), 0.0));
    auto runPart = [&](int part) {
        const int64_t b0 = B * part / parts, b1 = B * (part + 1) / parts;
        Acts local;
        Scratch scratch;
        BatchStats& st = stats[size_t(part)];
        float* g = nullptr;
        if (grads) {
            partGrads[size_t(part)].assign(size_t(m_params.numel()), 0.f);
            g = partGrads[size_t(part)].data();
        }
        const int64_t V = m_cfg.V;
        for (int64_t b = b0; b < b1; ++b) {
            Acts& acts = twoPhase ? seqActs[size_t(b)] : local;
            const int32_t* id = ids + b * T;
            const int32_t* tg = targets + b * T;
            forwardSeq(id, T, acts, scratch);
            bool exact = true;
            for (int64_t t = 0; t < T; ++t) {
                if (tg[t] < 0)
                    continue;
                const float* lt = acts.logits.data() + t * V;
                const int64_t arg = std::max_element(lt, lt + V) - lt;
                ++st.counted;
                if (arg == tg[t])
                    ++st.correct;
                else
                    exact = false;
            }
            ++st.sequences;
            st.exactSequences += exact ? 1 : 0;
            for (int64_t t = 0; t < T; ++t) {
                float* lt = acts.logits.data() + t * V;
                if (tg[t] >= 0)
                    st.lossSum += crossEntropyRow(V, lt, tg[t], scale, g != nullptr);
                else if (g)
                    std::fill(lt, lt + V, 0.0f);
            }
            for (int64_t l = 0; l < m_cfg.layers; ++l)
                if (m_cfg.isMoe(l)) {
                    const auto& L = acts.layers[size_t(l)];
                    for (int64_t i = 0; i < T * k; ++i)
                        counts[size_t(part)][size_t(L.experts[size_t(i)])] += 1;
                    for (int64_t t = 0; t < T; ++t)
                        for (int64_t e = 0; e < X; ++e)
                            probSums[size_t(part)][size_t(e)] += L.probs[size_t(t * X + e)];
                }
            if (g && !twoPhase)
                backwardSeq(id, T, acts, scratch, g, nullptr);
        }
    };
    if (parts > 1)
        pool->run(parts, [&](int part) { runPart(part); });
    else
        runPart(0);
    BatchStats total;
    for (const auto& st : stats)
        total += st;
    if (nMoe > 0) {
        // transformers' load_balancing_loss_func: X · Σ_e (count_e / rows) · (Σ p_e / rows)
        const double rows = double(B * T * nMoe);
        std::vector<double> c(size_t(X), 0.0), p(size_t(X), 0.0);
        for (int part = 0; part < parts; ++part)
            for (int64_t e = 0; e < X; ++e) {
                c[size_t(e)] += counts[size_t(part)][size_t(e)];
                p[size_t(e)] += probSums[size_t(part)][size_t(e)];
            }
        double aux = 0;
        for (int64_t e = 0; e < X; ++e)
            aux += c[size_t(e)] * p[size_t(e)];
        total.auxLoss = double(X) * aux / (rows * rows);
        total.auxCoef = coef;
        if (twoPhase) {
            std::vector<float> auxGrad(static_cast<size_t>(X));
            for (int64_t e = 0; e < X; ++e)
                auxGrad[size_t(e)] = float(coef * double(X) * c[size_t(e)] / (rows * rows));
            auto backPart = [&](int part) {
                const int64_t b0 = B * part / parts, b1 = B * (part + 1) / parts;
                Scratch scratch;
                for (int64_t b = b0; b < b1; ++b) {
                    backwardSeq(ids + b * T, T, seqActs[size_t(b)], scratch, partGrads[size_t(part)].data(),
                                auxGrad.data());
                    seqActs[size_t(b)] = Acts(); // release as we go
                }
            };
            if (parts > 1)
                pool->run(parts, [&](int part) { backPart(part); });
            else
                backPart(0);
        }
    }
    if (grads)
        for (const auto& pg : partGrads)
            for (size_t i = 0; i < pg.size(); ++i)
                grads[i] += pg[i];
    return total;
}

std::vector<float> DecoderTrainModel::logits(const int32_t* ids, int64_t T) const
{
    Acts a;
    Scratch s;
    forwardSeq(ids, T, a, s);
    return a.logits;
}

} // namespace archlens::train
