// archlens-cli info --model DIR: architecture, layers, dims, parameters, dtypes, memory.
#include <fmt/format.h>
#include <fmt/ranges.h>

#include "common.h"
#include "formats/hf_cache.h"
#include "models/model.h"

namespace archlens::cli {

void addInfoCommand(CLI::App& app)
{
    auto* cmd = app.add_subcommand("info", "Show a model's architecture, dimensions, parameters and memory needs");
    auto model = std::make_shared<std::string>();
    cmd->add_option("--model", *model, "Model folder (config.json + *.safetensors), or org/name in the HF cache")
        ->required();
    cmd->callback([model] {
        const auto dir = resolveModelPath(*model);
        const ModelInfo info = describeModel(dir);
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
        fmt::print("mixers            {}\n", fmt::join(info.layerMixer, " "));
        fmt::print("parameters        {} ({}){}\n", humanCount(info.parameters), info.parameters,
                   info.tiedEmbeddings ? ", lm_head tied to the embedding" : "");
        if (info.activeParameters != info.parameters)
            fmt::print("active/token      {} ({})\n", humanCount(info.activeParameters), info.activeParameters);
        fmt::print("weights           {} stored as {}\n", humanBytes(info.storedBytes), info.weightDType);
        fmt::print("compute           F32 on the CPU: {} of weights in memory\n", humanBytes(info.loadedBytes));
        if (info.stateBytesPerSequence)
            fmt::print("state             {} per sequence (conv + SSM, constant in length)\n",
                       humanBytes(info.stateBytesPerSequence));
        fmt::print("memory needed     about {} (weights + state)\n",
                   humanBytes(info.loadedBytes + info.stateBytesPerSequence));
    });
}

} // namespace archlens::cli
