#include "backends/plugin_loader.h"

#include <dlfcn.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>

#include <fmt/format.h>

#include "backends/plugin_abi.h"
#include "base/log.h"

namespace archlens {

namespace fs = std::filesystem;

namespace {

fs::path executableDir()
{
    char buf[4096];
    const ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
    if (n <= 0)
        return {};
    buf[n] = '\0';
    return fs::path(buf).parent_path();
}

void pluginLog(int level, const char* message)
{
    logMessage(LogLevel(std::clamp(level, int(LogLevel::Debug), int(LogLevel::Error))), message ? message : "");
}

// A loaded library's entry point, or the reason it is not a usable plugin. Loaded once per
// path and never unloaded (driver libraries do not like being unloaded).
struct Library {
    ArchLensPluginCreateFn create = nullptr;
    std::string error;
};

const Library& openLibrary(const fs::path& path)
{
    static std::mutex mutex;
    static std::map<fs::path, Library> libraries;
    std::lock_guard lock(mutex);
    if (auto it = libraries.find(path); it != libraries.end())
        return it->second;
    Library& lib = libraries[path];
    void* handle = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!handle) {
        const char* err = ::dlerror();
        lib.error
            = fmt::format("the CUDA plugin {} could not be loaded: {}", path.string(), err ? err : "unknown error");
        return lib;
    }
    auto abi = reinterpret_cast<ArchLensPluginAbiFn>(::dlsym(handle, "archlens_backend_plugin_abi"));
    auto hash = reinterpret_cast<ArchLensPluginAbiHashFn>(::dlsym(handle, "archlens_backend_plugin_abi_hash"));
    auto create = reinterpret_cast<ArchLensPluginCreateFn>(::dlsym(handle, "archlens_backend_plugin_create"));
    if (!abi || !hash || !create) {
        lib.error = fmt::format("{} is not an ArchLens backend plugin (it lacks the archlens_backend_plugin_* "
                                "entry points)",
            path.string());
        return lib;
    }
    const int pluginAbi = abi();
    const char* pluginHash = hash();
    if (pluginAbi != ARCHLENS_BACKEND_PLUGIN_ABI || !pluginHash
        || std::strcmp(pluginHash, ARCHLENS_BACKEND_ABI_HASH) != 0) {
        lib.error = fmt::format("the CUDA plugin {} was built for backend ABI {} ({:.12}), this program has ABI {} "
                                "({:.12}): rebuild the plugin together with this program",
            path.string(), pluginAbi, pluginHash ? pluginHash : "?", ARCHLENS_BACKEND_PLUGIN_ABI,
            ARCHLENS_BACKEND_ABI_HASH);
        return lib;
    }
    lib.create = create;
    return lib;
}

} // namespace

std::vector<fs::path> cudaPluginSearchPaths()
{
    if (const char* env = std::getenv("ARCHLENS_CUDA_PLUGIN"); env && *env)
        return { fs::path(env) };
    const fs::path dir = executableDir();
    if (dir.empty())
        return {};
    return { dir / kCudaPluginFile, (dir / ".." / "lib" / "archlens" / kCudaPluginFile).lexically_normal() };
}

PluginLoad loadCudaPlugin(int device)
{
    PluginLoad out;
    out.status = -1;
    const auto paths = cudaPluginSearchPaths();
    std::error_code ec;
    for (const auto& p : paths)
        if (fs::exists(p, ec)) {
            out.path = p;
            break;
        }
    if (out.path.empty()) {
        std::string looked;
        for (const auto& p : paths)
            looked += (looked.empty() ? "" : ", ") + p.string();
        out.reason = std::getenv("ARCHLENS_CUDA_PLUGIN") && *std::getenv("ARCHLENS_CUDA_PLUGIN")
            ? fmt::format("no CUDA plugin at {} (ARCHLENS_CUDA_PLUGIN)", looked)
            : fmt::format("no CUDA plugin found (looked for {})", looked.empty() ? kCudaPluginFile : looked);
        return out;
    }
    const Library& lib = openLibrary(out.path);
    if (!lib.create) {
        out.reason = lib.error;
        return out;
    }
    ArchLensPluginRequest request;
    request.device = device;
    request.log = pluginLog;
    ArchLensPluginResult result;
    lib.create(&request, &result);
    result.reason[sizeof result.reason - 1] = '\0';
    out.status = result.status;
    if (result.status == ARCHLENS_PLUGIN_OK && result.backend) {
        out.backend.reset(result.backend);
        return out;
    }
    delete result.backend; // a plugin that reports failure should not hand one over; be safe
    out.reason = result.reason[0]
        ? std::string(result.reason)
        : fmt::format("the CUDA plugin {} failed without saying why (status {})", out.path.string(), result.status);
    return out;
}

} // namespace archlens
