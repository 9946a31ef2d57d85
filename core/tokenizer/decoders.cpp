#include "tokenizer/decoders.h"

#include "tokenizer/json_cursor.h"
#include "tokenizer/onig_regex.h"
#include "tokenizer/unicode.h"

namespace archlens {

namespace {

// Chars of the byte-level alphabet back to bytes; a token with any other char contributes its
// own UTF-8 bytes (NeoX's literal-space added tokens). The result is decoded lossily.
class ByteLevelDecoder final : public Decoder {
public:
    void decodeChain(std::vector<std::string>& tokens) const override
    {
        std::string bytes;
        std::string tokenBytes;
        for (const auto& token : tokens) {
            tokenBytes.clear();
            bool mapped = true;
            for (size_t pos = 0; pos < token.size();) {
                size_t len = 0;
                const int b = unicode::charToByte(unicode::decodeAt(token, pos, &len));
                if (b < 0) {
                    mapped = false;
                    break;
                }
                tokenBytes.push_back(static_cast<char>(b));
                pos += len;
            }
            bytes += mapped ? tokenBytes : token;
        }
        tokens.assign(1, unicode::decodeLossy(bytes));
    }
};

class MetaspaceDecoder final : public Decoder {
public:
    MetaspaceDecoder(std::string replacement, bool prependNever)
        : m_replacement(std::move(replacement)), m_prependNever(prependNever) {}
    void decodeChain(std::vector<std::string>& tokens) const override
    {
        for (size_t i = 0; i < tokens.size(); ++i) {
            std::string out;
            const std::string& t = tokens[i];
            for (size_t pos = 0; pos < t.size();) {
                if (t.compare(pos, m_replacement.size(), m_replacement) == 0) {
                    if (i != 0 || m_prependNever)
                        out.push_back(' ');
                    pos += m_replacement.size();
                } else {
                    const size_t len = unicode::charLength(static_cast<unsigned char>(t[pos]));
                    out.append(t, pos, len);
                    pos += len;
                }
            }
            tokens[i] = std::move(out);
        }
    }

private:
    std::string m_replacement;
    bool m_prependNever;
};

class ReplaceDecoder final : public Decoder {
public:
    ReplaceDecoder(OnigRegex pattern, std::string content) : m_pattern(std::move(pattern)), m_content(std::move(content)) {}
    void decodeChain(std::vector<std::string>& tokens) const override
    {
        for (auto& t : tokens) {
            const auto matches = m_pattern.findAll(t);
            if (matches.empty())
                continue;
            std::string out;
            size_t prev = 0;
            for (const auto& [s, e] : matches) {
                out.append(t, prev, s - prev);
                out += m_content;
                prev = e;
            }
            out.append(t, prev, std::string::npos);
            t = std::move(out);
        }
    }

private:
    OnigRegex m_pattern;
    std::string m_content;
};

int hexValue(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

// Runs of <0xHH> tokens become their bytes; an invalid UTF-8 run gives one U+FFFD per byte.
class ByteFallbackDecoder final : public Decoder {
public:
    void decodeChain(std::vector<std::string>& tokens) const override
    {
        std::vector<std::string> out;
        out.reserve(tokens.size());
        std::string pending;
        auto flush = [&] {
            if (pending.empty())
                return;
            if (unicode::findInvalidUtf8(pending) == std::string::npos) {
                out.push_back(pending);
            } else {
                for (size_t i = 0; i < pending.size(); ++i)
                    out.emplace_back("\xEF\xBF\xBD");
            }
            pending.clear();
        };
        for (auto& t : tokens) {
            if (t.size() == 6 && t.compare(0, 3, "<0x") == 0 && t[5] == '>') {
                const int hi = hexValue(t[3]);
                const int lo = hexValue(t[4]);
                if (hi >= 0 && lo >= 0) {
                    pending.push_back(static_cast<char>(hi * 16 + lo));
                    continue;
                }
            }
            flush();
            out.push_back(std::move(t));
        }
        flush();
        tokens = std::move(out);
    }
};

class FuseDecoder final : public Decoder {
public:
    void decodeChain(std::vector<std::string>& tokens) const override
    {
        std::string joined;
        for (const auto& t : tokens)
            joined += t;
        tokens.assign(1, std::move(joined));
    }
};

// Removes up to `start` leading and `stop` trailing occurrences of one character per token.
class StripDecoder final : public Decoder {
public:
    StripDecoder(char32_t content, size_t start, size_t stop) : m_content(content), m_start(start), m_stop(stop) {}
    void decodeChain(std::vector<std::string>& tokens) const override
    {
        for (auto& t : tokens) {
            std::vector<size_t> starts; // byte offset of every char
            for (size_t pos = 0; pos < t.size(); pos += unicode::charLength(static_cast<unsigned char>(t[pos])))
                starts.push_back(pos);
            const size_t n = starts.size();
            size_t startCut = 0;
            for (size_t i = 0; i < n && i < m_start; ++i) {
                if (unicode::decodeAt(t, starts[i], nullptr) != m_content)
                    break;
                startCut = i + 1;
            }
            size_t stopCut = 0;
            for (size_t i = 0; i < n && i < m_stop; ++i) {
                if (unicode::decodeAt(t, starts[n - 1 - i], nullptr) != m_content)
                    break;
                stopCut = i + 1;
            }
            if (startCut + stopCut >= n) {
                t.clear();
                continue;
            }
            const size_t b = startCut < n ? starts[startCut] : t.size();
            const size_t e = stopCut == 0 ? t.size() : starts[n - stopCut];
            t = t.substr(b, e - b);
        }
    }

private:
    char32_t m_content;
    size_t m_start;
    size_t m_stop;
};

class SequenceDecoder final : public Decoder {
public:
    explicit SequenceDecoder(std::vector<std::unique_ptr<Decoder>> items) : m_items(std::move(items)) {}
    void decodeChain(std::vector<std::string>& tokens) const override
    {
        for (const auto& d : m_items)
            d->decodeChain(tokens);
    }

private:
    std::vector<std::unique_ptr<Decoder>> m_items;
};

char32_t singleChar(const JsonCursor& json)
{
    const std::string s = json.asString();
    size_t len = 0;
    if (s.empty() || unicode::findInvalidUtf8(s) != std::string::npos || (unicode::decodeAt(s, 0, &len), len != s.size()))
        json.fail(fmt::format("expected a single character, got '{}'", s));
    return unicode::decodeAt(s, 0, nullptr);
}

size_t count(const JsonCursor& json)
{
    const int64_t v = json.asInt();
    if (v < 0)
        json.fail("expected a non-negative integer");
    return static_cast<size_t>(v);
}

} // namespace

std::unique_ptr<Decoder> Decoder::fromJson(const JsonCursor& json)
{
    json.expectObject();
    const std::string type = json.typeTag();
    if (type == "ByteLevel") return std::make_unique<ByteLevelDecoder>();
    if (type == "ByteFallback") return std::make_unique<ByteFallbackDecoder>();
    if (type == "Fuse") return std::make_unique<FuseDecoder>();
    if (type == "Replace")
        return std::make_unique<ReplaceDecoder>(patternFromJson(json["pattern"]), json["content"].asString());
    if (type == "Strip")
        return std::make_unique<StripDecoder>(singleChar(json["content"]), count(json["start"]), count(json["stop"]));
    if (type == "Metaspace") {
        const char32_t replacement = singleChar(json["replacement"]);
        bool never = false;
        if (auto s = json.optional("prepend_scheme")) {
            const std::string v = s->asString();
            if (v != "always" && v != "first" && v != "never")
                s->fail(fmt::format("unknown prepend_scheme '{}' (expected always, first or never)", v));
            never = v == "never";
        }
        if (auto a = json.optional("add_prefix_space"); a && !a->asBool()) {
            if (json.hasValue("prepend_scheme") && !never)
                a->fail("add_prefix_space does not match declared prepend_scheme");
            if (!json.hasValue("prepend_scheme"))
                a->fail("add_prefix_space is false but prepend_scheme is missing (defaults to always); "
                        "set \"prepend_scheme\": \"never\"");
            never = true;
        }
        return std::make_unique<MetaspaceDecoder>(unicode::toUtf8(replacement), never);
    }
    if (type == "Sequence") {
        const JsonCursor list = json["decoders"];
        std::vector<std::unique_ptr<Decoder>> items;
        for (size_t i = 0; i < list.size(); ++i)
            items.push_back(fromJson(list.at(i)));
        return std::make_unique<SequenceDecoder>(std::move(items));
    }
    json["type"].failUnsupported(fmt::format(
        "unsupported decoder type '{}' (supported: ByteLevel, Metaspace, Replace, ByteFallback, Fuse, Strip, Sequence)",
        type));
}

} // namespace archlens
