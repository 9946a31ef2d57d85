// Synthetic models: random weights with the exact shapes of a published checkpoint, built
// in memory (no files) and loaded through the model registry exactly as a checkpoint
// folder would be. For benchmarks of models nobody has to download. One table: an
// architecture adds rows for its sizes (name, the checkpoint it mirrors, the bytes it needs,
// how to build it); only architectures the core can run belong in it.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "models/mamba_init.h"
#include "models/model.h"

namespace archlens {

struct SyntheticModelSpec {
    std::string name; // "mamba-130m"
    std::string mirrors; // "state-spaces/mamba-130m-hf"
    std::string architecture; // "MambaForCausalLM"
    int64_t parameters = 0; // tied weights once
    uint64_t hostBytes = 0; // host memory once built and loaded (F32 weights and derived tensors)
    std::function<RandomCheckpoint(uint64_t seed)> build;
};

const std::vector<SyntheticModelSpec>& syntheticModels();
// Error(InvalidArgument) listing the known names.
const SyntheticModelSpec& findSyntheticModel(const std::string& name);

// Builds the named model's weights and loads them on `backend`. Refuses with
// Error(InvalidArgument), giving the numbers, when the weights would not fit in
// `availableBytes` (0: do not check).
std::unique_ptr<Model> makeSyntheticModel(
    const std::string& name, std::shared_ptr<Backend> backend, uint64_t seed, uint64_t availableBytes);

} // namespace archlens
