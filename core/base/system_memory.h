// Host memory as the kernel reports it, for refusing a model that cannot fit before any
// allocation is made (an out-of-memory kill gives the user nothing to act on).
#pragma once

#include <cstdint>
#include <optional>

namespace archlens {

// MemAvailable from /proc/meminfo in bytes; nullopt where it cannot be read.
std::optional<uint64_t> hostMemoryAvailable();

} // namespace archlens
