// Model registry keyed by config.json's `architectures` / `model_type`. Each
// architecture file registers a recogniser and a factory; an unknown or not yet supported
// architecture (e.g. Mamba-2) is a clear Error(Unsupported).
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "formats/hf_config.h"
#include "models/model.h"

namespace archlens {

class Checkpoint;

struct ModelFactory {
    std::string name; // "mamba"
    std::vector<std::string> architectures; // "MambaForCausalLM"
    std::vector<std::string> modelTypes;    // "mamba"
    // For layouts without architectures/model_type (the original state-spaces Mamba).
    std::function<bool(const HfConfig&)> recognise;
    // Facts from config + checkpoint headers only (no weights read): what `info` shows.
    std::function<ModelInfo(const HfConfig&, const Checkpoint&)> describe;
    std::function<std::unique_ptr<Model>(const HfConfig&, const Checkpoint&, std::shared_ptr<Backend>)> create;
};

const std::vector<ModelFactory>& modelFactories();
// Finds the factory for a config or throws Error(Unsupported) naming what it found.
const ModelFactory& findModelFactory(const HfConfig& config);

// How many models loadModel() has built in this process (tests check that a window keeps one
// model per session, not a second copy for a side panel).
uint64_t modelsLoaded();

// Defined by each architecture file.
ModelFactory mambaFactory();
ModelFactory llamaFactory();
ModelFactory gptNeoxFactory();
ModelFactory mixtralFactory();
ModelFactory olmoeFactory();
ModelFactory qwen2MoeFactory();
ModelFactory jambaFactory();


} // namespace archlens
