#include "backends/backend_factory.h"

namespace archlens {

// The CUDA backend arrives as a run-time plugin (see cuda/); until a build ships one,
// this explains the fallback instead of failing obscurely.
static const char* kNoCudaReason = "this build has no CUDA backend plugin";

BackendChoice createBackend(const std::string& kind)
{
    if (kind == "cpu")
        return {makeCpuReferenceBackend(), {}};
    if (kind == "auto")
        return {makeCpuReferenceBackend(), std::string("using the CPU backend: ") + kNoCudaReason};
    if (kind == "cuda")
        throw Error(ErrorCode::Backend, std::string("the CUDA backend cannot run: ") + kNoCudaReason, "--backend cuda",
                    "use --backend cpu or auto");
    throw makeError(ErrorCode::InvalidArgument, "--backend: unknown backend '{}' (expected auto, cpu or cuda)", kind);
}

} // namespace archlens
