// Host memory facts from /proc (Linux): what is available now and this process's peak
// resident size. Both return 0 where they cannot be read.
#pragma once

#include <cstdint>

namespace archlens {

uint64_t availableHostBytes(); // MemAvailable of /proc/meminfo
uint64_t peakHostBytes(); // VmHWM of /proc/self/status

} // namespace archlens
