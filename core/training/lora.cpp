// LoRA adapters for MambaTrainModel in PEFT's format (model-formats §11): target matching,
// initialisation, adapter_config.json + adapter_model.safetensors, merge and unmerge.
#include <algorithm>
#include <cmath>
#include <fstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "base/error.h"
#include "base/strings.h"
#include "formats/atomic_file.h"
#include "formats/safetensors.h"
#include "ops/math.h"
#include "training/mamba_train_model.h"
#include "training/train_ops.h"

namespace archlens::train {

namespace fs = std::filesystem;

namespace {

const char* kLinearNames[4] = {"in_proj", "x_proj", "dt_proj", "out_proj"};
const std::string kPeftPrefix = "base_model.model.";

bool peftMatches(const std::string& path, const std::string& entry)
{
    return path == entry || (path.size() > entry.size() && path.compare(path.size() - entry.size(), entry.size(), entry) == 0
                             && path[path.size() - entry.size() - 1] == '.');
}

std::string readText(const fs::path& p)
{
    std::ifstream f(p, std::ios::binary);
    if (!f)
        throw Error(ErrorCode::Io, "cannot open file", p.string());
    return std::string(std::istreambuf_iterator<char>(f), {});
}

} // namespace

double MambaTrainModel::loraScaling() const
{
    if (m_loraR <= 0)
        return 0.0;
    return m_lora.rslora ? m_lora.alpha / std::sqrt(double(m_loraR)) : m_lora.alpha / double(m_loraR);
}

// Every module PEFT could wrap in a MambaForCausalLM, by full path.
std::vector<std::string> MambaTrainModel::modulePaths() const
{
    std::vector<std::string> out = {"backbone.embeddings"};
    for (int64_t i = 0; i < m_cfg.layers; ++i) {
        for (const char* n : kLinearNames)
            out.push_back(fmt::format("backbone.layers.{}.mixer.{}", i, n));
        out.push_back(fmt::format("backbone.layers.{}.mixer.conv1d", i));
    }
    out.push_back("lm_head");
    return out;
}

int MambaTrainModel::layerOfPath(const std::string& path) const
{
    const std::string p = "backbone.layers.";
    if (path.rfind(p, 0) != 0)
        return -1;
    return std::stoi(path.substr(p.size()));
}

LoraCoverage MambaTrainModel::resolveTargets(const std::vector<std::string>& targets) const
{
    if (targets.empty())
        throw Error(ErrorCode::InvalidArgument, "no LoRA target modules given",
                    {}, "name some of in_proj, x_proj, dt_proj, out_proj, embeddings");
    LoraCoverage cov;
    cov.layers = m_cfg.layers;
    const auto paths = modulePaths();
    std::vector<bool> layerHit(size_t(m_cfg.layers), false);
    for (const auto& entry : targets) {
        int hits = 0;
        for (const auto& path : paths) {
            if (!peftMatches(path, entry))
                continue;
            ++hits;
            const bool conv = path.ends_with(".conv1d");
            if (conv || path == "lm_head")
                throw Error(ErrorCode::Unsupported,
                            fmt::format("LoRA on '{}' is not supported (module {})", entry, path), {},
                            "target in_proj, x_proj, dt_proj, out_proj or embeddings");
            if (std::find(cov.modules.begin(), cov.modules.end(), path) == cov.modules.end())
                cov.modules.push_back(path);
            const int l = layerOfPath(path);
            if (l >= 0)
                layerHit[size_t(l)] = true;
        }
        if (hits == 0) {
            std::string known;
            for (const char* n : kLinearNames)
                known += std::string(known.empty() ? "" : ", ") + n;
            throw Error(ErrorCode::InvalidArgument,
                        fmt::format("LoRA target '{}' matches no module of this model (PEFT would silently ignore it)",
                                    entry),
                        {}, fmt::format("Mamba's modules: {}, embeddings, or full paths such as "
                                        "backbone.layers.0.mixer.in_proj", known));
        }
        if (entry == "out_proj" || entry.ends_with(".out_proj") || entry == "conv1d")
            cov.peftRefused.push_back(entry);
    }
    cov.layersCovered = std::count(layerHit.begin(), layerHit.end(), true);
    return cov;
}

void MambaTrainModel::attachLora(const std::vector<std::string>& modules, int64_t r)
{
    const auto& c = m_cfg;
    m_loraR = r;
    for (const auto& path : modules) {
        if (path == "backbone.embeddings") {
            m_embLora.A = m_params.add(path + ".lora_embedding_A", {r, c.V}, false);
            m_embLora.B = m_params.add(path + ".lora_embedding_B", {c.D, r}, false);
            continue;
        }
        const int l = layerOfPath(path);
        ARCHLENS_ASSERT(l >= 0, "module {}", path);
        const std::string name = path.substr(path.rfind('.') + 1);
        const int64_t dims[4][2] = {{c.D, 2 * c.E}, {c.E, c.R + 2 * c.N}, {c.R, c.E}, {c.E, c.D}}; // in, out
        for (int k = 0; k < 4; ++k)
            if (name == kLinearNames[k]) {
                LoraRef& ref = m_layers[size_t(l)].lora[k];
                ref.A = m_params.add(path + ".lora_A.weight", {r, dims[k][0]}, false);
                ref.B = m_params.add(path + ".lora_B.weight", {dims[k][1], r}, false);
            }
    }
    for (int i = 0; i < m_params.count(); ++i)
        m_params.info(i).trainable = m_params.info(i).name.find(".lora_") != std::string::npos;
}

LoraCoverage MambaTrainModel::addLora(const LoraOptions& opts)
{
    if (hasLora())
        throw Error(ErrorCode::InvalidArgument, "the model already has a LoRA adapter");
    if (opts.r <= 0)
        throw Error(ErrorCode::InvalidArgument, fmt::format("LoRA rank must be positive, got {}", opts.r));
    if (!(opts.dropout >= 0 && opts.dropout < 1))
        throw Error(ErrorCode::InvalidArgument, fmt::format("LoRA dropout must be in [0, 1), got {}", opts.dropout));
    LoraCoverage cov = resolveTargets(opts.targets);
    m_lora = opts;
    attachLora(cov.modules, opts.r);
    uint64_t rng = opts.seed * 0x9E3779B97F4A7C15ull + 12345;
    for (int i = 0; i < m_params.count(); ++i) {
        const ParamInfo& p = m_params.info(i);
        float* d = m_params.data(i);
        if (p.name.ends_with(".lora_A.weight")) { // Kaiming-uniform(a=√5) = U(±1/√fan_in)
            const double bound = 1.0 / std::sqrt(double(p.shape[1]));
            for (int64_t j = 0; j < p.numel; ++j)
                d[j] = float((uniform01(rng) * 2 - 1) * bound);
        } else if (p.name.ends_with(".lora_embedding_B")) { // N(0, 1)
            for (int64_t j = 0; j < p.numel; ++j) {
                const double u1 = std::max(uniform01(rng), 1e-300), u2 = uniform01(rng);
                d[j] = float(std::sqrt(-2 * std::log(u1)) * std::cos(6.283185307179586 * u2));
            }
        } // lora_B and lora_embedding_A start at zero: the adapter starts as a no-op
    }
    return cov;
}

void MambaTrainModel::saveAdapter(const fs::path& dir, const std::string& baseModel,
                                  const std::map<std::string, std::string>& metadata) const
{
    if (!hasLora())
        throw Error(ErrorCode::InvalidArgument, "the model has no LoRA adapter to save");
    if (m_merged)
        throw Error(ErrorCode::InvalidArgument, "unmerge the LoRA adapter before saving it");
    std::error_code ec;
    fs::create_directories(dir, ec);
    auto tensors = m_params.tensors([](const ParamInfo& p) { return p.name.find(".lora_") != std::string::npos; });
    for (auto& [name, t] : tensors)
        name = kPeftPrefix + name;
    std::map<std::string, std::string> meta = metadata;
    meta["format"] = "pt";
    writeSafetensors(dir / "adapter_model.safetensors", tensors, meta);
    nlohmann::ordered_json cfg = {
        {"alpha_pattern", nlohmann::json::object()},
        {"auto_mapping", nullptr},
        {"base_model_name_or_path", baseModel},
        {"bias", "none"},
        {"fan_in_fan_out", false},
        {"inference_mode", true},
        {"init_lora_weights", true},
        {"layers_pattern", nullptr},
        {"layers_to_transform", nullptr},
        {"lora_alpha", m_lora.alpha},
        {"lora_dropout", m_lora.dropout},
        {"modules_to_save", nullptr},
        {"peft_type", "LORA"},
        {"r", m_loraR},
        {"rank_pattern", nlohmann::json::object()},
        {"revision", nullptr},
        {"target_modules", m_lora.targets},
        {"task_type", "CAUSAL_LM"},
        {"use_dora", false},
        {"use_rslora", m_lora.rslora},
    };
    writeFileAtomic(dir / "adapter_config.json", cfg.dump(2) + "\n");
}

void MambaTrainModel::loadAdapter(const fs::path& dir)
{
    if (hasLora())
        throw Error(ErrorCode::InvalidArgument, "the model already has a LoRA adapter");
    const fs::path cfgPath = dir / "adapter_config.json";
    nlohmann::json cfg;
    try {
        cfg = nlohmann::json::parse(readText(cfgPath));
    } catch (const nlohmann::json::exception& e) {
        throw Error(ErrorCode::Format, fmt::format("invalid JSON: {}", e.what()), cfgPath.string());
    }
    auto bad = [&](const std::string& what) { return Error(ErrorCode::Unsupported, what, cfgPath.string()); };
    if (cfg.value("peft_type", "") != "LORA")
        throw bad("peft_type is not \"LORA\"");
    if (cfg.value("use_dora", false))
        throw bad("DoRA adapters (use_dora) are not supported");
    if (cfg.value("fan_in_fan_out", false))
        throw bad("fan_in_fan_out adapters are not supported for Mamba");
    if (cfg.contains("bias") && cfg["bias"].is_string() && cfg["bias"] != "none")
        throw bad("adapters that train biases (bias != \"none\") are not supported");
    for (const char* k : {"rank_pattern", "alpha_pattern"})
        if (cfg.contains(k) && cfg[k].is_object() && !cfg[k].empty())
            throw bad(fmt::format("'{}' is not supported", k));
    if (!cfg.contains("r") || !cfg["r"].is_number_integer())
        throw Error(ErrorCode::Format, "missing integer key 'r'", cfgPath.string());
    LoraOptions o;
    o.r = cfg["r"].get<int64_t>();
    o.alpha = cfg.value("lora_alpha", double(o.r));
    o.rslora = cfg.value("use_rslora", false);
    if (cfg.contains("lora_dropout") && cfg["lora_dropout"].is_number())
        o.dropout = cfg["lora_dropout"].get<double>();
    if (!(o.dropout >= 0 && o.dropout < 1))
        throw Error(ErrorCode::Format, fmt::format("lora_dropout {} is outside [0, 1)", o.dropout), cfgPath.string());
    if (cfg.contains("target_modules") && cfg["target_modules"].is_array())
        for (const auto& t : cfg["target_modules"])
            o.targets.push_back(t.get<std::string>());

    const fs::path stPath = dir / "adapter_model.safetensors";
    if (!fs::exists(stPath))
        throw Error(ErrorCode::Io, "adapter_model.safetensors not found", dir.string(),
                    fs::exists(dir / "adapter_model.bin") ? "convert adapter_model.bin to safetensors" : "");
    const auto file = SafetensorsFile::open(stPath);
    // Modules the file has adapters for, from its key names.
    std::vector<std::string> modules;
    std::map<std::string, std::string> keyOf; // our parameter name -> file key
    for (const auto& [key, info] : file->tensors()) {
        if (key.rfind(kPeftPrefix, 0) != 0)
            throw Error(ErrorCode::Format, fmt::format("tensor '{}' does not start with '{}'", key, kPeftPrefix),
                        stPath.string());
        std::string name = key.substr(kPeftPrefix.size());
        // PEFT strips the adapter name; accept files that kept ".default"
        for (const char* suffix : {".lora_A.default.weight", ".lora_B.default.weight"})
            if (name.ends_with(suffix))
                name = name.substr(0, name.size() - std::string(suffix).size()) + std::string(suffix).substr(0, 7)
                       + ".weight";
        std::string module;
        for (const char* suffix : {".lora_A.weight", ".lora_B.weight", ".lora_embedding_A", ".lora_embedding_B"})
            if (name.ends_with(suffix))
                module = name.substr(0, name.size() - std::string(suffix).size());
        if (module.empty())
            throw Error(ErrorCode::Unsupported, fmt::format("tensor '{}' is not a LoRA A/B matrix", key),
                        stPath.string(), "only plain LoRA adapters (no DoRA, biases or modules_to_save) load");
        const auto paths = modulePaths();
        if (std::find(paths.begin(), paths.end(), module) == paths.end())
            throw Error(ErrorCode::Shape, fmt::format("tensor '{}' names module '{}', which this model lacks", key, module),
                        stPath.string());
        if (std::find(modules.begin(), modules.end(), module) == modules.end())
            modules.push_back(module);
        keyOf[name] = key;
    }
    for (const auto& m : modules)
        if (m.ends_with(".conv1d") || m == "lm_head")
            throw Error(ErrorCode::Unsupported, fmt::format("LoRA on '{}' is not supported", m), stPath.string());
    if (modules.empty())
        throw Error(ErrorCode::Format, "the adapter holds no tensors", stPath.string());
    m_lora = o;
    if (m_lora.targets.empty())
        m_lora.targets = modules;
    attachLora(modules, o.r);
    for (int i = 0; i < m_params.count(); ++i) {
        const ParamInfo& p = m_params.info(i);
        if (p.name.find(".lora_") == std::string::npos)
            continue;
        auto it = keyOf.find(p.name);
        if (it == keyOf.end())
            throw Error(ErrorCode::Format, fmt::format("missing tensor '{}{}'", kPeftPrefix, p.name), stPath.string());
        const SafetensorInfo& info = file->info(it->second);
        if (info.shape != p.shape)
            throw Error(ErrorCode::Shape,
                        fmt::format("tensor '{}' has shape {}, expected {} (r = {})", it->second,
                                    shapeToString(info.shape), shapeToString(p.shape), o.r),
                        stPath.string());
        const Tensor t = file->tensor(it->second).toF32();
        std::copy(t.f32(), t.f32() + t.numel(), m_params.data(i));
    }
}

void MambaTrainModel::mergeLora()
{
    if (!hasLora() || m_merged)
        return;
    const float s = float(loraScaling());
    const int64_t r = m_loraR;
    for (auto& L : m_layers)
        for (int k = 0; k < 4; ++k) {
            const LoraRef& ref = L.lora[k];
            if (ref.A < 0)
                continue;
            const int w = k == 0 ? L.inProj : k == 1 ? L.xProj : k == 2 ? L.dtW : L.outProj;
            const int64_t out = m_params.info(w).shape[0], in = m_params.info(w).shape[1];
            MapM<float> Wm(m_params.data(w), out, in, Eigen::OuterStride<>(in));
            MapC<float> Bm(m_params.data(ref.B), out, r, Eigen::OuterStride<>(r));
            MapC<float> Am(m_params.data(ref.A), r, in, Eigen::OuterStride<>(in));
            Wm.noalias() += s * (Bm * Am);
        }
    if (m_embLora.A >= 0) {
        if (m_cfg.tied) {
            // PEFT's unmerged model keeps the tied head on the base embedding; untie so the
            // merged model computes the same function.
            m_cfg.tied = false;
            m_untiedForMerge = true;
            m_head = m_params.find("lm_head.weight");
            if (m_head < 0) {
                m_head = m_params.add("lm_head.weight", {m_cfg.V, m_cfg.D}, true);
                m_params.info(m_head).trainable = false;
            }
            std::copy(m_params.data(m_emb), m_params.data(m_emb) + m_cfg.V * m_cfg.D, m_params.data(m_head));
        }
        MapM<float> Em(m_params.data(m_emb), m_cfg.V, m_cfg.D, Eigen::OuterStride<>(m_cfg.D));
        MapC<float> Bm(m_params.data(m_embLora.B), m_cfg.D, r, Eigen::OuterStride<>(r));
        MapC<float> Am(m_params.data(m_embLora.A), r, m_cfg.V, Eigen::OuterStride<>(m_cfg.V));
        Em.noalias() += s * (Bm * Am).transpose();
    }
    m_merged = true;
}

void MambaTrainModel::unmergeLora()
{
    if (!m_merged)
        return;
    const float s = float(loraScaling());
    const int64_t r = m_loraR;
    for (auto& L : m_layers)
        for (int k = 0; k < 4; ++k) {
            const LoraRef& ref = L.lora[k];
            if (ref.A < 0)
                continue;
            const int w = k == 0 ? L.inProj : k == 1 ? L.xProj : k == 2 ? L.dtW : L.outProj;
            const int64_t out = m_params.info(w).shape[0], in = m_params.info(w).shape[1];
            MapM<float> Wm(m_params.data(w), out, in, Eigen::OuterStride<>(in));
            MapC<float> Bm(m_params.data(ref.B), out, r, Eigen::OuterStride<>(r));
            MapC<float> Am(m_params.data(ref.A), r, in, Eigen::OuterStride<>(in));
            Wm.noalias() -= s * (Bm * Am);
        }
    if (m_embLora.A >= 0) {
        if (m_untiedForMerge) {
            // the head holds the exact base embedding
            std::copy(m_params.data(m_head), m_params.data(m_head) + m_cfg.V * m_cfg.D, m_params.data(m_emb));
            m_cfg.tied = true;
            m_untiedForMerge = false;
            m_head = -1; // the parameter stays in the store, unused
        } else {
            MapM<float> Em(m_params.data(m_emb), m_cfg.V, m_cfg.D, Eigen::OuterStride<>(m_cfg.D));
            MapC<float> Bm(m_params.data(m_embLora.B), m_cfg.D, r, Eigen::OuterStride<>(r));
            MapC<float> Am(m_params.data(m_embLora.A), r, m_cfg.V, Eigen::OuterStride<>(m_cfg.V));
            Em.noalias() -= s * (Bm * Am).transpose();
        }
    }
    m_merged = false;
}

} // namespace archlens::train
