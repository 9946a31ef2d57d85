#include "training/mamba_train_model.h"

#include <algorithm>
#include <cmath>
#include <tuple>

#include <fmt/format.h>

#include "base/error.h"
#include "formats/atomic_file.h"
#include "formats/hf_config.h"
#include "formats/safetensors.h"
#include "ops/math.h"
#include "training/train_ops.h"

namespace archlens::train {

namespace fs = std::filesystem;

// ---------------------------------------------------------------- config, parameter store

nlohmann::ordered_json MambaTrainConfig::toHfConfig() const
{
    return {
        {"architectures", {"MambaForCausalLM"}},
        {"model_type", "mamba"},
        {"hidden_size", D},
        {"num_hidden_layers", layers},
        {"state_size", N},
        {"expand", E / D},
        {"intermediate_size", E},
        {"conv_kernel", K},
        {"time_step_rank", R},
        {"use_bias", false},
        {"use_conv_bias", true},
        {"hidden_act", "silu"},
        {"layer_norm_epsilon", eps},
        {"residual_in_fp32", true},
        {"vocab_size", V},
        {"tie_word_embeddings", tied},
        {"bos_token_id", 0},
        {"eos_token_id", 0},
        {"pad_token_id", 0},
        {"torch_dtype", "float32"},
    };
}

// ---------------------------------------------------------------- construction

MambaTrainModel::MambaTrainModel(MambaTrainConfig cfg)
    : m_cfg(cfg)
{
    if (cfg.V <= 0 || cfg.D <= 0 || cfg.layers <= 0 || cfg.E <= 0 || cfg.N <= 0 || cfg.K <= 0 || cfg.R <= 0)
        throw Error(ErrorCode::InvalidArgument, "every model dimension must be positive");
    allocate();
}

void MambaTrainModel::allocate()
{
    const auto& c = m_cfg;
    m_emb = m_params.add("backbone.embeddings.weight", {c.V, c.D}, true);
    for (int64_t i = 0; i < c.layers; ++i) {
        const std::string p = fmt::format("backbone.layers.{}.", i);
        LayerIdx L;
        L.norm = m_params.add(p + "norm.weight", {c.D}, false);
        L.inProj = m_params.add(p + "mixer.in_proj.weight", {2 * c.E, c.D}, true);
        L.convW = m_params.add(p + "mixer.conv1d.weight", {c.E, 1, c.K}, true);
        L.convB = m_params.add(p + "mixer.conv1d.bias", {c.E}, false);
        L.xProj = m_params.add(p + "mixer.x_proj.weight", {c.R + 2 * c.N, c.E}, true);
        L.dtW = m_params.add(p + "mixer.dt_proj.weight", {c.E, c.R}, true);
        L.dtB = m_params.add(p + "mixer.dt_proj.bias", {c.E}, false);
        L.aLog = m_params.add(p + "mixer.A_log", {c.E, c.N}, false);
        L.dSkip = m_params.add(p + "mixer.D", {c.E}, false);
        L.outProj = m_params.add(p + "mixer.out_proj.weight", {c.D, c.E}, true);
        m_layers.push_back(L);
    }
    m_normF = m_params.add("backbone.norm_f.weight", {c.D}, false);
    if (!c.tied)
        m_head = m_params.add("lm_head.weight", {c.V, c.D}, true);
}

MambaTrainModel MambaTrainModel::randomInit(const MambaInitOptions& o)
{
    const RandomCheckpoint ck = makeRandomMamba(o);
    MambaTrainConfig c;
    c.V = o.vocabSize;
    c.D = o.dModel;
    c.layers = o.layers;
    c.E = o.expand * o.dModel;
    c.N = o.dState;
    c.K = o.dConv;
    c.R = (o.dModel + 15) / 16;
    MambaTrainModel m(c);
    for (const auto& [name, t] : ck.tensors) {
        const int i = m.m_params.find(name);
        ARCHLENS_ASSERT(i >= 0 && m.m_params.info(i).numel == t.numel(), "init tensor {}", name);
        std::copy(t.f32(), t.f32() + t.numel(), m.m_params.data(i));
    }
    return m;
}

MambaTrainModel MambaTrainModel::load(const fs::path& dir)
{
    const HfConfig hc = HfConfig::load(dir);
    if (!hc.has("hidden_size") || hc.modelType() != "mamba")
        throw Error(ErrorCode::Unsupported, "training needs a Mamba checkpoint in the Hugging Face layout",
                    hc.path().string(), "config.json must have model_type \"mamba\" and hidden_size");
    const Checkpoint ck = Checkpoint::open(dir);
    MambaTrainConfig c;
    c.D = hc.getInt("hidden_size");
    c.layers = hc.getInt("num_hidden_layers");
    c.N = hc.getInt("state_size", 16);
    c.E = int64_t(hc.getDouble("expand", 2) * double(c.D));
    c.K = hc.getInt("conv_kernel", 4);
    c.R = (hc.has("time_step_rank") && hc.json().at("time_step_rank").is_number()) ? hc.getInt("time_step_rank")
                                                                                  : (c.D + 15) / 16;
    c.eps = hc.getDouble("layer_norm_epsilon", 1e-5);
    if (hc.getBool("use_bias", true))
        throw Error(ErrorCode::Unsupported, "training a Mamba with in/out_proj biases (use_bias true) is not supported",
                    hc.path().string());
    if (!hc.getBool("use_conv_bias", true))
        throw Error(ErrorCode::Unsupported, "training a Mamba without conv bias is not supported", hc.path().string());
    const std::string embKey =
        ck.contains("backbone.embeddings.weight") ? "backbone.embeddings.weight" : "backbone.embedding.weight";
    if (!ck.contains(embKey))
        throw Error(ErrorCode::Format, "missing tensor 'backbone.embeddings.weight'", dir.string());
    c.V = ck.info(embKey).shape.at(0);
    c.tied = !ck.contains("lm_head.weight");
    MambaTrainModel m(c);
    for (int i = 0; i < m.m_params.count(); ++i) {
        const ParamInfo& p = m.m_params.info(i);
        const std::string key = p.name == "backbone.embeddings.weight" ? embKey : p.name;
        const Tensor t = ck.getF32(key, p.shape);
        std::copy(t.f32(), t.f32() + t.numel(), m.m_params.data(i));
    }
    return m;
}

nlohmann::ordered_json MambaTrainModel::sizeJson() const
{
    return {{"d_model", m_cfg.D}, {"layers", m_cfg.layers}, {"d_state", m_cfg.N}, {"d_inner", m_cfg.E},
            {"vocab_size", m_cfg.V}};
}

std::vector<std::pair<std::string, Tensor>> MambaTrainModel::baseTensors() const
{
    const bool headUsed = m_head >= 0;
    return m_params.tensors([headUsed](const ParamInfo& p) {
        return p.name.find(".lora_") == std::string::npos && (headUsed || p.name != "lm_head.weight");
    });
}

void MambaTrainModel::save(const fs::path& dir, const std::map<std::string, std::string>& metadata) const
{
    std::error_code ec;
    fs::create_directories(dir, ec);
    std::map<std::string, std::string> meta = metadata;
    meta["format"] = "pt";
    writeSafetensors(dir / "model.safetensors", baseTensors(), meta);
    writeFileAtomic(dir / "config.json", m_cfg.toHfConfig().dump(2) + "\n");
}

// ---------------------------------------------------------------- forward / backward

struct MambaTrainModel::Acts {
    struct Layer {
        std::vector<float> hin, hn, rstd, xz, xc, xs, dbc, dtraw, delta, y, yg, chunks;
        std::vector<float> u[4];           // LoRA A·x per linear
        std::vector<float> xd[4], keep[4]; // LoRA dropout: dropout(x) and its factors
    };
    std::vector<Layer> layers;
    std::vector<float> hL, hf, rstdF, logits, uEmb;
    std::vector<float> scanH; // forward scan scratch
    int64_t chunk = 1;
    bool dropout = false;  // LoRA dropout on (training)
    uint64_t dropKey = 0;  // the sequence's mask seed
    // backward scratch
    std::vector<float> dh, dhn, dxz, dxc, dxs, ddbc, ddt, ddelta, dy, dyg, work, dA, du;
};

// dropout(x) for the LoRA branch of linear k of `layer` (x itself when dropout is off).
const float* MambaTrainModel::loraInput(Acts& a, int64_t layer, int k, int64_t M, int64_t in, const float* x,
                                        int64_t ldx, int64_t& ld) const
{
    const LoraRef& l = m_layers[size_t(layer)].lora[k];
    ld = ldx;
    if (!a.dropout || l.A < 0)
        return x;
    auto& L = a.layers[size_t(layer)];
    L.xd[k].resize(size_t(M * in));
    L.keep[k].resize(size_t(M * in));
    const double p = m_lora.dropout;
    const float scale = float(1.0 / (1.0 - p));
    uint64_t rng = a.dropKey ^ (0xD1B54A32D192ED03ull * uint64_t(layer * 4 + k + 1));
    for (int64_t m = 0; m < M; ++m)
        for (int64_t i = 0; i < in; ++i) {
            const float f = uniform01(rng) < p ? 0.f : scale;
            L.keep[k][size_t(m * in + i)] = f;
            L.xd[k][size_t(m * in + i)] = f * x[m * ldx + i];
        }
    ld = in;
    return L.xd[k].data();
}

void MambaTrainModel::linFwd(int64_t M, int64_t in, int64_t out, const float* x, int64_t ldx, const float* lx,
                             int64_t ldlx, int w, const LoraRef& l, float* u, float* y, int64_t ldy) const
{
    linearForward<float>(M, in, out, x, ldx, m_params.data(w), nullptr, y, ldy);
    if (l.A >= 0 && !m_merged) {
        const int64_t r = m_loraR;
        linearForward<float>(M, in, r, lx, ldlx, m_params.data(l.A), nullptr, u, r); // (M, r)
        MapC<float> U(u, M, r, Eigen::OuterStride<>(r));
        MapC<float> Bm(m_params.data(l.B), out, r, Eigen::OuterStride<>(r));
        MapM<float> Y(y, M, out, Eigen::OuterStride<>(ldy));
        Y.noalias() += float(loraScaling()) * (U * Bm.transpose());
    }
}

void MambaTrainModel::linBwd(int64_t M, int64_t in, int64_t out, const float* x, int64_t ldx, const float* lx,
                             int64_t ldlx, const float* keep, int w, const LoraRef& l, const float* u, const float* dy,
                             int64_t lddy, float* dx, int64_t lddx, float* g, float* du) const
{
    const ParamInfo& pw = m_params.info(w);
    linearBackward<float>(M, in, out, x, ldx, m_params.data(w), dy, lddy, dx, lddx,
                          g && pw.trainable ? g + pw.offset : nullptr, nullptr);
    if (l.A >= 0 && !m_merged) {
        const int64_t r = m_loraR;
        const float s = float(loraScaling());
        MapC<float> DY(dy, M, out, Eigen::OuterStride<>(lddy));
        MapC<float> Bm(m_params.data(l.B), out, r, Eigen::OuterStride<>(r));
        MapC<float> U(u, M, r, Eigen::OuterStride<>(r));
        MapM<float> DU(du, M, r, Eigen::OuterStride<>(r));
        DU.noalias() = s * (DY * Bm);
        if (g && m_params.info(l.B).trainable) {
            MapM<float> DB(g + m_params.info(l.B).offset, out, r, Eigen::OuterStride<>(r));
            DB.noalias() += s * (DY.transpose() * U);
        }
        float* gA = g && m_params.info(l.A).trainable ? g + m_params.info(l.A).offset : nullptr;
        if (!keep) {
            linearBackward<float>(M, in, r, lx, ldlx, m_params.data(l.A), du, r, dx, lddx, gA, nullptr);
            return;
        }
        // through the dropout: dx += keep ⊙ (du · A)
        std::vector<float> dxd(size_t(M * in), 0.f);
        linearBackward<float>(M, in, r, lx, ldlx, m_params.data(l.A), du, r, dxd.data(), in, gA, nullptr);
        if (dx)
            for (int64_t m = 0; m < M; ++m)
                for (int64_t i = 0; i < in; ++i)
                    dx[m * lddx + i] += keep[m * in + i] * dxd[size_t(m * in + i)];
    }
}

void MambaTrainModel::forwardSeq(const int32_t* ids, int64_t T, Acts& a) const
{
    const auto& c = m_cfg;
    const int64_t D = c.D, E = c.E, N = c.N, R = c.R, V = c.V, W = R + 2 * N;
    for (int64_t t = 0; t < T; ++t)
        if (ids[t] < 0 || ids[t] >= V)
            throw Error(ErrorCode::InvalidArgument,
                        fmt::format("token id {} is outside the vocabulary (0..{})", ids[t], V - 1));
    a.chunk = defaultScanChunk(T);
    a.layers.resize(size_t(c.layers));
    std::vector<float> h(size_t(T * D));
    embeddingForward<float>(T, D, ids, m_params.data(m_emb), h.data());
    if (m_embLora.A >= 0 && !m_merged) {
        // h += s · B_emb (A_emb[:, id]) per token; A_emb (r, V), B_emb (D, r)
        const int64_t r = m_loraR;
        const float s = float(loraScaling());
        const float* Ae = m_params.data(m_embLora.A);
        const float* Be = m_params.data(m_embLora.B);
        a.uEmb.assign(size_t(T * r), 0.f);
        for (int64_t t = 0; t < T; ++t) {
            float* u = a.uEmb.data() + t * r;
            for (int64_t j = 0; j < r; ++j)
                u[j] = Ae[j * V + ids[t]];
            for (int64_t d = 0; d < D; ++d) {
                float acc = 0;
                for (int64_t j = 0; j < r; ++j)
                    acc += Be[d * r + j] * u[j];
                h[size_t(t * D + d)] += s * acc;
            }
        }
    }
    a.scanH.resize(size_t(E * N));
    for (int64_t l = 0; l < c.layers; ++l) {
        const LayerIdx& P = m_layers[size_t(l)];
        auto& L = a.layers[size_t(l)];
        L.hin = h;
        L.hn.resize(size_t(T * D));
        L.rstd.resize(size_t(T));
        L.xz.resize(size_t(T * 2 * E));
        L.xc.resize(size_t(T * E));
        L.xs.resize(size_t(T * E));
        L.dbc.resize(size_t(T * W));
        L.dtraw.resize(size_t(T * E));
        L.delta.resize(size_t(T * E));
        L.y.resize(size_t(T * E));
        L.yg.resize(size_t(T * E));
        L.chunks.resize(size_t(scanChunks(T, a.chunk) * E * N));
        if (m_loraR > 0)
            for (auto& u : L.u)
                u.resize(size_t(T * m_loraR));
        rmsNormForward<float>(T, D, h.data(), m_params.data(P.norm), c.eps, L.hn.data(), L.rstd.data()); // (T, D)
        int64_t ld = 0;
        const float* lx = loraInput(a, l, 0, T, D, L.hn.data(), D, ld);
        linFwd(T, D, 2 * E, L.hn.data(), D, lx, ld, P.inProj, P.lora[0], L.u[0].data(), L.xz.data(), 2 * E); // (T, 2E)
        conv1dForward<float>(T, E, c.K, L.xz.data(), 2 * E, m_params.data(P.convW), m_params.data(P.convB),
                             L.xc.data());                                                              // (T, E)
        siluForward<float>(T * E, L.xc.data(), L.xs.data());
        lx = loraInput(a, l, 1, T, E, L.xs.data(), E, ld);
        linFwd(T, E, W, L.xs.data(), E, lx, ld, P.xProj, P.lora[1], L.u[1].data(), L.dbc.data(), W); // (T, R+2N)
        lx = loraInput(a, l, 2, T, R, L.dbc.data(), W, ld);
        linFwd(T, R, E, L.dbc.data(), W, lx, ld, P.dtW, P.lora[2], L.u[2].data(), L.dtraw.data(), E); // (T, E)
        const float* dtb = m_params.data(P.dtB);
        for (int64_t t = 0; t < T; ++t)
            for (int64_t e = 0; e < E; ++e)
                L.dtraw[size_t(t * E + e)] += dtb[e];
        softplusForward<float>(T * E, L.dtraw.data(), L.delta.data());
        std::vector<float> A(size_t(E * N));
        const float* aLog = m_params.data(P.aLog);
        for (int64_t i = 0; i < E * N; ++i)
            A[size_t(i)] = -std::exp(aLog[i]);
        scanForward<float>(T, E, N, a.chunk, L.xs.data(), L.delta.data(), A.data(), L.dbc.data() + R, W,
                           L.dbc.data() + R + N, W, m_params.data(P.dSkip), L.y.data(), L.chunks.data(),
                           a.scanH.data());                                                            // (T, E)
        gateForward<float>(T, E, L.y.data(), L.xz.data() + E, 2 * E, L.yg.data());
        std::vector<float> out(size_t(T * D));
        lx = loraInput(a, l, 3, T, E, L.yg.data(), E, ld);
        linFwd(T, E, D, L.yg.data(), E, lx, ld, P.outProj, P.lora[3], L.u[3].data(), out.data(), D); // (T, D)
        for (size_t i = 0; i < h.size(); ++i)
            h[i] += out[i];
    }
    a.hL = h;
    a.hf.resize(size_t(T * D));
    a.rstdF.resize(size_t(T));
    rmsNormForward<float>(T, D, h.data(), m_params.data(m_normF), c.eps, a.hf.data(), a.rstdF.data());
    a.logits.resize(size_t(T * V));
    linearForward<float>(T, D, V, a.hf.data(), D, head(), nullptr, a.logits.data(), V);                  // (T, V)
}

// a.logits holds dlogits on entry.
void MambaTrainModel::backwardSeq(const int32_t* ids, int64_t T, Acts& a, float* g) const
{
    const auto& c = m_cfg;
    const int64_t D = c.D, E = c.E, N = c.N, R = c.R, V = c.V, W = R + 2 * N;
    auto gp = [&](int idx) -> float* {
        const ParamInfo& p = m_params.info(idx);
        return p.trainable ? g + p.offset : nullptr;
    };
    a.dh.assign(size_t(T * D), 0.f);
    std::vector<float> dhf(size_t(T * D), 0.f);
    linearBackward<float>(T, D, V, a.hf.data(), D, head(), a.logits.data(), V, dhf.data(), D,
                          gp(m_head >= 0 ? m_head : m_emb), nullptr);
    rmsNormBackward<float>(T, D, a.hL.data(), m_params.data(m_normF), a.rstdF.data(), dhf.data(), a.dh.data(),
                           gp(m_normF));
    a.dhn.resize(size_t(T * D));
    a.dxz.resize(size_t(T * 2 * E));
    a.dxc.resize(size_t(T * E));
    a.dxs.resize(size_t(T * E));
    a.ddbc.resize(size_t(T * W));
    a.ddt.resize(size_t(T * E));
    a.ddelta.resize(size_t(T * E));
    a.dy.resize(size_t(T * E));
    a.dyg.resize(size_t(T * E));
    a.work.resize(size_t(scanBackwardWork(E, N, a.chunk)));
    a.dA.resize(size_t(E * N));
    a.du.resize(size_t(T * std::max<int64_t>(m_loraR, 1)));
    std::vector<float> A(size_t(E * N));
    for (int64_t l = c.layers - 1; l >= 0; --l) {
        const LayerIdx& P = m_layers[size_t(l)];
        auto& L = a.layers[size_t(l)];
        const float* aLog = m_params.data(P.aLog);
        for (int64_t i = 0; i < E * N; ++i)
            A[size_t(i)] = -std::exp(aLog[i]);
        // out_proj; the residual passes a.dh through unchanged
        std::fill(a.dyg.begin(), a.dyg.end(), 0.f);
        // the LoRA branch's input, ld and dropout factors of linear k (as loraInput made them)
        auto lin = [&](int k, const float* x, int64_t ldx) {
            const bool drop = a.dropout && P.lora[k].A >= 0;
            return std::tuple<const float*, int64_t, const float*>(drop ? L.xd[k].data() : x,
                                                                   drop ? int64_t(L.xd[k].size()) / T : ldx,
                                                                   drop ? L.keep[k].data() : nullptr);
        };
        auto [lx3, ld3, k3] = lin(3, L.yg.data(), E);
        linBwd(T, E, D, L.yg.data(), E, lx3, ld3, k3, P.outProj, P.lora[3], L.u[3].data(), a.dh.data(), D,
               a.dyg.data(), E, g, a.du.data());
        std::fill(a.dy.begin(), a.dy.end(), 0.f);
        std::fill(a.dxz.begin(), a.dxz.end(), 0.f);
        gateBackward<float>(T, E, L.y.data(), L.xz.data() + E, 2 * E, a.dyg.data(), a.dy.data(), a.dxz.data() + E,
                            2 * E);
        std::fill(a.dxs.begin(), a.dxs.end(), 0.f);
        std::fill(a.ddelta.begin(), a.ddelta.end(), 0.f);
        std::fill(a.ddbc.begin(), a.ddbc.end(), 0.f);
        std::fill(a.dA.begin(), a.dA.end(), 0.f);
        float* dAlog = gp(P.aLog);
        scanBackward<float>(T, E, N, a.chunk, L.xs.data(), L.delta.data(), A.data(), L.dbc.data() + R, W,
                            L.dbc.data() + R + N, W, m_params.data(P.dSkip), L.chunks.data(), a.dy.data(),
                            a.dxs.data(), a.ddelta.data(), dAlog ? a.dA.data() : nullptr, a.ddbc.data() + R, W,
                            a.ddbc.data() + R + N, W, gp(P.dSkip), a.work.data());
        if (dAlog)
            for (int64_t i = 0; i < E * N; ++i)
                dAlog[i] += a.dA[size_t(i)] * A[size_t(i)]; // A = −exp(A_log)
        std::fill(a.ddt.begin(), a.ddt.end(), 0.f);
        softplusBackward<float>(T * E, L.dtraw.data(), a.ddelta.data(), a.ddt.data());
        if (float* db = gp(P.dtB))
            for (int64_t t = 0; t < T; ++t)
                for (int64_t e = 0; e < E; ++e)
                    db[e] += a.ddt[size_t(t * E + e)];
        auto [lx2, ld2, k2] = lin(2, L.dbc.data(), W);
        linBwd(T, R, E, L.dbc.data(), W, lx2, ld2, k2, P.dtW, P.lora[2], L.u[2].data(), a.ddt.data(), E,
               a.ddbc.data(), W, g, a.du.data());
        auto [lx1, ld1, k1] = lin(1, L.xs.data(), E);
        linBwd(T, E, W, L.xs.data(), E, lx1, ld1, k1, P.xProj, P.lora[1], L.u[1].data(), a.ddbc.data(), W,
               a.dxs.data(), E, g, a.du.data());
        std::fill(a.dxc.begin(), a.dxc.end(), 0.f);
        siluBackward<float>(T * E, L.xc.data(), a.dxs.data(), a.dxc.data());
        conv1dBackward<float>(T, E, c.K, L.xz.data(), 2 * E, m_params.data(P.convW), a.dxc.data(), a.dxz.data(),
                              2 * E, gp(P.convW), gp(P.convB));
        std::fill(a.dhn.begin(), a.dhn.end(), 0.f);
        auto [lx0, ld0, k0] = lin(0, L.hn.data(), D);
        linBwd(T, D, 2 * E, L.hn.data(), D, lx0, ld0, k0, P.inProj, P.lora[0], L.u[0].data(), a.dxz.data(), 2 * E,
               a.dhn.data(), D, g, a.du.data());
        rmsNormBackward<float>(T, D, L.hin.data(), m_params.data(P.norm), L.rstd.data(), a.dhn.data(), a.dh.data(),
                               gp(P.norm));
    }
    if (float* dE = gp(m_emb))
        embeddingBackward<float>(T, D, ids, a.dh.data(), dE);
    if (m_embLora.A >= 0 && !m_merged) {
        const int64_t r = m_loraR;
        const float s = float(loraScaling());
        const float* Be = m_params.data(m_embLora.B);
        float* dA = gp(m_embLora.A);
        float* dB = gp(m_embLora.B);
        for (int64_t t = 0; t < T; ++t) {
            const float* u = a.uEmb.data() + t * r;
            const float* dht = a.dh.data() + t * D;
            for (int64_t d = 0; d < D; ++d)
                for (int64_t j = 0; j < r; ++j) {
                    if (dB)
                        dB[d * r + j] += s * dht[d] * u[j];
                    if (dA)
                        dA[j * V + ids[t]] += s * dht[d] * Be[d * r + j];
                }
        }
    }
}

BatchStats MambaTrainModel::lossAndGrad(const int32_t* ids, const int32_t* targets, int64_t B, int64_t T, float* grads,
                                        ThreadPool* pool) const
{
    int64_t counted = 0;
    for (int64_t i = 0; i < B * T; ++i)
        counted += targets[i] >= 0;
    const float scale = counted ? 1.0f / float(counted) : 0.0f;
    const int parts = pool ? int(std::min<int64_t>(B, pool->threads())) : 1;
    std::vector<BatchStats> stats(static_cast<size_t>(parts));
    std::vector<std::vector<float>> partGrads(size_t(grads ? parts : 0));
    auto runPart = [&](int part) {
        const int64_t b0 = B * part / parts, b1 = B * (part + 1) / parts;
        Acts acts;
        BatchStats& st = stats[size_t(part)];
        float* g = nullptr;
        if (grads) {
            partGrads[size_t(part)].assign(size_t(m_params.numel()), 0.f);
            g = partGrads[size_t(part)].data();
        }
        const int64_t V = m_cfg.V;
        for (int64_t b = b0; b < b1; ++b) {
            const int32_t* id = ids + b * T;
            const int32_t* tg = targets + b * T;
            acts.dropout = g && m_lora.dropout > 0 && hasLora() && !m_merged;
            if (acts.dropout) {
                // the mask follows the adapter's seed, the tokens and the row: a resumed run
                // (same batches) draws the same masks, and a fixed batch has a fixed mask
                uint64_t key = m_lora.seed * 0x9E3779B97F4A7C15ull + uint64_t(b) * 0xBF58476D1CE4E5B9ull + 0x5EED;
                for (int64_t t = 0; t < T; ++t)
                    key = (key ^ uint64_t(uint32_t(id[t]))) * 0x100000001B3ull;
                acts.dropKey = key;
            }
            forwardSeq(id, T, acts);
            bool exact = true;
            int64_t seqCounted = 0;
            for (int64_t t = 0; t < T; ++t) {
                if (tg[t] < 0)
                    continue;
                const float* lt = acts.logits.data() + t * V;
                const int64_t arg = std::max_element(lt, lt + V) - lt;
                ++seqCounted;
                if (arg == tg[t])
                    ++st.correct;
                else
                    exact = false;
            }
            st.counted += seqCounted;
            ++st.sequences;
            st.exactSequences += exact ? 1 : 0;
            st.lossSum += crossEntropy<float>(T, V, acts.logits.data(), tg, scale, g ? acts.logits.data() : nullptr);
            if (g)
                backwardSeq(id, T, acts, g);
        }
    };
    if (parts > 1)
        pool->run(parts, [&](int part) { runPart(part); });
    else
        runPart(0);
    BatchStats total;
    for (const auto& s : stats)
        total += s;
    if (grads)
        for (const auto& pg : partGrads)
            for (size_t i = 0; i < pg.size(); ++i)
                grads[i] += pg[i];
    return total;
}

std::vector<float> MambaTrainModel::logits(const int32_t* ids, int64_t T) const
{
    Acts a;
    forwardSeq(ids, T, a);
    return a.logits;
}

std::vector<float> MambaTrainModel::logits(const int32_t* ids, int64_t T, const ScanTap& tap) const
{
    Acts a;
    forwardSeq(ids, T, a);
    const int64_t R = m_cfg.R, N = m_cfg.N, W = R + 2 * N;
    for (int64_t l = 0; l < m_cfg.layers; ++l) {
        const auto& L = a.layers[size_t(l)];
        tap(l, T, L.delta.data(), L.dbc.data() + R, L.dbc.data() + R + N, W);
    }
    return a.logits;
}

} // namespace archlens::train
