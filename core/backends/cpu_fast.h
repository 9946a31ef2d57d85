// The fast CPU backend: the same maths as the reference (cpu_reference.cpp), vectorised
// with per-ISA kernels chosen at run time (cpu_fast_kernels.h) and spread over a
// persistent thread pool. GEMMs go through our blocked SGEMM (cpu_gemm.h), split over the pool.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "backends/backend.h"

namespace archlens {

struct CpuBackendOptions {
    int threads = 0; // 0: defaultCpuThreads(interactive)
    bool interactive = false; // a GUI is running: keep one core for it
    std::string isa; // "" or "auto": the best the CPU supports; else "scalar", "avx2", "avx512"
};

// CPUs this process may run on (its affinity mask), at least 1.
int hardwareThreads();
// Threads the CPU backend uses by default: every CPU, or one fewer while a GUI runs
// (interactive), never fewer than 1.
int defaultCpuThreads(bool interactive);

// Instruction sets of the fast kernels this build has and this CPU (and OS) can run, worst
// first ("scalar" always). The best one is what "auto" picks; ARCHLENS_CPU_ISA in the
// environment caps the automatic choice (for tests and comparisons).
std::vector<std::string> availableCpuIsas();
std::string bestCpuIsa();

// Error(InvalidArgument) for an unknown ISA name, Error(Unsupported) for one this CPU or
// build lacks, naming what is available.
std::unique_ptr<Backend> makeCpuFastBackend(const CpuBackendOptions& options = {});

} // namespace archlens
