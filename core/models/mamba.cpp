// Mamba-1 (MambaForCausalLM and the original state-spaces layout), computed as
// transformers' slow path does (../shared/docs/model-formats.md §3):
//   h = E[ids]; per layer h = h + Mixer(RMSNorm(h)); logits = RMSNorm_f(h) · Wₗₘᵀ
//   Mixer: in_proj -> x | z; causal depthwise conv; SiLU; x_proj -> δ | B | C;
//          Δ = softplus(dt_proj(δ) + b_dt); selective scan with A = -exp(A_log) and D skip;
//          y ⊙ SiLU(z); out_proj.
// Two paths over the same weights: the chunk path (whole sequence through each layer) and
// the recurrent path (one token through all layers), which must agree.
#include <cmath>
#include <cstring>

#include <fmt/format.h>

#include "formats/hf_config.h"
#include "formats/safetensors.h"
#include "models/registry.h"

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

struct MambaLayer {
    Tensor norm, inProj, inProjBias, convW, convB, xProj, dtProj, dtBias, A, D, outProj, outProjBias;
};

class MambaState final : public ModelState {
public:
    std::vector<Tensor> conv; // per layer (E, K-1): the last K-1 pre-conv inputs
    std::vector<Tensor> ssm;  // per layer (E, N)

    std::unique_ptr<ModelState> clone() const override
    {
        auto s = std::make_unique<MambaState>();
        s->position = position;
        for (const auto& t : conv)
            s->conv.push_back(t.clone());
        for (const auto& t : ssm)
            s->ssm.push_back(t.clone());
        return s;
    }
    std::vector<std::pair<std::string, Tensor>> tensors() const override
    {
        std::vector<std::pair<std::string, Tensor>> out;
        for (size_t i = 0; i < conv.size(); ++i) {
            out.emplace_back(fmt::format("layers.{}.conv_state", i), conv[i]);
            out.emplace_back(fmt::format("layers.{}.ssm_state", i), ssm[i]);
        }
        return out;
    }
};

// Copies columns [begin, begin + width) of a (T, W) tensor into a new (T, width) tensor.
Tensor columns(const Tensor& src, int64_t begin, int64_t width)
{
    const int64_t T = src.dim(0), W = src.dim(1);
    Tensor out = Tensor::empty({T, width});
    for (int64_t t = 0; t < T; ++t)
        std::memcpy(out.f32() + t * width, src.f32() + t * W + begin, size_t(width) * sizeof(float));
    return out;
}

ModelInfo describeMamba(const HfConfig& config, const Checkpoint& ckpt)
{
    const MambaConfig c = readConfig(config, ckpt);
    ModelInfo info;
    info.architecture = c.original ? "MambaLMHeadModel (original state-spaces layout)" : config.architectureName();
    info.modelType = c.original ? "mamba" : config.modelType();
        if (info.architecture.empty())
        info.architecture = "MambaForCausalLM";
        if (info.modelType.empty())
        info.modelType = "mamba";
    info.path = ckpt.dir();
    info.layers = c.layers;
    info.dModel = c.D;
    info.vocabRows = c.V;
    info.weightDType = ckpt.dominantFloatDType();
    info.storedBytes = ckpt.totalBytes();
    info.loadedBytes = 0; // filled below
    info.tiedEmbeddings = !ckpt.contains("lm_head.weight");
    info.dInner = c.E;
    info.dState = c.N;
    info.dConv = c.K;
    info.dtRank = c.R;
    info.bosTokenId = c.bos;
    info.eosTokenId = c.eos;
    info.stateBytesPerSequence = uint64_t(c.layers * c.E * (c.N + c.K - 1)) * sizeof(float);
        int64_t perLayer = 2 * c.E * c.D + c.E * c.K + c.E * (c.R + 2 * c.N) + c.R * c.E + c.E + c.E * c.N + c.E
            + c.D * c.E + c.D;
        if (c.useConvBias)
            perLayer += c.E;
        if (c.useBias)
            perLayer += 2 * c.E + c.D;
    info.parameters = c.V * c.D + c.layers * perLayer + c.D + (info.tiedEmbeddings ? 0 : c.V * c.D);
    info.activeParameters = info.parameters;
    info.layerMixer.assign(size_t(c.layers), "mamba");
    info.layerFfn.assign(size_t(c.layers), "none");
    info.facts = {{"d_inner (E)", std::to_string(c.E)},
                      {"d_state (N)", std::to_string(c.N)},
                      {"d_conv (K)", std::to_string(c.K)},
                      {"dt_rank (R)", std::to_string(c.R)},
                      {"in/out_proj bias", c.useBias ? "yes" : "no"},
                      {"conv bias", c.useConvBias ? "yes" : "no"},
                      {"rms_norm eps", fmt::format("{:g}", c.eps)}};
    
    // Host memory once loaded: every float parameter widened to F32, plus A = -exp(A_log).
    info.loadedBytes = uint64_t(info.parameters + c.layers * c.E * c.N) * sizeof(float);
    return info;
}

class MambaModel final : public Model {
public:
    MambaModel(const HfConfig& config, const Checkpoint& ckpt, std::shared_ptr<Backend> backend)
        : m_backend(std::move(backend))
    {
        m_cfg = readConfig(config, ckpt);
        const auto& c = m_cfg;
        uint64_t loaded = 0;
        auto get = [&](const std::string& name, const Shape& shape) {
            Tensor t = ckpt.getF32(name, shape);
            loaded += t.nbytes();
            return t;
        };
        const std::string embKey = ckpt.contains("backbone.embeddings.weight") ? "backbone.embeddings.weight"
                                                                               : "backbone.embedding.weight";
        m_embedding = get(embKey, {c.V, c.D});
        for (int64_t i = 0; i < c.layers; ++i) {
            const std::string p = fmt::format("backbone.layers.{}.", i);
            MambaLayer L;
            L.norm = get(p + "norm.weight", {c.D});
            L.inProj = get(p + "mixer.in_proj.weight", {2 * c.E, c.D});
            if (c.useBias)
                L.inProjBias = get(p + "mixer.in_proj.bias", {2 * c.E});
            // conv1d.weight is [E, 1, K]; we keep it as (E, K)
            L.convW = get(p + "mixer.conv1d.weight", {c.E, 1, c.K}).reshaped({c.E, c.K});
            if (c.useConvBias)
                L.convB = get(p + "mixer.conv1d.bias", {c.E});
            L.xProj = get(p + "mixer.x_proj.weight", {c.R + 2 * c.N, c.E});
            L.dtProj = get(p + "mixer.dt_proj.weight", {c.E, c.R});
            L.dtBias = get(p + "mixer.dt_proj.bias", {c.E});
            Tensor aLog = get(p + "mixer.A_log", {c.E, c.N});
            L.A = Tensor::empty({c.E, c.N});
            for (int64_t j = 0; j < aLog.numel(); ++j)
                L.A.f32()[j] = -std::exp(aLog.f32()[j]);
            L.D = get(p + "mixer.D", {c.E});
            L.outProj = get(p + "mixer.out_proj.weight", {c.D, c.E});
            if (c.useBias)
                L.outProjBias = get(p + "mixer.out_proj.bias", {c.D});
            m_layers.push_back(std::move(L));
        }
        m_normF = get("backbone.norm_f.weight", {c.D});
        if (ckpt.contains("lm_head.weight"))
            m_lmHead = get("lm_head.weight", {c.V, c.D});
        else if (c.tied)
            m_lmHead = m_embedding;
        else
            throw Error(ErrorCode::Format, "missing tensor 'lm_head.weight' and the config says the embeddings are not tied",
                        ckpt.dir().string(), "set tie_word_embeddings to true if the output head is the embedding");

        m_info = describeMamba(config, ckpt);
        (void)loaded;
    }

    const ModelInfo& info() const override { return m_info; }
    Backend& backend() const override { return *m_backend; }

    std::unique_ptr<ModelState> newState() const override
    {
        auto s = std::make_unique<MambaState>();
        for (int64_t i = 0; i < m_cfg.layers; ++i) {
            s->conv.push_back(Tensor::zeros({m_cfg.E, m_cfg.K - 1}));
            s->ssm.push_back(Tensor::zeros({m_cfg.E, m_cfg.N}));
        }
        return s;
    }

    Tensor forward(std::span<const int32_t> ids, ModelState& stateBase, ProbeSink* sink, ForwardMode mode,
                   bool allLogits) override
    {
        auto& state = dynamic_cast<MambaState&>(stateBase);
        const int64_t T = int64_t(ids.size());
        if (T == 0)
            return Tensor::zeros({0, m_cfg.V});
        const bool recurrent = mode == ForwardMode::Recurrent || (mode == ForwardMode::Auto && T == 1);
        if (!recurrent)
            return forwardChunk(ids, state, sink, allLogits);
        Tensor logits = Tensor::empty({allLogits ? T : 1, m_cfg.V});
        for (int64_t t = 0; t < T; ++t) {
            Tensor row = forwardStep(ids[size_t(t)], state, sink);
            if (allLogits || t == T - 1)
                std::memcpy(logits.f32() + (allLogits ? t : 0) * m_cfg.V, row.f32(), size_t(m_cfg.V) * sizeof(float));
        }
        return logits;
    }

private:
    // Sends the layer's constants and the probes of one mixer call to the sink.
    struct ScanProbes {
        Tensor delta, states, stateNorm, yPre, gate;
    };

    void prepareProbes(int layer, int64_t T, ProbeSink* sink, ScanArgs& args, ScanProbes& p) const
    {
        if (!sink)
            return;
        const auto& c = m_cfg;
        if (sink->wants(layer, Probe::SsmDelta))
            args.deltaOut = &(p.delta = Tensor::empty({T, c.E}));
        if (sink->wants(layer, Probe::SsmState))
            args.statesOut = &(p.states = Tensor::empty({T, c.E, c.N}));
        if (sink->wants(layer, Probe::SsmStateNorm))
            args.stateNormOut = &(p.stateNorm = Tensor::empty({T, c.E}));
        if (sink->wants(layer, Probe::SsmY))
            args.yPreGateOut = &(p.yPre = Tensor::empty({T, c.E}));
        if (sink->wants(layer, Probe::SsmGate))
            args.gateOut = &(p.gate = Tensor::empty({T, c.E}));
    }

    void emitProbes(int layer, int64_t pos, ProbeSink* sink, const Tensor& xs, const Tensor& B, const Tensor& C,
                    const ScanProbes& p) const
    {
        if (!sink)
            return;
        bool any = false;
        auto emit = [&](Probe probe, const Tensor& t) {
            if (sink->wants(layer, probe)) {
                sink->record(layer, probe, pos, t);
                any = true;
            }
        };
        emit(Probe::SsmX, xs);
        emit(Probe::SsmDelta, p.delta);
        emit(Probe::SsmB, B);
        emit(Probe::SsmC, C);
        emit(Probe::SsmState, p.states);
        emit(Probe::SsmStateNorm, p.stateNorm);
        emit(Probe::SsmY, p.yPre);
        emit(Probe::SsmGate, p.gate);
        if (any) {
            sink->recordConstant(layer, "ssm", "A", m_layers[size_t(layer)].A);
            sink->recordConstant(layer, "ssm", "D", m_layers[size_t(layer)].D);
        }
    }

    static const Tensor* opt(const Tensor& t) { return t.defined() ? &t : nullptr; }

    Tensor logitsFrom(const Tensor& h) const
    {
        Backend& be = *m_backend;
        Tensor hn = Tensor::empty(h.shape());
        be.rmsNorm(h, m_normF, float(m_cfg.eps), hn);
        Tensor logits = Tensor::empty({h.dim(0), m_cfg.V});
        be.linear(hn, m_lmHead, nullptr, logits);
        return logits;
    }

    Tensor forwardChunk(std::span<const int32_t> ids, MambaState& state, ProbeSink* sink, bool allLogits)
    {
        const int64_t T = int64_t(ids.size());
        Tensor h = Tensor::empty({T, m_cfg.D}); // (T, D)
        m_backend->embedding(std::vector<int32_t>(ids.begin(), ids.end()), m_embedding, h);
        runLayers(h, state, sink, /*recurrent=*/false);
        return logitsFrom(allLogits ? h : h.rows(T - 1, T));
    }

    Tensor forwardStep(int32_t id, MambaState& state, ProbeSink* sink)
    {
        Tensor h = Tensor::empty({1, m_cfg.D});
        m_backend->embedding({id}, m_embedding, h);
        runLayers(h, state, sink, /*recurrent=*/true);
        return logitsFrom(h);
    }

    // h (T, D) through every layer, in place. The recurrent form (T = 1) uses the
    // decoder's step ops for the conv and the scan; everything else is shared.
    void runLayers(Tensor& h, MambaState& state, ProbeSink* sink, bool recurrent)
    {
        const auto& c = m_cfg;
        Backend& be = *m_backend;
        const int64_t T = h.dim(0);
        const int64_t pos = state.position;
        Tensor hn = Tensor::empty({T, c.D});
        Tensor xz = Tensor::empty({T, 2 * c.E});
        Tensor xc = Tensor::empty({T, c.E});
        Tensor xs = Tensor::empty({T, c.E});
        Tensor dbc = Tensor::empty({T, c.R + 2 * c.N});
        Tensor dt = Tensor::empty({T, c.E});
        Tensor y = Tensor::empty({T, c.E});
        Tensor out = Tensor::empty({T, c.D});
        for (int64_t i = 0; i < c.layers; ++i) {
            const MambaLayer& L = m_layers[size_t(i)];
            be.rmsNorm(h, L.norm, float(c.eps), hn);
            be.linear(hn, L.inProj, opt(L.inProjBias), xz);                // (T, 2E)
            Tensor x = columns(xz, 0, c.E);                                 // (T, E)
            Tensor z = columns(xz, c.E, c.E);                               // (T, E)
            if (recurrent)
                be.causalConv1dStep(x, L.convW, opt(L.convB), state.conv[size_t(i)], xc);
            else
                be.causalConv1d(x, L.convW, opt(L.convB), state.conv[size_t(i)], xc);
            be.silu(xc, xs);                                                // (T, E)
            be.linear(xs, L.xProj, nullptr, dbc);                           // (T, R + 2N)
            Tensor delta0 = columns(dbc, 0, c.R);                           // (T, R)
            Tensor B = columns(dbc, c.R, c.N);                              // (T, N)
            Tensor C = columns(dbc, c.R + c.N, c.N);                        // (T, N)
            be.linear(delta0, L.dtProj, nullptr, dt);                       // (T, E)
            ScanArgs args;
            args.x = &xs;
            args.dt = &dt;
            args.dtBias = &L.dtBias;
            args.A = &L.A;
            args.B = &B;
            args.C = &C;
            args.D = &L.D;
            args.z = &z;
            args.state = &state.ssm[size_t(i)];
            args.y = &y;
            ScanProbes probes;
            prepareProbes(int(i), T, sink, args, probes);
            if (recurrent)
                be.selectiveScanStep(args);
            else
                be.selectiveScan(args);
            emitProbes(int(i), pos, sink, xs, B, C, probes);
            be.linear(y, L.outProj, opt(L.outProjBias), out);               // (T, D)
            be.add(h, out, h);
        }
        state.position += T;
    }

    std::shared_ptr<Backend> m_backend;
    MambaConfig m_cfg;
    ModelInfo m_info;
    Tensor m_embedding, m_normF, m_lmHead;
    std::vector<MambaLayer> m_layers;
};

} // namespace

ModelFactory mambaFactory()
{
    ModelFactory f;
    f.name = "mamba";
    f.architectures = {"MambaForCausalLM", "MambaModel", "MambaLMHeadModel"};
    f.modelTypes = {"mamba"};
    f.recognise = isOriginalLayout;
    f.describe = describeMamba;
    f.create = [](const HfConfig& config, const Checkpoint& ckpt, std::shared_ptr<Backend> backend) {
        return std::unique_ptr<Model>(new MambaModel(config, ckpt, std::move(backend)));
    };
    return f;
}

} // namespace archlens
