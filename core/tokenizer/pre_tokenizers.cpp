#include "tokenizer/pre_tokenizers.h"

#include <algorithm>

#include "tokenizer/json_cursor.h"
#include "tokenizer/unicode.h"

namespace archlens {

const char* const kGpt2SplitPattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

std::vector<std::pair<size_t, size_t>> applySplitBehavior(const std::vector<PatternSpan>& spans, SplitBehavior behavior)
{
    std::vector<std::pair<size_t, size_t>> out;
    out.reserve(spans.size());
    bool previousMatch = false;
    switch (behavior) {
    case SplitBehavior::Isolated:
        for (const auto& s : spans)
            out.emplace_back(s.start, s.end);
        break;
    case SplitBehavior::Removed:
        for (const auto& s : spans)
            if (!s.isMatch)
                out.emplace_back(s.start, s.end);
        break;
    case SplitBehavior::Contiguous:
        for (const auto& s : spans) {
            if (s.isMatch == previousMatch && !out.empty())
                out.back().second = s.end;
            else
                out.emplace_back(s.start, s.end);
            previousMatch = s.isMatch;
        }
        break;
    case SplitBehavior::MergedWithPrevious:
        for (const auto& s : spans) {
            if (s.isMatch && !previousMatch && !out.empty())
                out.back().second = s.end;
            else
                out.emplace_back(s.start, s.end);
            previousMatch = s.isMatch;
        }
        break;
    case SplitBehavior::MergedWithNext:
        for (auto it = spans.rbegin(); it != spans.rend(); ++it) {
            if (it->isMatch && !previousMatch && !out.empty())
                out.back().first = it->start;
            else
                out.emplace_back(it->start, it->end);
            previousMatch = it->isMatch;
        }
        std::reverse(out.begin(), out.end());
        break;
    }
    return out;
}

namespace {

// Each character for which pred holds is a match span; the runs between them are gaps.
template <typename Pred>
std::vector<PatternSpan> charSpans(std::string_view text, Pred pred)
{
    if (text.empty())
        return {PatternSpan{0, 0, false}};
    std::vector<PatternSpan> out;
    size_t lastOffset = 0;
    for (size_t pos = 0; pos < text.size();) {
        size_t len = 0;
        const char32_t cp = unicode::decodeAt(text, pos, &len);
        if (pred(cp)) {
            if (lastOffset < pos)
                out.push_back({lastOffset, pos, false});
            out.push_back({pos, pos + len, true});
            lastOffset = pos + len;
        }
        pos += len;
    }
    if (text.size() > lastOffset)
        out.push_back({lastOffset, text.size(), false});
    return out;
}

// Replaces every non-added piece by the pieces fn produces from it; empty results are dropped.
template <typename Fn>
void splitPieces(std::vector<Piece>& pieces, Fn fn)
{
    std::vector<Piece> out;
    out.reserve(pieces.size());
    std::vector<Piece> produced;
    for (auto& piece : pieces) {
        if (piece.addedId >= 0) {
            out.push_back(std::move(piece));
            continue;
        }
        produced.clear();
        fn(piece, produced);
        for (auto& p : produced)
            if (!p.text.empty())
                out.push_back(std::move(p));
    }
    pieces = std::move(out);
}

void emitRanges(const Piece& piece, const std::vector<std::pair<size_t, size_t>>& ranges, std::vector<Piece>& out)
{
    for (const auto& [s, e] : ranges)
        out.push_back(Piece{piece.text.substr(s, e - s), -1, piece.atTextStart && s == 0});
}

SplitBehavior behaviorFromJson(const JsonCursor& json)
{
    const std::string b = json.asString();
    if (b == "Removed") return SplitBehavior::Removed;
    if (b == "Isolated") return SplitBehavior::Isolated;
    if (b == "MergedWithPrevious") return SplitBehavior::MergedWithPrevious;
    if (b == "MergedWithNext") return SplitBehavior::MergedWithNext;
    if (b == "Contiguous") return SplitBehavior::Contiguous;
    json.fail(fmt::format("unknown split behavior '{}' (expected Removed, Isolated, MergedWithPrevious, "
                          "MergedWithNext or Contiguous)", b));
}

class ByteLevelPreTokenizer final : public PreTokenizer {
public:
    ByteLevelPreTokenizer(bool addPrefixSpace, bool useRegex, const std::string& what)
        : m_addPrefixSpace(addPrefixSpace)
    {
        if (useRegex)
            m_regex = std::make_unique<OnigRegex>(kGpt2SplitPattern, what);
    }

    void preTokenize(std::vector<Piece>& pieces) const override
    {
        splitPieces(pieces, [&](const Piece& piece, std::vector<Piece>& out) {
            Piece p = piece;
            if (m_addPrefixSpace && (p.text.empty() || p.text[0] != ' '))
                p.text.insert(0, 1, ' ');
            if (m_regex) {
                emitRanges(p, applySplitBehavior(m_regex->spans(p.text), SplitBehavior::Isolated), out);
            } else {
                out.push_back(std::move(p));
            }
        });
        for (auto& p : pieces)
            if (p.addedId < 0)
                p.text = unicode::bytesToByteLevel(p.text);
    }

private:
    bool m_addPrefixSpace;
    std::unique_ptr<OnigRegex> m_regex;
};

class SplitPreTokenizer final : public PreTokenizer {
public:
    SplitPreTokenizer(OnigRegex regex, SplitBehavior behavior, bool invert)
        : m_regex(std::move(regex)), m_behavior(behavior), m_invert(invert) {}

    void preTokenize(std::vector<Piece>& pieces) const override
    {
        splitPieces(pieces, [&](const Piece& piece, std::vector<Piece>& out) {
            auto spans = m_regex.spans(piece.text);
            if (m_invert)
                for (auto& s : spans)
                    s.isMatch = !s.isMatch;
            emitRanges(piece, applySplitBehavior(spans, m_behavior), out);
        });
    }

private:
    OnigRegex m_regex;
    SplitBehavior m_behavior;
    bool m_invert;
};

class DigitsPreTokenizer final : public PreTokenizer {
public:
    explicit DigitsPreTokenizer(bool individual) : m_individual(individual) {}

    void preTokenize(std::vector<Piece>& pieces) const override
    {
        splitPieces(pieces, [&](const Piece& piece, std::vector<Piece>& out) {
            const auto spans = charSpans(piece.text, [](char32_t c) { return unicode::isNumeric(c); });
            emitRanges(piece, applySplitBehavior(spans, m_individual ? SplitBehavior::Isolated : SplitBehavior::Contiguous), out);
        });
    }

private:
    bool m_individual;
};

enum class PrependScheme { Always, First, Never };

class MetaspacePreTokenizer final : public PreTokenizer {
public:
    MetaspacePreTokenizer(char32_t replacement, PrependScheme scheme, bool split)
        : m_replacement(replacement), m_str(unicode::toUtf8(replacement)), m_scheme(scheme), m_split(split) {}

    void preTokenize(std::vector<Piece>& pieces) const override
    {
        splitPieces(pieces, [&](const Piece& piece, std::vector<Piece>& out) {
            Piece p{{}, -1, piece.atTextStart};
            p.text.reserve(piece.text.size() + m_str.size());
            for (char c : piece.text) {
                if (c == ' ')
                    p.text += m_str;
                else
                    p.text.push_back(c);
            }
            const bool startsWithReplacement = p.text.compare(0, m_str.size(), m_str) == 0;
            if (!startsWithReplacement
                && (m_scheme == PrependScheme::Always || (m_scheme == PrependScheme::First && p.atTextStart)))
                p.text.insert(0, m_str);
            if (m_split) {
                const auto spans = charSpans(p.text, [&](char32_t c) { return c == m_replacement; });
                emitRanges(p, applySplitBehavior(spans, SplitBehavior::MergedWithNext), out);
            } else {
                out.push_back(std::move(p));
            }
        });
    }

private:
    char32_t m_replacement;
    std::string m_str;
    PrependScheme m_scheme;
    bool m_split;
};

class SequencePreTokenizer final : public PreTokenizer {
public:
    explicit SequencePreTokenizer(std::vector<std::unique_ptr<PreTokenizer>> items) : m_items(std::move(items)) {}
    void preTokenize(std::vector<Piece>& pieces) const override
    {
        for (const auto& p : m_items)
            p->preTokenize(pieces);
    }

private:
    std::vector<std::unique_ptr<PreTokenizer>> m_items;
};

char32_t singleChar(const JsonCursor& json)
{
    const std::string s = json.asString();
    size_t len = 0;
    if (s.empty() || unicode::findInvalidUtf8(s) != std::string::npos || (unicode::decodeAt(s, 0, &len), len != s.size()))
        json.fail(fmt::format("expected a single character, got '{}'", s));
    return unicode::decodeAt(s, 0, nullptr);
}

} // namespace

std::unique_ptr<PreTokenizer> PreTokenizer::fromJson(const JsonCursor& json)
{
    json.expectObject();
    const std::string type = json.typeTag();
    if (type == "ByteLevel")
        return std::make_unique<ByteLevelPreTokenizer>(json.boolOr("add_prefix_space", true), json.boolOr("use_regex", true),
                                                       json.source() + ": field '" + json.path() + "'");
    if (type == "Split") {
        return std::make_unique<SplitPreTokenizer>(patternFromJson(json["pattern"]), behaviorFromJson(json["behavior"]),
                                                   json["invert"].asBool());
    }
    if (type == "Digits")
        return std::make_unique<DigitsPreTokenizer>(json.boolOr("individual_digits", false));
    if (type == "Metaspace") {
        const char32_t replacement = singleChar(json["replacement"]);
        PrependScheme scheme = PrependScheme::Always;
        if (auto s = json.optional("prepend_scheme")) {
            const std::string v = s->asString();
            if (v == "always") scheme = PrependScheme::Always;
            else if (v == "first") scheme = PrependScheme::First;
            else if (v == "never") scheme = PrependScheme::Never;
            else s->fail(fmt::format("unknown prepend_scheme '{}' (expected always, first or never)", v));
        }
        if (auto a = json.optional("add_prefix_space"); a && !a->asBool()) {
            // The reference rejects add_prefix_space:false unless the scheme is (or defaults to) never.
            if (json.hasValue("prepend_scheme") && scheme != PrependScheme::Never)
                a->fail("add_prefix_space does not match declared prepend_scheme");
            if (!json.hasValue("prepend_scheme"))
                a->fail("add_prefix_space is false but prepend_scheme is missing (defaults to always); "
                        "set \"prepend_scheme\": \"never\"");
            scheme = PrependScheme::Never;
        }
        return std::make_unique<MetaspacePreTokenizer>(replacement, scheme, json.boolOr("split", true));
    }
    if (type == "Sequence") {
        const JsonCursor list = json["pretokenizers"];
        std::vector<std::unique_ptr<PreTokenizer>> items;
        for (size_t i = 0; i < list.size(); ++i)
            items.push_back(fromJson(list.at(i)));
        return std::make_unique<SequencePreTokenizer>(std::move(items));
    }
    json["type"].failUnsupported(fmt::format(
        "unsupported pre_tokenizer type '{}' (supported: ByteLevel, Split, Digits, Metaspace, Sequence)", type));
}

} // namespace archlens
