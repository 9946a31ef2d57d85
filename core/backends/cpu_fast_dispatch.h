// Internal to the fast CPU backend and its tests: which kernel tables exist and can run.
#pragma once

#include <optional>
#include <string_view>
#include <vector>

#include "backends/cpu_fast_kernels.h"

namespace archlens::fastcpu {

const char* isaName(Isa isa);
std::optional<Isa> isaFromName(std::string_view name);
// The table for isa, or null when this build lacks it or this CPU cannot run it.
const Kernels* kernelsFor(Isa isa);
std::vector<Isa> availableIsas(); // worst first; Scalar always
Isa bestIsa(); // the best available, capped by ARCHLENS_CPU_ISA

} // namespace archlens::fastcpu
