#include "base/system_memory.h"

#include <fstream>
#include <sstream>
#include <string>

namespace archlens {

std::optional<uint64_t> hostMemoryAvailable()
{
    std::ifstream in("/proc/meminfo");
    std::string line;
    while (std::getline(in, line)) {
        if (line.rfind("MemAvailable:", 0) != 0)
            continue;
        std::istringstream ss(line.substr(13));
        uint64_t kib = 0;
        std::string unit;
        if (ss >> kib >> unit && unit == "kB")
            return kib * 1024;
        return std::nullopt;
    }
    return std::nullopt;
}

} // namespace archlens
