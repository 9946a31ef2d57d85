#include "models/registry.h"

#include <algorithm>
#include <atomic>
#include <filesystem>

#include <fmt/ranges.h>

#include "formats/safetensors.h"

namespace archlens {

namespace fs = std::filesystem;

const std::vector<ModelFactory>& modelFactories()
{
    static const std::vector<ModelFactory> factories = {mambaFactory(),    llamaFactory(), gptNeoxFactory(),
                                                        mixtralFactory(),  olmoeFactory(), qwen2MoeFactory(),
                                                        jambaFactory()};
    return factories;
}

// Architectures students will meet that we know of but do not run (yet).
static std::string knownUnsupportedHint(const std::string& arch, const std::string& type)
{
    if (arch.find("Mamba2") != std::string::npos || type == "mamba2")
        return "Mamba-2 is not supported yet; Mamba-1 checkpoints (MambaForCausalLM) are";
    return {};
}

const ModelFactory& findModelFactory(const HfConfig& config)
{
    const auto archs = config.architectures();
    const std::string type = config.modelType();
    if (config.has("ssm_cfg.layer") && config.getString("ssm_cfg.layer", "") == "Mamba2")
        throw Error(ErrorCode::Unsupported, "unsupported architecture: Mamba-2 (ssm_cfg.layer = \"Mamba2\")",
                    config.path().string(), knownUnsupportedHint("Mamba2", "mamba2"));
    for (const auto& f : modelFactories()) {
        for (const auto& a : archs)
            if (std::find(f.architectures.begin(), f.architectures.end(), a) != f.architectures.end())
                return f;
        if (!type.empty() && std::find(f.modelTypes.begin(), f.modelTypes.end(), type) != f.modelTypes.end())
            return f;
    }
    if (archs.empty() && type.empty())
        for (const auto& f : modelFactories())
            if (f.recognise && f.recognise(config))
                return f;
    std::vector<std::string> supported;
    for (const auto& f : modelFactories())
        supported.insert(supported.end(), f.architectures.begin(), f.architectures.end());
    const std::string found = archs.empty() ? (type.empty() ? std::string("no 'architectures' or 'model_type' key")
                                                            : fmt::format("model_type '{}'", type))
                                            : fmt::format("architectures {}", fmt::join(archs, ", "));
    std::string hint = knownUnsupportedHint(archs.empty() ? "" : archs.front(), type);
    if (hint.empty())
        hint = fmt::format("supported: {}", fmt::join(supported, ", "));
    throw Error(ErrorCode::Unsupported, fmt::format("unsupported architecture ({})", found), config.path().string(),
                hint);
}

static HfConfig loadConfigChecked(const fs::path& dir)
{
    std::error_code ec;
    if (!fs::is_directory(dir, ec))
        throw Error(ErrorCode::Io, "not a model folder (expected a directory with config.json and *.safetensors)",
                    dir.string());
    return HfConfig::load(dir);
}

ModelInfo describeModel(const fs::path& dir)
{
    HfConfig config = loadConfigChecked(dir);
    const ModelFactory& factory = findModelFactory(config);
    return factory.describe(config, Checkpoint::open(dir));
}

namespace {
std::atomic<uint64_t> g_modelsLoaded{0};
}

uint64_t modelsLoaded() { return g_modelsLoaded.load(); }

std::unique_ptr<Model> loadModel(const fs::path& dir, std::shared_ptr<Backend> backend)
{
    HfConfig config = loadConfigChecked(dir);
    const ModelFactory& factory = findModelFactory(config);
    Checkpoint ckpt = Checkpoint::open(dir);
    // Headers first: a model the device cannot hold is refused before anything is allocated.
    checkFitsMemory(factory.describe(config, ckpt), *backend);
    auto model = factory.create(config, ckpt, std::move(backend));
    ++g_modelsLoaded;
    return model;
}

uint64_t memoryNeeded(const ModelInfo& info)
{
    return info.loadedBytes + info.stateBytesPerSequence;
}

void checkFitsMemory(const ModelInfo& info, const Backend& backend)
{
    const auto available = backend.memoryAvailable();
    const uint64_t need = memoryNeeded(info);
    if (!available || need <= *available)
        return;
    const double gib = 1024.0 * 1024.0 * 1024.0;
    throw Error(ErrorCode::Backend,
                fmt::format("the model needs about {:.2f} GiB ({} bytes: {} parameters widened to F32, plus state) but "
                            "the {} backend has {:.2f} GiB ({} bytes) available",
                            double(need) / gib, need, info.parameters, backend.name(), double(*available) / gib,
                            *available),
                info.path.string(),
                backend.name().rfind("cpu", 0) == 0 ? "available = MemAvailable in /proc/meminfo; close other programs or use a "
                                          "smaller checkpoint"
                                        : "use a smaller checkpoint");
}

} // namespace archlens
