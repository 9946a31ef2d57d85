#include "backends/backend_factory.h"

#include "backends/cpu_fast.h"

namespace archlens {

// The CUDA backend arrives as a run-time plugin (see cuda/); until a build ships one,
// this explains the fallback instead of failing obscurely.
static const char* kNoCudaReason = "this build has no CUDA backend plugin";

std::vector<std::string> backendNames() { return {"auto", "cpu", "cpu-reference", "cuda"}; }

BackendChoice createBackend(const std::string& kind, const BackendOptions& options)
{
    const CpuBackendOptions cpu{options.threads, options.interactive, options.cpuIsa};
    if (kind == "cpu")
        return {makeCpuFastBackend(cpu), {}};
    if (kind == "cpu-reference")
        return {makeCpuReferenceBackend(), {}};
    if (kind == "auto")
        return {makeCpuFastBackend(cpu), std::string("using the CPU backend: ") + kNoCudaReason};
    if (kind == "cuda")
        throw Error(ErrorCode::Backend, std::string("the CUDA backend cannot run: ") + kNoCudaReason, "--backend cuda",
                    "use --backend cpu or auto");
    throw makeError(ErrorCode::InvalidArgument,
                    "--backend: unknown backend '{}' (expected auto, cpu, cpu-reference or cuda)", kind);
}

} // namespace archlens
