// archlens-cli info --model DIR: architecture, layers, dims, parameters, dtypes, memory.
#include <algorithm>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "backends/backend_factory.h"
#include "common.h"
#include "formats/hf_cache.h"
#include "models/model.h"

namespace archlens::cli {

namespace {

// "mamba attention mamba", or "attention (all 32 layers)" when every layer is the same.
std::string perLayer(const std::vector<std::string>& kinds)
{
    if (kinds.size() > 1 && std::all_of(kinds.begin(), kinds.end(), [&](const auto& k) { return k == kinds[0]; }))
        return fmt::format("{} (all {} layers)", kinds[0], kinds.size());
    return fmt::format("{}", fmt::join(kinds, " "));
}

} // namespace

void addInfoCommand(CLI::App& app)
{
    auto* cmd = app.add_subcommand("info", "Show a model's architecture, dimensions, parameters and memory needs");
    struct Opts {
        std::string model, backend = "auto";
    };
    auto o = std::make_shared<Opts>();
    cmd->add_option("--model", o->model, "Model folder (config.json + *.safetensors), or org/name in the HF cache")
        ->required();
    cmd->add_option("--backend", o->backend, "Device whose memory the model is checked against: auto | cpu | cuda")
        ->capture_default_str();
    cmd->callback([o] {
        const auto dir = resolveModelPath(o->model);
        const ModelInfo info = describeModel(dir); // headers only: no weight is read
        const BackendChoice device = createBackend(o->backend);
        const std::string revision = cacheRevisionOf(dir);
        fmt::print("model             {}\n", dir.string());
        if (const std::string label = modelCardLabel(dir); !label.empty())
            fmt::print("label             {} (random weights: its predictions are noise)\n", label);
        if (!revision.empty())
            fmt::print("revision          {}\n", revision);
        fmt::print("architecture      {} (model_type {})\n", info.architecture, info.modelType);
        fmt::print("layers            {}\n", info.layers);
        fmt::print("d_model           {}\n", info.dModel);
        fmt::print("vocab rows        {}\n", info.vocabRows);
        for (const auto& [k, v] : info.facts)
            fmt::print("{:<17} {}\n", k, v);
        fmt::print("mixers            {}\n", perLayer(info.layerMixer));
        if (std::any_of(info.layerFfn.begin(), info.layerFfn.end(), [](const auto& f) { return f != "none"; }))
            fmt::print("feed-forward      {}\n", perLayer(info.layerFfn));
        fmt::print("parameters        {} ({}){}\n", humanCount(info.parameters), info.parameters,
                   info.tiedEmbeddings ? ", lm_head tied to the embedding" : "");
        fmt::print("active/token      {} ({}){}\n", humanCount(info.activeParameters), info.activeParameters,
                   info.experts > 0 ? fmt::format(": {} of {} routed experts per token", info.expertsPerToken,
                                                  info.experts)
                                    : std::string());
        fmt::print("weights           {} stored as {}\n", humanBytes(info.storedBytes), info.weightDType);
        fmt::print("compute           F32 on the CPU: {} of weights in memory\n", humanBytes(info.loadedBytes));
        if (info.kvCacheBytesPerToken)
            fmt::print("KV cache          {} per token ({} attention layers, F32)\n",
                       humanBytes(info.kvCacheBytesPerToken),
                       std::count(info.layerMixer.begin(), info.layerMixer.end(), "attention"));
        if (info.stateBytesPerSequence)
            fmt::print("SSM state         {} per sequence (conv + SSM, constant in length)\n",
                       humanBytes(info.stateBytesPerSequence));
        const uint64_t need = memoryNeeded(info);
        fmt::print("memory needed     about {} (weights + state{})\n", humanBytes(need),
                   info.kvCacheBytesPerToken ? ", plus the KV cache per token" : "");
        const auto available = device.backend->memoryAvailable();
        if (available)
            fmt::print("fits {:<12} {}: needs {}, {} available\n", device.backend->name(),
                       need <= *available ? "yes" : "no", humanBytes(need), humanBytes(*available));
        else
            fmt::print("fits {:<12} unknown (the device does not report its memory)\n", device.backend->name());
    });
}

} // namespace archlens::cli
