#include "tokenizer/normalizers.h"

#include <vector>

#include "tokenizer/json_cursor.h"
#include "tokenizer/onig_regex.h"
#include "tokenizer/unicode.h"

namespace archlens {

namespace {

class UnicodeNormalizer final : public Normalizer {
public:
    explicit UnicodeNormalizer(unicode::NormalForm form) : m_form(form) {}
    void normalize(std::string& text) const override { text = unicode::normalize(text, m_form); }

private:
    unicode::NormalForm m_form;
};

class LowercaseNormalizer final : public Normalizer {
public:
    void normalize(std::string& text) const override
    {
        std::string out;
        out.reserve(text.size());
        for (size_t pos = 0; pos < text.size();) {
            size_t len = 0;
            const char32_t cp = unicode::decodeAt(text, pos, &len);
            if (cp < 0x80)
                out.push_back(static_cast<char>(cp >= 'A' && cp <= 'Z' ? cp + 32 : cp));
            else
                unicode::appendLowercase(out, cp);
            pos += len;
        }
        text = std::move(out);
    }
};

class StripNormalizer final : public Normalizer {
public:
    StripNormalizer(bool left, bool right) : m_left(left), m_right(right) {}
    void normalize(std::string& text) const override
    {
        size_t begin = 0;
        size_t end = text.size();
        if (m_left) {
            while (begin < end) {
                size_t len = 0;
                if (!unicode::isWhitespace(unicode::decodeAt(text, begin, &len)))
                    break;
                begin += len;
            }
        }
        if (m_right) {
            while (end > begin) {
                size_t start = end - 1;
                while (start > begin && (static_cast<unsigned char>(text[start]) & 0xC0) == 0x80)
                    --start;
                if (!unicode::isWhitespace(unicode::decodeAt(text, start, nullptr)))
                    break;
                end = start;
            }
        }
        text = text.substr(begin, end - begin);
    }

private:
    bool m_left;
    bool m_right;
};

class StripAccentsNormalizer final : public Normalizer {
public:
    void normalize(std::string& text) const override
    {
        std::string out;
        out.reserve(text.size());
        for (size_t pos = 0; pos < text.size();) {
            size_t len = 0;
            const char32_t cp = unicode::decodeAt(text, pos, &len);
            if (!unicode::isCombiningMark(cp))
                out.append(text, pos, len);
            pos += len;
        }
        text = std::move(out);
    }
};

class PrependNormalizer final : public Normalizer {
public:
    explicit PrependNormalizer(std::string prefix) : m_prefix(std::move(prefix)) {}
    void normalize(std::string& text) const override
    {
        if (!text.empty())
            text.insert(0, m_prefix);
    }

private:
    std::string m_prefix;
};

class ReplaceNormalizer final : public Normalizer {
public:
    ReplaceNormalizer(OnigRegex pattern, std::string content) : m_pattern(std::move(pattern)), m_content(std::move(content)) {}
    void normalize(std::string& text) const override
    {
        const auto matches = m_pattern.findAll(text);
        if (matches.empty())
            return;
        std::string out;
        out.reserve(text.size());
        size_t prev = 0;
        for (const auto& [s, e] : matches) {
            out.append(text, prev, s - prev);
            out += m_content;
            prev = e;
        }
        out.append(text, prev, std::string::npos);
        text = std::move(out);
    }

private:
    OnigRegex m_pattern;
    std::string m_content;
};

class ByteLevelNormalizer final : public Normalizer {
public:
    void normalize(std::string& text) const override { text = unicode::bytesToByteLevel(text); }
};

class SequenceNormalizer final : public Normalizer {
public:
    explicit SequenceNormalizer(std::vector<std::unique_ptr<Normalizer>> items) : m_items(std::move(items)) {}
    void normalize(std::string& text) const override
    {
        for (const auto& n : m_items)
            n->normalize(text);
    }

private:
    std::vector<std::unique_ptr<Normalizer>> m_items;
};

} // namespace

std::unique_ptr<Normalizer> Normalizer::fromJson(const JsonCursor& json)
{
    json.expectObject();
    const std::string type = json.typeTag();
    if (type == "NFC") return std::make_unique<UnicodeNormalizer>(unicode::NormalForm::NFC);
    if (type == "NFD") return std::make_unique<UnicodeNormalizer>(unicode::NormalForm::NFD);
    if (type == "NFKC") return std::make_unique<UnicodeNormalizer>(unicode::NormalForm::NFKC);
    if (type == "NFKD") return std::make_unique<UnicodeNormalizer>(unicode::NormalForm::NFKD);
    if (type == "Lowercase") return std::make_unique<LowercaseNormalizer>();
    if (type == "StripAccents") return std::make_unique<StripAccentsNormalizer>();
    if (type == "ByteLevel") return std::make_unique<ByteLevelNormalizer>();
    if (type == "Strip")
        return std::make_unique<StripNormalizer>(json["strip_left"].asBool(), json["strip_right"].asBool());
    if (type == "Prepend")
        return std::make_unique<PrependNormalizer>(json["prepend"].asString());
    if (type == "Replace")
        return std::make_unique<ReplaceNormalizer>(patternFromJson(json["pattern"]), json["content"].asString());
    if (type == "Sequence") {
        const JsonCursor list = json["normalizers"];
        std::vector<std::unique_ptr<Normalizer>> items;
        for (size_t i = 0; i < list.size(); ++i)
            items.push_back(fromJson(list.at(i)));
        return std::make_unique<SequenceNormalizer>(std::move(items));
    }
    json["type"].failUnsupported(fmt::format(
        "unsupported normalizer type '{}' (supported: NFC, NFD, NFKC, NFKD, Lowercase, Strip, StripAccents, "
        "Prepend, Replace, ByteLevel, Sequence)", type));
}

} // namespace archlens
