// CUDA_CHECK / CUBLAS_CHECK: every CUDA runtime and cuBLAS call of the backend goes through
// one of these, turning a failure into archlens::Error(ErrorCode::Backend) that names the
// call, the error and where it happened. Host code only (the .cu kernels never include it).
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include "base/error.h"

namespace archlens::cuda {

[[noreturn]] void throwCudaError(cudaError_t err, const char* expr, const char* file, int line);
[[noreturn]] void throwCublasError(cublasStatus_t status, const char* expr, const char* file, int line);

inline void checkCuda(cudaError_t err, const char* expr, const char* file, int line)
{
    if (err != cudaSuccess)
        throwCudaError(err, expr, file, line);
}

inline void checkCublas(cublasStatus_t status, const char* expr, const char* file, int line)
{
    if (status != CUBLAS_STATUS_SUCCESS)
        throwCublasError(status, expr, file, line);
}

} // namespace archlens::cuda

#define CUDA_CHECK(expr) ::archlens::cuda::checkCuda((expr), #expr, __FILE__, __LINE__)
#define CUBLAS_CHECK(expr) ::archlens::cuda::checkCublas((expr), #expr, __FILE__, __LINE__)
// after a kernel launch: a bad configuration shows up here, a fault at the next synchronise
#define CUDA_CHECK_LAUNCH(what) ::archlens::cuda::checkCuda(cudaGetLastError(), what, __FILE__, __LINE__)
