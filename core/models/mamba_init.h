// Writes a randomly initialised Mamba-1 checkpoint in the exact Hugging Face layout
// (config.json + model.safetensors), initialised the way Mamba is before training:
// A_log = log(1..N), dt bias = softplus⁻¹(dt) with dt log-uniform in [dt_min, dt_max],
// linear weights ~ U(±1/sqrt(fan_in)), norms at one. Deterministic for a seed on every
// platform (own generator, no std distributions). The training issue starts from this.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "tensor/tensor.h"

namespace archlens {

struct MambaInitOptions {
    int64_t dModel = 128;
    int64_t layers = 4;
    int64_t dState = 16;
    int64_t expand = 2;
    int64_t dConv = 4;
    int64_t vocabSize = 1024;
    uint64_t seed = 1;
    double dtMin = 1e-3, dtMax = 1e-1;
};

struct RandomCheckpoint {
    nlohmann::ordered_json config; // what config.json holds
    std::vector<std::pair<std::string, Tensor>> tensors; // F32, Hugging Face names
};

// The checkpoint in memory (synthetic models for benchmarks use it without any file).
RandomCheckpoint makeRandomMamba(const MambaInitOptions& opts);
// Writes config.json and model.safetensors into dir (created if needed); atomic per file.
void writeRandomMamba(const std::filesystem::path& dir, const MambaInitOptions& opts);

} // namespace archlens
