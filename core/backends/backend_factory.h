// Picks a backend by name. "auto" prefers CUDA and falls back to the CPU with a notice
// saying why; an explicit "cuda" that cannot run is an Error(Backend) naming the cause.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "backends/backend.h"

namespace archlens {

struct BackendChoice {
    std::shared_ptr<Backend> backend;
    std::string notice; // non-empty when "auto" fell back, saying why
};

struct BackendOptions {
    int threads = 0; // CPU threads; 0: every CPU (one fewer when interactive)
    bool interactive = false; // a GUI runs alongside: the CPU backend leaves it a core
    std::string cpuIsa; // "" / "auto", or "scalar", "avx2", "avx512" (tests, benchmarks)
};

// "auto" | "cpu" (the fast CPU backend) | "cpu-reference" (the plain-loop oracle) | "cuda"
BackendChoice createBackend(const std::string& kind, const BackendOptions& options = {});
std::vector<std::string> backendNames();

} // namespace archlens
