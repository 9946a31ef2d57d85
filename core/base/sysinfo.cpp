#include "base/sysinfo.h"

#include <cstdio>
#include <cstring>

namespace archlens {

namespace {

// The value in kB of the line starting with `key` in a /proc file, in bytes.
uint64_t procKiloBytes(const char* file, const char* key)
{
    std::FILE* f = std::fopen(file, "r");
    if (!f)
        return 0;
    char line[256];
    uint64_t value = 0;
    const size_t len = std::strlen(key);
    while (std::fgets(line, sizeof line, f)) {
        if (std::strncmp(line, key, len) == 0) {
            unsigned long long kb = 0;
            if (std::sscanf(line + len, " %llu", &kb) == 1)
                value = uint64_t(kb) * 1024;
            break;
        }
    }
    std::fclose(f);
    return value;
}

} // namespace

uint64_t availableHostBytes()
{
    return procKiloBytes("/proc/meminfo", "MemAvailable:");
}
uint64_t peakHostBytes()
{
    return procKiloBytes("/proc/self/status", "VmHWM:");
}

} // namespace archlens
