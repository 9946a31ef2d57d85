// Finds and loads the CUDA backend plugin (see plugin_abi.h). Looks at $ARCHLENS_CUDA_PLUGIN
// when set (a path to the library), else next to the executable, then in ../lib/archlens/
// relative to it. Never throws: a failure comes back as a one-line reason that says where it
// looked or what the plugin reported, for "auto" to show in its fallback notice and for an
// explicit "cuda" to fail with.
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "backends/backend.h"

namespace archlens {

struct PluginLoad {
    std::shared_ptr<Backend> backend; // null on failure
    int status = 0; // ArchLensPluginStatus; -1: no plugin found or loadable
    std::string reason; // why not, when backend is null
    std::filesystem::path path; // the plugin file used ('' when none was found)
};

constexpr const char* kCudaPluginFile = "libarchlens_cuda.so";

std::vector<std::filesystem::path> cudaPluginSearchPaths();
PluginLoad loadCudaPlugin(int device = 0);

} // namespace archlens
