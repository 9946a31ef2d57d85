#include "tokenizer/onig_regex.h"

#include <mutex>

#include <oniguruma.h>

#include "base/error.h"
#include "tokenizer/json_cursor.h"
#include "tokenizer/unicode.h"

namespace archlens {

struct OnigRegex::Compiled {
    regex_t* re = nullptr;
    ~Compiled()
    {
        if (re)
            onig_free(re);
    }
};

namespace {

void initOniguruma()
{
    static std::once_flag once;
    std::call_once(once, [] {
        OnigEncoding encodings[] = {ONIG_ENCODING_UTF8};
        onig_initialize(encodings, 1);
    });
}

} // namespace

OnigRegex::OnigRegex(std::string_view pattern, const std::string& what)
{
    initOniguruma();
    if (unicode::findInvalidUtf8(pattern) != std::string_view::npos)
        throw makeError(ErrorCode::Format, "{}: regex is not valid UTF-8", what);
    auto compiled = std::make_shared<Compiled>();
    OnigErrorInfo info{};
    const auto* begin = reinterpret_cast<const OnigUChar*>(pattern.data());
    // Same as rust-onig Regex::new: no options, the default (Oniguruma) syntax, UTF-8.
    const int rc = onig_new(&compiled->re, begin, begin + pattern.size(), ONIG_OPTION_NONE,
                            ONIG_ENCODING_UTF8, ONIG_SYNTAX_DEFAULT, &info);
    if (rc != ONIG_NORMAL) {
        OnigUChar buf[ONIG_MAX_ERROR_MESSAGE_LEN];
        onig_error_code_to_str(buf, rc, &info);
        compiled->re = nullptr;
        throw makeError(ErrorCode::Format, "{}: invalid regex '{}': {}", what, pattern,
                        reinterpret_cast<const char*>(buf));
    }
    m_compiled = std::move(compiled);
}

OnigRegex OnigRegex::literal(std::string_view text, const std::string& what)
{
    // The same escaping as Rust regex::escape, which the reference applies before compiling.
    std::string escaped;
    for (char c : text) {
        if (std::string_view("\\.+*?()|[]{}^$#&-~").find(c) != std::string_view::npos)
            escaped.push_back('\\');
        escaped.push_back(c);
    }
    return OnigRegex(escaped, what);
}

std::vector<std::pair<size_t, size_t>> OnigRegex::findAll(std::string_view text) const
{
    std::vector<std::pair<size_t, size_t>> out;
    const auto* str = reinterpret_cast<const OnigUChar*>(text.data());
    const auto* end = str + text.size();
    OnigRegion* region = onig_region_new();
    size_t lastEnd = 0;
    bool haveLastMatch = false;
    size_t lastMatchEnd = 0;
    while (lastEnd <= text.size()) {
        onig_region_clear(region);
        const int r = onig_search(m_compiled->re, str, end, str + lastEnd, end, region, ONIG_OPTION_NONE);
        if (r < 0)
            break; // ONIG_MISMATCH, or an engine error such as a retry limit: stop like rust-onig
        const auto s = static_cast<size_t>(region->beg[0]);
        const auto e = static_cast<size_t>(region->end[0]);
        if (s == e && haveLastMatch && lastMatchEnd == e) {
            lastEnd += lastEnd < text.size() ? unicode::charLength(static_cast<unsigned char>(text[lastEnd])) : 1;
            continue;
        }
        lastEnd = e;
        lastMatchEnd = e;
        haveLastMatch = true;
        out.emplace_back(s, e);
    }
    onig_region_free(region, 1);
    return out;
}

std::vector<PatternSpan> OnigRegex::spans(std::string_view text) const
{
    if (text.empty())
        return {PatternSpan{0, 0, false}};
    std::vector<PatternSpan> out;
    size_t prev = 0;
    for (const auto& [s, e] : findAll(text)) {
        if (prev != s)
            out.push_back({prev, s, false});
        out.push_back({s, e, true});
        prev = e;
    }
    if (prev != text.size())
        out.push_back({prev, text.size(), false});
    return out;
}

// Shared by Replace normalizers and decoders and by Split: {"String": s} or {"Regex": r}.
OnigRegex patternFromJson(const JsonCursor& json)
{
    json.expectObject();
    if (auto s = json.optional("String"))
        return OnigRegex::literal(s->asString(), json.source() + ": field '" + json.path() + "'");
    if (auto r = json.optional("Regex"))
        return OnigRegex(r->asString(), json.source() + ": field '" + json.path() + "'");
    json.fail("expected {\"String\": ...} or {\"Regex\": ...}");
}

} // namespace archlens
