#include "base/log.h"

#include <cstdio>
#include <mutex>

namespace archlens {

namespace {
std::mutex g_mutex;
LogSink g_sink;
} // namespace

void setLogSink(LogSink sink)
{
    std::lock_guard lock(g_mutex);
    g_sink = std::move(sink);
}

void logMessage(LogLevel level, const std::string& message)
{
    std::lock_guard lock(g_mutex);
    if (g_sink) {
        g_sink(level, message);
        return;
    }
    if (level >= LogLevel::Warning)
        std::fprintf(stderr, "archlens: %s\n", message.c_str());
}

} // namespace archlens
