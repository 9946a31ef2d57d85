#include "base/error.h"

#include <cstdio>
#include <cstdlib>

namespace archlens {

const char* errorCodeName(ErrorCode code)
{
    switch (code) {
    case ErrorCode::InvalidArgument: return "invalid argument";
    case ErrorCode::Io: return "i/o error";
    case ErrorCode::Format: return "format error";
    case ErrorCode::Config: return "config error";
    case ErrorCode::Shape: return "shape error";
    case ErrorCode::Unsupported: return "unsupported";
    case ErrorCode::Version: return "version error";
    case ErrorCode::Cancelled: return "cancelled";
    case ErrorCode::Backend: return "backend error";
    case ErrorCode::Internal: return "internal error";
    }
    return "error";
}

static std::string composeWhat(const std::string& message, const std::string& context, const std::string& hint)
{
    std::string what = context.empty() ? message : context + ": " + message;
    if (!hint.empty())
        what += " (" + hint + ")";
    return what;
}

Error::Error(ErrorCode code, std::string message, std::string context, std::string hint)
    : std::runtime_error(composeWhat(message, context, hint))
    , m_code(code)
    , m_message(std::move(message))
    , m_context(std::move(context))
    , m_hint(std::move(hint))
{
}

void assertFailed(const char* expr, const char* file, int line, const std::string& msg)
{
    // An assert is our own bug: there is no sensible way to continue.
    std::fprintf(stderr, "archlens: internal assertion failed: %s at %s:%d %s\n", expr, file, line, msg.c_str());
    std::abort();
}

} // namespace archlens
