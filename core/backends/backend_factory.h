// Picks a backend by name. "auto" prefers CUDA and falls back to the CPU with a notice
// saying why; an explicit "cuda" that cannot run is an Error(Backend) naming the cause.
#pragma once

#include <memory>
#include <string>

#include "backends/backend.h"

namespace archlens {

struct BackendChoice {
    std::shared_ptr<Backend> backend;
    std::string notice; // non-empty when "auto" fell back, saying why
};

BackendChoice createBackend(const std::string& kind); // "auto" | "cpu" | "cuda"

} // namespace archlens
