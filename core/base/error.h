// The one exception type core throws for bad input (files, keys, values).
// Our own bugs are asserts (ARCHLENS_ASSERT), never this type.
#pragma once

#include <stdexcept>
#include <string>

#include <fmt/format.h>

namespace archlens {

enum class ErrorCode {
    InvalidArgument,   // a value the caller gave is out of range or malformed
    Io,                // a file could not be opened, read or written
    Format,            // a file's content violates its format (safetensors, json, hdf5 ...)
    Config,            // config.json is missing a key, or keys contradict each other
    Shape,             // a tensor has the wrong shape or dtype
    Unsupported,       // a valid input we do not handle (architecture, dtype, op)
    Version,           // a schema or format version we do not read
    Cancelled,         // long work stopped on request
    Backend,           // a backend could not run (no device, out of memory ...)
    Internal,
};

const char* errorCodeName(ErrorCode code);

// message: what went wrong; context: which file/tensor/key; hint: how to fix, when known.
class Error : public std::runtime_error {
public:
    Error(ErrorCode code, std::string message, std::string context = {}, std::string hint = {});

    ErrorCode code() const { return m_code; }
    const std::string& message() const { return m_message; }
    const std::string& context() const { return m_context; }
    const std::string& hint() const { return m_hint; }

private:
    ErrorCode m_code;
    std::string m_message;
    std::string m_context;
    std::string m_hint;
};

// Usage: throw makeError(ErrorCode::Format, "{}: tensor '{}' has {} bytes, expected {}", file, name, a, b);
template <typename... Args>
Error makeError(ErrorCode code, fmt::format_string<Args...> f, Args&&... args)
{
    return Error(code, fmt::format(f, std::forward<Args>(args)...));
}

[[noreturn]] void assertFailed(const char* expr, const char* file, int line, const std::string& msg);

} // namespace archlens

#define ARCHLENS_ASSERT(cond, ...)                                                          \
    do {                                                                                    \
        if (!(cond))                                                                        \
            ::archlens::assertFailed(#cond, __FILE__, __LINE__, ::fmt::format("" __VA_ARGS__)); \
    } while (0)
