#include "models/synthetic.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "formats/hf_config.h"
#include "formats/safetensors.h"
#include "models/registry.h"

namespace archlens {

namespace {

// Headroom beyond the weights for activations, scratch and the process itself.
constexpr uint64_t kHeadroomBytes = uint64_t(512) << 20;

// The state-spaces Mamba-1 family (transformers' *-hf configs): vocab 50280 (50277 padded
// to a multiple of 8), d_state 16, expand 2, d_conv 4, dt_rank ⌈d_model/16⌉, tied head,
// conv bias, no in/out projection bias.
SyntheticModelSpec mamba(const char* name, const char* mirrors, int64_t dModel, int64_t layers)
{
    MambaInitOptions o;
    o.dModel = dModel;
    o.layers = layers;
    o.dState = 16;
    o.expand = 2;
    o.dConv = 4;
    o.vocabSize = 50280;
    const int64_t D = dModel, E = 2 * D, N = 16, K = 4, R = (D + 15) / 16, V = o.vocabSize;
    const int64_t perLayer = D + 2 * E * D + E * K + E + E * (R + 2 * N) + R * E + E + E * N + E + D * E;
    SyntheticModelSpec s;
    s.name = name;
    s.mirrors = mirrors;
    s.architecture = "MambaForCausalLM";
    s.parameters = V * D + layers * perLayer + D;
    s.hostBytes = uint64_t(s.parameters + layers * E * N) * sizeof(float); // + A = −exp(A_log)
    s.build = [o](uint64_t seed) {
        MambaInitOptions withSeed = o;
        withSeed.seed = seed;
        return makeRandomMamba(withSeed);
    };
    return s;
}

} // namespace

const std::vector<SyntheticModelSpec>& syntheticModels()
{
    static const std::vector<SyntheticModelSpec> table = {
        mamba("mamba-130m", "state-spaces/mamba-130m-hf", 768, 24),
        mamba("mamba-370m", "state-spaces/mamba-370m-hf", 1024, 48),
        mamba("mamba-790m", "state-spaces/mamba-790m-hf", 1536, 48),
        mamba("mamba-1.4b", "state-spaces/mamba-1.4b-hf", 2048, 48),
        mamba("mamba-2.8b", "state-spaces/mamba-2.8b-hf", 2560, 64),
    };
    return table;
}

const SyntheticModelSpec& findSyntheticModel(const std::string& name)
{
    std::vector<std::string> names;
    for (const auto& s : syntheticModels()) {
        if (s.name == name)
            return s;
        names.push_back(s.name);
    }
    throw Error(ErrorCode::InvalidArgument, fmt::format("no synthetic model '{}'", name), "--synthetic",
        fmt::format("known: {} (only architectures this build can run)", fmt::join(names, ", ")));
}

std::unique_ptr<Model> makeSyntheticModel(
    const std::string& name, std::shared_ptr<Backend> backend, uint64_t seed, uint64_t availableBytes)
{
    const SyntheticModelSpec& spec = findSyntheticModel(name);
    const uint64_t needed = spec.hostBytes + kHeadroomBytes;
    if (availableBytes != 0 && needed > availableBytes)
        throw Error(ErrorCode::InvalidArgument,
            fmt::format("{} ({:.2f}B parameters) needs about {:.1f} GiB of host memory as F32 weights "
                        "(+{:.1f} GiB headroom), but only {:.1f} GiB is available",
                spec.name, double(spec.parameters) / 1e9, double(spec.hostBytes) / double(1 << 30),
                double(kHeadroomBytes) / double(1 << 30), double(availableBytes) / double(1 << 30)),
            "--synthetic", "pick a smaller synthetic model");
    RandomCheckpoint ckpt = spec.build(seed);
    const std::filesystem::path label = "<synthetic " + spec.name + ">";
    const HfConfig config = HfConfig::fromJson(nlohmann::json(ckpt.config), label / "config.json");
    const Checkpoint checkpoint = Checkpoint::fromTensors(label, ckpt.tensors);
    ckpt.tensors.clear();
    return findModelFactory(config).create(config, checkpoint, std::move(backend));
}

} // namespace archlens
