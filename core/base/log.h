// Core never prints: it logs through a sink that the app installs (stderr in the CLI,
// the status bar / log dock in the GUI). The default sink drops everything below Warning
// and writes the rest to stderr.
#pragma once

#include <functional>
#include <string>

#include <fmt/format.h>

namespace archlens {

enum class LogLevel { Debug, Info, Warning, Error };

using LogSink = std::function<void(LogLevel, const std::string&)>;

void setLogSink(LogSink sink);
void logMessage(LogLevel level, const std::string& message);

template <typename... Args>
void logInfo(fmt::format_string<Args...> f, Args&&... args)
{
    logMessage(LogLevel::Info, fmt::format(f, std::forward<Args>(args)...));
}
template <typename... Args>
void logWarning(fmt::format_string<Args...> f, Args&&... args)
{
    logMessage(LogLevel::Warning, fmt::format(f, std::forward<Args>(args)...));
}

} // namespace archlens
