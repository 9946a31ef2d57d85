#include "backends/backend_factory.h"

#include "backends/cpu_fast.h"
#include "backends/plugin_loader.h"

namespace archlens {

std::vector<std::string> backendNames()
{
    return { "auto", "cpu", "cpu-reference", "cuda" };
}

BackendChoice createBackend(const std::string& kind, const BackendOptions& options)
{
    const CpuBackendOptions cpu { options.threads, options.interactive, options.cpuIsa };
    if (kind == "cpu")
        return { makeCpuFastBackend(cpu), {} };
    if (kind == "cpu-reference")
        return { makeCpuReferenceBackend(), {} };
    // The CUDA backend is a run-time plugin (cuda/, plugin_loader.h): "auto" uses it when it
    // loads and reports a usable device, and otherwise says why it fell back.
    if (kind == "auto") {
        PluginLoad cuda = loadCudaPlugin();
        if (cuda.backend)
            return { cuda.backend, {} };
        return { makeCpuFastBackend(cpu), "using the CPU backend: " + cuda.reason };
    }
    if (kind == "cuda") {
        PluginLoad cuda = loadCudaPlugin();
        if (cuda.backend)
            return { cuda.backend, {} };
        throw Error(ErrorCode::Backend, "the CUDA backend cannot run: " + cuda.reason, "--backend cuda",
            "use --backend cpu or auto");
    }
    throw makeError(ErrorCode::InvalidArgument,
        "--backend: unknown backend '{}' (expected auto, cpu, cpu-reference or cuda)", kind);
}

} // namespace archlens
