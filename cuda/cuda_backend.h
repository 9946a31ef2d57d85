// The CUDA backend (see cuda/README.md): makes the Backend for one device. Called by the
// plugin entry point (cuda_plugin.cpp) once the driver, device and memory checks passed.
#pragma once

#include <memory>

#include "backends/backend.h"

namespace archlens::cuda {

// Throws Error(ErrorCode::Backend) when the device cannot be set up (context, stream, cuBLAS).
std::unique_ptr<Backend> makeCudaBackend(int device);

} // namespace archlens::cuda
