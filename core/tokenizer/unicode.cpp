#include "tokenizer/unicode.h"

#include <cstdlib>
#include <memory>

#include <utf8proc.h>

#include "base/error.h"

namespace archlens::unicode {

size_t charLength(unsigned char b)
{
    if (b < 0x80) return 1;
    if ((b & 0xE0) == 0xC0) return 2;
    if ((b & 0xF0) == 0xE0) return 3;
    return 4;
}

char32_t decodeAt(std::string_view text, size_t pos, size_t* len)
{
    const auto b0 = static_cast<unsigned char>(text[pos]);
    const size_t n = charLength(b0);
    ARCHLENS_ASSERT(pos + n <= text.size(), "truncated UTF-8 at {}", pos);
    char32_t cp = n == 1 ? b0 : n == 2 ? (b0 & 0x1F) : n == 3 ? (b0 & 0x0F) : (b0 & 0x07);
    for (size_t i = 1; i < n; ++i)
        cp = (cp << 6) | (static_cast<unsigned char>(text[pos + i]) & 0x3F);
    if (len)
        *len = n;
    return cp;
}

void appendUtf8(std::string& out, char32_t cp)
{
    if (cp < 0x80) {
        out.push_back(static_cast<char>(cp));
    } else if (cp < 0x800) {
        out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
        out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
        out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else {
        out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
        out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    }
}

std::string toUtf8(char32_t cp)
{
    std::string s;
    appendUtf8(s, cp);
    return s;
}

namespace {

// Length of the valid UTF-8 sequence at pos, or 0 with *bad set to the length of the maximal
// invalid subpart (at least 1), following the Unicode "maximal subpart" substitution rule.
size_t validSequence(std::string_view s, size_t pos, size_t* bad)
{
    const auto b0 = static_cast<unsigned char>(s[pos]);
    if (b0 < 0x80)
        return 1;
    size_t need = 0;
    unsigned char lo = 0x80, hi = 0xBF;
    if (b0 >= 0xC2 && b0 <= 0xDF) {
        need = 1;
    } else if (b0 >= 0xE0 && b0 <= 0xEF) {
        need = 2;
        if (b0 == 0xE0) lo = 0xA0;
        if (b0 == 0xED) hi = 0x9F;
    } else if (b0 >= 0xF0 && b0 <= 0xF4) {
        need = 3;
        if (b0 == 0xF0) lo = 0x90;
        if (b0 == 0xF4) hi = 0x8F;
    } else {
        *bad = 1;
        return 0;
    }
    for (size_t i = 1; i <= need; ++i) {
        if (pos + i >= s.size()) {
            *bad = i;
            return 0;
        }
        const auto b = static_cast<unsigned char>(s[pos + i]);
        const unsigned char l = i == 1 ? lo : 0x80;
        const unsigned char h = i == 1 ? hi : 0xBF;
        if (b < l || b > h) {
            *bad = i;
            return 0;
        }
    }
    return need + 1;
}

} // namespace

size_t findInvalidUtf8(std::string_view text)
{
    size_t pos = 0;
    while (pos < text.size()) {
        size_t bad = 0;
        const size_t n = validSequence(text, pos, &bad);
        if (n == 0)
            return pos;
        pos += n;
    }
    return std::string_view::npos;
}

std::string decodeLossy(std::string_view bytes)
{
    std::string out;
    out.reserve(bytes.size());
    size_t pos = 0;
    while (pos < bytes.size()) {
        size_t bad = 0;
        const size_t n = validSequence(bytes, pos, &bad);
        if (n == 0) {
            out += "\xEF\xBF\xBD";
            pos += bad;
        } else {
            out.append(bytes.substr(pos, n));
            pos += n;
        }
    }
    return out;
}

bool isWhitespace(char32_t cp)
{
    return (cp >= 0x09 && cp <= 0x0D) || cp == 0x20 || cp == 0x85 || cp == 0xA0 || cp == 0x1680
        || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F
        || cp == 0x205F || cp == 0x3000;
}

bool isWordChar(char32_t cp)
{
    if (cp < 0x80)
        return (cp >= '0' && cp <= '9') || (cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z') || cp == '_';
    if (cp == 0x200C || cp == 0x200D || (cp >= 0x24B6 && cp <= 0x24E9))
        return true;
    switch (utf8proc_category(static_cast<utf8proc_int32_t>(cp))) {
    case UTF8PROC_CATEGORY_LU: case UTF8PROC_CATEGORY_LL: case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM: case UTF8PROC_CATEGORY_LO: case UTF8PROC_CATEGORY_MN:
    case UTF8PROC_CATEGORY_MC: case UTF8PROC_CATEGORY_ME: case UTF8PROC_CATEGORY_ND:
    case UTF8PROC_CATEGORY_NL: case UTF8PROC_CATEGORY_PC:
        return true;
    default:
        return false;
    }
}

bool isNumeric(char32_t cp)
{
    if (cp < 0x80)
        return cp >= '0' && cp <= '9';
    const auto c = utf8proc_category(static_cast<utf8proc_int32_t>(cp));
    return c == UTF8PROC_CATEGORY_ND || c == UTF8PROC_CATEGORY_NL || c == UTF8PROC_CATEGORY_NO;
}

bool isCombiningMark(char32_t cp)
{
    const auto c = utf8proc_category(static_cast<utf8proc_int32_t>(cp));
    return c == UTF8PROC_CATEGORY_MN || c == UTF8PROC_CATEGORY_MC || c == UTF8PROC_CATEGORY_ME;
}

void appendLowercase(std::string& out, char32_t cp)
{
    // The only unconditional multi-character lowercase mapping in SpecialCasing.txt.
    if (cp == 0x130) {
        out += "i\xCC\x87";
        return;
    }
    appendUtf8(out, static_cast<char32_t>(utf8proc_tolower(static_cast<utf8proc_int32_t>(cp))));
}

std::string normalize(std::string_view text, NormalForm form)
{
    if (text.empty())
        return {};
    int options = UTF8PROC_STABLE;
    switch (form) {
    case NormalForm::NFC: options |= UTF8PROC_COMPOSE; break;
    case NormalForm::NFD: options |= UTF8PROC_DECOMPOSE; break;
    case NormalForm::NFKC: options |= UTF8PROC_COMPOSE | UTF8PROC_COMPAT; break;
    case NormalForm::NFKD: options |= UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT; break;
    }
    utf8proc_uint8_t* out = nullptr;
    const utf8proc_ssize_t n = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(text.data()),
                                            static_cast<utf8proc_ssize_t>(text.size()), &out,
                                            static_cast<utf8proc_option_t>(options));
    std::unique_ptr<utf8proc_uint8_t, decltype(&std::free)> holder(out, &std::free);
    if (n < 0)
        throw makeError(ErrorCode::InvalidArgument, "Unicode normalization failed: {}", utf8proc_errmsg(n));
    return std::string(reinterpret_cast<const char*>(out), static_cast<size_t>(n));
}

const std::array<char32_t, 256>& byteToChar()
{
    static const std::array<char32_t, 256> table = [] {
        std::array<char32_t, 256> t{};
        char32_t next = 0x100;
        for (int b = 0; b < 256; ++b) {
            const bool same = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
            t[static_cast<size_t>(b)] = same ? static_cast<char32_t>(b) : next++;
        }
        return t;
    }();
    return table;
}

int charToByte(char32_t cp)
{
    static const std::array<int16_t, 0x144> table = [] {
        std::array<int16_t, 0x144> t{};
        t.fill(-1);
        const auto& fwd = byteToChar();
        for (int b = 0; b < 256; ++b)
            t[fwd[static_cast<size_t>(b)]] = static_cast<int16_t>(b);
        return t;
    }();
    return cp < table.size() ? table[cp] : -1;
}

std::string bytesToByteLevel(std::string_view bytes)
{
    const auto& table = byteToChar();
    std::string out;
    out.reserve(bytes.size() * 2);
    for (char c : bytes)
        appendUtf8(out, table[static_cast<unsigned char>(c)]);
    return out;
}

} // namespace archlens::unicode
