// Shared by the tests in tests/core: the bundled demo Mamba, random token ids and
// /proc/self/status readings.
#pragma once

#include <cstdint>
#include <fstream>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "backends/backend.h"
#include "models/model.h"

namespace archlens::test {

inline std::filesystem::path demoModelDir()
{
    return std::filesystem::path(ARCHLENS_SOURCE_DIR) / "resources/models/mamba-text";
}

// The model is loaded once per test binary (it is immutable; states are per session).
inline Model& demoModel()
{
    static std::unique_ptr<Model> model = loadModel(demoModelDir(), std::shared_ptr<Backend>(makeCpuReferenceBackend()));
    return *model;
}

inline std::vector<int32_t> randomIds(int64_t n, int64_t vocab, uint64_t seed)
{
    std::mt19937_64 rng(seed);
    std::uniform_int_distribution<int32_t> dist(0, int32_t(vocab - 1));
    std::vector<int32_t> ids(static_cast<size_t>(n));
    for (auto& id : ids)
        id = dist(rng);
    return ids;
}

// A "VmHWM:" style line of /proc/self/status in bytes (0 when absent).
inline uint64_t procStatusBytes(const std::string& key)
{
    std::ifstream in("/proc/self/status");
    std::string line;
    while (std::getline(in, line))
        if (line.rfind(key + ":", 0) == 0)
            return std::stoull(line.substr(key.size() + 1)) * 1024; // "  1234 kB"
    return 0;
}

// The ssm_state tensor of `layer` in a model state.
inline Tensor ssmState(const ModelState& s, int layer)
{
    const std::string name = "layers." + std::to_string(layer) + ".ssm_state";
    for (const auto& [n, t] : s.tensors())
        if (n == name)
            return t;
    return {};
}

} // namespace archlens::test
