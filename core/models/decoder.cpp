#include "models/decoder.h"

#include <cstring>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "formats/safetensors.h"

namespace archlens {

namespace {

class DecoderState final : public ModelState {
public:
    std::vector<KvCache> kv;             // per layer; unused for Mamba layers
    std::vector<MambaLayerState> ssm;    // per layer; unused for attention layers
    std::vector<MoeRouterStats> moe;     // per layer; experts = 0 for layers without MoE
    std::vector<int> kinds;              // per layer: 0 attention, 1 mamba

    std::unique_ptr<ModelState> clone() const override
    {
        auto s = std::make_unique<DecoderState>();
        s->position = position;
        s->kinds = kinds;
        s->moe = moe;
        for (const auto& c : kv)
            s->kv.push_back(c.clone());
        for (const auto& m : ssm)
            s->ssm.push_back({m.conv.defined() ? m.conv.clone() : Tensor(), m.ssm.defined() ? m.ssm.clone() : Tensor()});
        return s;
    }

    std::vector<std::pair<std::string, Tensor>> tensors() const override
    {
        std::vector<std::pair<std::string, Tensor>> out;
        for (size_t i = 0; i < kinds.size(); ++i) {
            if (kinds[i] == 1) {
                out.emplace_back(fmt::format("layers.{}.conv_state", i), ssm[i].conv);
                out.emplace_back(fmt::format("layers.{}.ssm_state", i), ssm[i].ssm);
            } else if (kv[i].length > 0) {
                out.emplace_back(fmt::format("layers.{}.key_cache", i), kv[i].k.rows(0, kv[i].length));
                out.emplace_back(fmt::format("layers.{}.value_cache", i), kv[i].v.rows(0, kv[i].length));
            }
        }
        return out;
    }
};

// Facts derived from the assembled layers, identical for describe and load.
void completeInfo(DecoderSpec& s, const HfConfig& config, const WeightBinder& wb)
{
    ModelInfo& info = s.info;
    if (info.architecture.empty())
        info.architecture = config.architectureName();
    if (info.modelType.empty())
        info.modelType = config.modelType();
    const Checkpoint& ckpt = wb.checkpoint();
    info.path = ckpt.dir();
    info.layers = int64_t(s.layers.size());
    info.dModel = s.D;
    info.vocabRows = s.V;
    info.parameters = wb.parameters();
    info.activeParameters = wb.parameters() - wb.inactiveParameters();
    info.weightDType = ckpt.dominantFloatDType();
    info.storedBytes = ckpt.totalBytes();
    info.loadedBytes = wb.loadedBytes();
    info.layerMixer.clear();
    info.layerFfn.clear();
    for (const auto& L : s.layers) {
        if (L.attention) {
            const auto& a = L.attention->config();
            info.layerMixer.push_back("attention");
            info.heads = a.H;
            info.kvHeads = a.Hkv;
            info.headDim = a.Dh;
            info.kvCacheBytesPerToken += L.attention->cacheBytesPerToken();
        } else {
            const auto& m = L.mamba->config();
            info.layerMixer.push_back("mamba");
            info.dInner = m.E;
            info.dState = m.N;
            info.dConv = m.K;
            info.dtRank = m.R;
            info.stateBytesPerSequence += L.mamba->stateBytes();
            // A = −exp(A_log) is an extra F32 copy next to the weights
            info.loadedBytes += uint64_t(m.E * m.N) * sizeof(float);
        }
        if (L.moe) {
            info.layerFfn.push_back("moe");
            info.experts = L.moe->config().X;
            info.expertsPerToken = L.moe->config().k;
        } else {
            info.layerFfn.push_back(L.mlp ? "mlp" : "none");
        }
    }
}

class DecoderModel final : public Model {
public:
    DecoderModel(DecoderSpec spec, std::shared_ptr<Backend> backend)
        : m_s(std::move(spec))
        , m_backend(std::move(backend))
    {
        for (const auto& L : m_s.layers)
            m_hasMoe = m_hasMoe || L.moe != nullptr;
    }

    const ModelInfo& info() const override { return m_s.info; }
    Backend& backend() const override { return *m_backend; }

    std::unique_ptr<ModelState> newState() const override
    {
        auto s = std::make_unique<DecoderState>();
        for (const auto& L : m_s.layers) {
            s->kinds.push_back(L.attention ? 0 : 1);
            s->kv.emplace_back();
            s->ssm.push_back(L.mamba ? L.mamba->newState() : MambaLayerState{});
            s->moe.emplace_back(L.moe ? L.moe->config().X : 0);
        }
        return s;
    }

    Tensor forward(std::span<const int32_t> ids, ModelState& stateBase, ProbeSink* sink, ForwardMode mode,
                   bool allLogits) override
    {
        auto& state = dynamic_cast<DecoderState&>(stateBase);
        const int64_t T = int64_t(ids.size()), V = m_s.V;
        if (T == 0)
            return Tensor::zeros({0, V});
        const bool recurrent = mode == ForwardMode::Recurrent || (mode == ForwardMode::Auto && T == 1);
        Tensor logits;
        if (!recurrent) {
            Tensor h = embed(ids);
            runLayers(h, state, sink, false);
            logits = logitsFrom(allLogits ? h : h.rows(T - 1, T));
        } else {
            logits = Tensor::empty({allLogits ? T : 1, V});
            for (int64_t t = 0; t < T; ++t) {
                Tensor h = embed(ids.subspan(size_t(t), 1));
                runLayers(h, state, sink, true);
                if (allLogits || t == T - 1) {
                    const Tensor row = logitsFrom(h);
                    std::memcpy(logits.f32() + (allLogits ? t : 0) * V, row.f32(), size_t(V) * sizeof(float));
                }
            }
        }
        if (sink && m_hasMoe) {
            // every MoE layer's rows together, as load_balancing_loss_func concatenates them
            MoeRouterStats all;
            for (const auto& s : state.moe) {
                if (s.experts == 0)
                    continue;
                if (all.experts == 0)
                    all = MoeRouterStats(s.experts);
                all.merge(s);
            }
            sink->recordModelValue("load_balancing_loss", all.loadBalancingLoss());
        }
        return logits;
    }

private:
    Tensor embed(std::span<const int32_t> ids) const
    {
        Tensor h = Tensor::empty({int64_t(ids.size()), m_s.D}); // (T, D)
        m_backend->embedding(std::vector<int32_t>(ids.begin(), ids.end()), m_s.embedding, h);
        return h;
    }

    Tensor logitsFrom(const Tensor& h) const
    {
        Tensor hn = Tensor::empty(h.shape());
        applyNorm(*m_backend, m_s.finalNorm, h, hn);
        Tensor logits = Tensor::empty({h.dim(0), m_s.V}); // (T, V)
        m_backend->linear(hn, m_s.lmHead, nullptr, logits);
        return logits;
    }

    void ffn(const DecoderLayer& L, const Tensor& x, DecoderState& st, ProbeSink* sink, int i, int64_t pos,
             Tensor& out) const
    {
        if (L.moe)
            L.moe->forward(*m_backend, x, sink ? &st.moe[size_t(i)] : nullptr, sink, i, pos, out);
        else
            L.mlp->forward(*m_backend, x, out);
    }

    // h (T, D) through every layer, in place.
    void runLayers(Tensor& h, DecoderState& st, ProbeSink* sink, bool recurrent) const
    {
        Backend& be = *m_backend;
        const int64_t T = h.dim(0), pos = st.position;
        Tensor hn = Tensor::empty({T, m_s.D});
        Tensor mix = Tensor::empty({T, m_s.D});
        Tensor f = Tensor::empty({T, m_s.D});
        for (size_t i = 0; i < m_s.layers.size(); ++i) {
            const DecoderLayer& L = m_s.layers[i];
            const int layer = int(i);
            applyNorm(be, L.inputNorm, h, hn);
            if (L.attention)
                L.attention->forward(be, hn, st.kv[i], sink, layer, mix);
            else
                L.mamba->forward(be, hn, st.ssm[i], recurrent, sink, layer, pos, mix);
            const bool hasFfn = L.mlp || L.moe;
            if (m_s.parallelResidual && hasFfn) {
                // GPT-NeoX: both branches read the same h; h = (mlp + attn) + h
                applyNorm(be, L.ffnNorm, h, hn);
                ffn(L, hn, st, sink, layer, pos, f);
                be.add(f, mix, f);
                be.add(f, h, h);
            } else {
                be.add(h, mix, h);
                if (hasFfn) {
                    applyNorm(be, L.ffnNorm, h, hn);
                    ffn(L, hn, st, sink, layer, pos, f);
                    be.add(h, f, h);
                }
            }
        }
        st.position += T;
    }

    DecoderSpec m_s;
    std::shared_ptr<Backend> m_backend;
    bool m_hasMoe = false;
};

} // namespace

Tensor bindOutputHead(WeightBinder& wb, const std::string& headName, const Tensor& embedding, int64_t V, int64_t D,
                      bool tied)
{
    if (wb.has(headName))
        return wb.get(headName, {V, D});
    if (tied)
        return embedding;
    throw Error(ErrorCode::Format,
                fmt::format("missing tensor '{}' and the config says the embeddings are not tied", headName),
                wb.checkpoint().dir().string(), "set tie_word_embeddings to true if the output head is the embedding");
}

int64_t tokenIdKey(const HfConfig& c, const char* key, int64_t fallback)
{
    if (!c.has(key))
        return fallback;
    const nlohmann::json& v = c.json().at(key);
    if (v.is_array()) {
        if (v.empty())
            return fallback;
        if (!v.front().is_number_integer())
            c.fail(key, fmt::format("expected token ids, found {}", v.dump()));
        return v.front().get<int64_t>();
    }
    return c.getInt(key);
}

int64_t positiveInt(const HfConfig& c, const char* key, int64_t fallback)
{
    const int64_t v = c.getInt(key, fallback);
    if (v <= 0)
        c.fail(key, fmt::format("must be positive, found {}", v));
    return v;
}

int64_t positiveInt(const HfConfig& c, const char* key)
{
    const int64_t v = c.getInt(key);
    if (v <= 0)
        c.fail(key, fmt::format("must be positive, found {}", v));
    return v;
}

ModelFactory decoderFactory(std::string name, std::vector<std::string> architectures,
                            std::vector<std::string> modelTypes, DecoderBuilder build)
{
    ModelFactory f;
    f.name = std::move(name);
    f.architectures = std::move(architectures);
    f.modelTypes = std::move(modelTypes);
    f.describe = [build](const HfConfig& config, const Checkpoint& ckpt) {
        WeightBinder wb(ckpt, /*load=*/false);
        DecoderSpec spec = build(config, wb);
        completeInfo(spec, config, wb);
        return spec.info;
    };
    f.create = [build](const HfConfig& config, const Checkpoint& ckpt, std::shared_ptr<Backend> backend) {
        WeightBinder wb(ckpt, /*load=*/true);
        DecoderSpec spec = build(config, wb);
        completeInfo(spec, config, wb);
        return std::unique_ptr<Model>(new DecoderModel(std::move(spec), std::move(backend)));
    };
    return f;
}

} // namespace archlens
