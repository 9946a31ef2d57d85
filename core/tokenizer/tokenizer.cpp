#include "tokenizer/tokenizer.h"

#include <algorithm>
#include <fstream>
#include <sstream>
#include <unordered_map>
#include <unordered_set>

#include <nlohmann/json.hpp>

#include "base/error.h"
#include "tokenizer/bpe_model.h"
#include "tokenizer/decoders.h"
#include "tokenizer/json_cursor.h"
#include "tokenizer/normalizers.h"
#include "tokenizer/post_processors.h"
#include "tokenizer/pre_tokenizers.h"
#include "tokenizer/unicode.h"

namespace archlens {

namespace {

struct AddedToken {
    std::string content;
    bool singleWord = false;
    bool lstrip = false;
    bool rstrip = false;
    bool normalized = true;
    bool special = false;
    bool operator==(const AddedToken&) const = default;
};

// Leftmost-longest, non-overlapping matching of a fixed set of strings (the reference uses an
// Aho-Corasick automaton with the same semantics). Candidates are bucketed by first byte,
// longest first, which is fast enough for the few hundred added tokens of real files.
class LiteralMatcher {
public:
    void add(std::string pattern, int32_t id)
    {
        if (pattern.empty())
            return;
        m_patterns.push_back({std::move(pattern), id});
    }
    void finish()
    {
        for (auto& bucket : m_buckets)
            bucket.clear();
        for (size_t i = 0; i < m_patterns.size(); ++i)
            m_buckets[static_cast<unsigned char>(m_patterns[i].text[0])].push_back(i);
        for (auto& bucket : m_buckets)
            std::stable_sort(bucket.begin(), bucket.end(), [&](size_t a, size_t b) {
                return m_patterns[a].text.size() > m_patterns[b].text.size();
            });
    }
    bool empty() const { return m_patterns.empty(); }

    // Next match at or after pos: (start, end, id); false when none.
    bool next(std::string_view text, size_t pos, size_t* start, size_t* end, int32_t* id) const
    {
        for (size_t p = pos; p < text.size(); ++p) {
            for (size_t i : m_buckets[static_cast<unsigned char>(text[p])]) {
                const auto& pat = m_patterns[i].text;
                if (text.compare(p, pat.size(), pat) == 0) {
                    *start = p;
                    *end = p + pat.size();
                    *id = m_patterns[i].id;
                    return true;
                }
            }
        }
        return false;
    }

private:
    struct Pattern {
        std::string text;
        int32_t id;
    };
    std::vector<Pattern> m_patterns;
    std::vector<size_t> m_buckets[256];
};

char32_t lastChar(std::string_view s)
{
    size_t start = s.size() - 1;
    while (start > 0 && (static_cast<unsigned char>(s[start]) & 0xC0) == 0x80)
        --start;
    return unicode::decodeAt(s, start, nullptr);
}

struct Truncation {
    size_t maxLength = 0;
    bool left = false;
};

struct Padding {
    std::optional<size_t> fixed; // nullopt: BatchLongest
    std::optional<size_t> multipleOf;
    bool left = false;
    int32_t padId = 0;
};

} // namespace

struct Tokenizer::Impl {
    std::string source;
    std::unique_ptr<Normalizer> normalizer;
    std::unique_ptr<PreTokenizer> preTokenizer;
    std::unique_ptr<BpeModel> model;
    std::unique_ptr<PostProcessor> postProcessor;
    std::unique_ptr<Decoder> decoder;
    std::optional<Truncation> truncation;
    std::optional<Padding> padding;

    std::unordered_map<std::string, int32_t> addedByContent;
    std::unordered_map<int32_t, AddedToken> addedById;
    std::unordered_set<std::string> specialContents;
    LiteralMatcher rawMatcher;        // added tokens with normalized:false, on the raw text
    LiteralMatcher normalizedMatcher; // normalized:true, on normalized segments
    int64_t vocabSize = 0;

    std::optional<int32_t> tokenToId(std::string_view token) const
    {
        if (auto it = addedByContent.find(std::string(token)); it != addedByContent.end())
            return it->second;
        return model->tokenToId(token);
    }

    void loadAddedTokens(const JsonCursor& list);
    void splitOnAdded(const Piece& piece, const LiteralMatcher& matcher, std::vector<Piece>& out) const;
    std::vector<int32_t> encode(std::string_view text, bool addSpecialTokens) const;
    std::string decode(std::span<const int32_t> ids, bool skipSpecialTokens) const;
};

void Tokenizer::Impl::loadAddedTokens(const JsonCursor& list)
{
    // Ids follow the reference's add_tokens: an existing entry (added or vocab) keeps its id,
    // a new one gets the next free id after the model vocabulary; the JSON "id" is advisory.
    std::vector<AddedToken> tokens;
    for (size_t i = 0; i < list.size(); ++i) {
        const JsonCursor t = list.at(i);
        t.expectObject();
        AddedToken tok;
        tok.content = t["content"].asString();
        tok.singleWord = t.boolOr("single_word", false);
        tok.lstrip = t.boolOr("lstrip", false);
        tok.rstrip = t.boolOr("rstrip", false);
        tok.special = t.boolOr("special", false);
        tok.normalized = t.boolOr("normalized", !tok.special);
        if (t.has("id"))
            t["id"].asInt();
        tokens.push_back(std::move(tok));
    }

    std::vector<AddedToken> specialList;
    for (const auto& tok : tokens) {
        if (tok.special && !tok.content.empty() && specialContents.insert(tok.content).second)
            specialList.push_back(tok);
    }
    std::vector<AddedToken> existing;
    std::vector<AddedToken> plainList;
    const auto vocabEntries = static_cast<int64_t>(model->vocabEntries());
    int64_t nextId = vocabEntries;
    for (const auto& tok : tokens) {
        if (tok.content.empty() || std::find(existing.begin(), existing.end(), tok) != existing.end())
            continue;
        int64_t id;
        if (auto known = tokenToId(tok.content)) {
            id = *known;
        } else {
            id = nextId++;
            if (id > INT32_MAX)
                list.fail("too many added tokens");
        }
        addedByContent[tok.content] = static_cast<int32_t>(id);
        addedById[static_cast<int32_t>(id)] = tok;
        if (!specialContents.contains(tok.content))
            plainList.push_back(tok);
        existing.push_back(tok);
    }

    auto addTo = [&](const AddedToken& tok) {
        const int32_t id = addedByContent.at(tok.content);
        if (!tok.normalized) {
            rawMatcher.add(tok.content, id);
        } else {
            std::string pattern = tok.content;
            if (normalizer)
                normalizer->normalize(pattern);
            normalizedMatcher.add(std::move(pattern), id);
        }
    };
    for (const auto& tok : specialList)
        addTo(tok);
    for (const auto& tok : plainList)
        addTo(tok);
    rawMatcher.finish();
    normalizedMatcher.finish();
}

// Mirrors the reference's AddedVocabulary::find_matches for one piece.
void Tokenizer::Impl::splitOnAdded(const Piece& piece, const LiteralMatcher& matcher, std::vector<Piece>& out) const
{
    const std::string_view text = piece.text;
    auto emit = [&](size_t s, size_t e, int32_t id) {
        if (e > s)
            out.push_back(Piece{std::string(text.substr(s, e - s)), id, piece.atTextStart && s == 0});
    };
    if (matcher.empty() || text.empty()) {
        emit(0, text.size(), -1);
        return;
    }
    size_t startOffset = 0;
    size_t searchFrom = 0;
    size_t ms = 0, me = 0;
    int32_t id = -1;
    while (matcher.next(text, searchFrom, &ms, &me, &id)) {
        searchFrom = me;
        const AddedToken& tok = addedById.at(id);
        size_t start = ms;
        size_t stop = me;
        if (tok.singleWord) {
            const bool startSpace = start == 0 || !unicode::isWordChar(lastChar(text.substr(0, start)));
            const bool stopSpace = stop == text.size() || !unicode::isWordChar(unicode::decodeAt(text, stop, nullptr));
            if (!startSpace || !stopSpace)
                continue;
        }
        if (tok.lstrip) {
            size_t s = start;
            while (s > 0) {
                size_t b = s - 1;
                while (b > 0 && (static_cast<unsigned char>(text[b]) & 0xC0) == 0x80)
                    --b;
                if (!unicode::isWhitespace(unicode::decodeAt(text, b, nullptr)))
                    break;
                s = b;
            }
            start = std::max(s, startOffset);
        }
        if (tok.rstrip) {
            while (stop < text.size()) {
                size_t len = 0;
                if (!unicode::isWhitespace(unicode::decodeAt(text, stop, &len)))
                    break;
                stop += len;
            }
        }
        if (startOffset < start)
            emit(startOffset, start, -1);
        // The matched piece keeps the whole (stripped) span; only its id matters downstream.
        out.push_back(Piece{std::string(text.substr(start, stop - start)), id, false});
        startOffset = stop;
    }
    if (startOffset < text.size())
        emit(startOffset, text.size(), -1);
}

std::vector<int32_t> Tokenizer::Impl::encode(std::string_view text, bool addSpecialTokens) const
{
    if (const size_t bad = unicode::findInvalidUtf8(text); bad != std::string_view::npos)
        throw makeError(ErrorCode::InvalidArgument, "text to encode is not valid UTF-8 (byte offset {})", bad);

    std::vector<Piece> pieces;
    splitOnAdded(Piece{std::string(text), -1, true}, rawMatcher, pieces);

    std::vector<Piece> normalizedPieces;
    normalizedPieces.reserve(pieces.size());
    for (auto& piece : pieces) {
        if (piece.addedId >= 0) {
            normalizedPieces.push_back(std::move(piece));
            continue;
        }
        if (normalizer)
            normalizer->normalize(piece.text);
        splitOnAdded(piece, normalizedMatcher, normalizedPieces);
    }
    pieces = std::move(normalizedPieces);

    if (preTokenizer)
        preTokenizer->preTokenize(pieces);

    std::vector<int32_t> ids;
    ids.reserve(text.size() / 3 + 4);
    for (const auto& piece : pieces) {
        if (piece.addedId >= 0)
            ids.push_back(piece.addedId);
        else
            model->tokenize(piece.text, ids);
    }

    if (truncation) {
        const size_t added = addSpecialTokens && postProcessor ? postProcessor->addedTokens() : 0;
        const size_t limit = truncation->maxLength > added ? truncation->maxLength - added : 0;
        if (ids.size() > limit) {
            if (truncation->left)
                ids.erase(ids.begin(), ids.end() - static_cast<ptrdiff_t>(limit));
            else
                ids.resize(limit);
        }
    }
    if (postProcessor)
        postProcessor->process(ids, addSpecialTokens);
    if (padding) {
        size_t target = padding->fixed.value_or(ids.size());
        if (padding->multipleOf && *padding->multipleOf > 0 && target % *padding->multipleOf != 0)
            target += *padding->multipleOf - target % *padding->multipleOf;
        if (ids.size() < target) {
            if (padding->left)
                ids.insert(ids.begin(), target - ids.size(), padding->padId);
            else
                ids.resize(target, padding->padId);
        }
    }
    return ids;
}

std::string Tokenizer::Impl::decode(std::span<const int32_t> ids, bool skipSpecialTokens) const
{
    std::vector<std::string> tokens;
    tokens.reserve(ids.size());
    for (const int32_t id : ids) {
        const std::string* token = nullptr;
        if (auto it = addedById.find(id); it != addedById.end())
            token = &it->second.content;
        else
            token = model->idToToken(id);
        if (!token)
            continue;
        if (skipSpecialTokens && specialContents.contains(*token))
            continue;
        tokens.push_back(*token);
    }
    if (!decoder) {
        std::string out;
        for (size_t i = 0; i < tokens.size(); ++i) {
            if (i)
                out.push_back(' ');
            out += tokens[i];
        }
        return out;
    }
    decoder->decodeChain(tokens);
    std::string out;
    for (const auto& t : tokens)
        out += t;
    return out;
}

namespace {

Truncation truncationFromJson(const JsonCursor& json)
{
    Truncation t;
    const int64_t maxLength = json["max_length"].asInt();
    if (maxLength < 0)
        json["max_length"].fail("expected a non-negative integer");
    t.maxLength = static_cast<size_t>(maxLength);
    const std::string direction = json.stringOr("direction", "Right");
    if (direction != "Right" && direction != "Left")
        json["direction"].fail(fmt::format("expected Right or Left, got '{}'", direction));
    t.left = direction == "Left";
    return t;
}

Padding paddingFromJson(const JsonCursor& json)
{
    Padding p;
    if (auto s = json.optional("strategy")) {
        if (s->value().is_string()) {
            if (s->asString() != "BatchLongest")
                s->fail(fmt::format("expected \"BatchLongest\" or {{\"Fixed\": n}}, got '{}'", s->asString()));
        } else {
            const int64_t n = (*s)["Fixed"].asInt();
            if (n < 0)
                (*s)["Fixed"].fail("expected a non-negative integer");
            p.fixed = static_cast<size_t>(n);
        }
    }
    if (auto m = json.optional("pad_to_multiple_of")) {
        const int64_t n = m->asInt();
        if (n < 0)
            m->fail("expected a non-negative integer");
        p.multipleOf = static_cast<size_t>(n);
    }
    const std::string direction = json.stringOr("direction", "Right");
    if (direction != "Right" && direction != "Left")
        json["direction"].fail(fmt::format("expected Right or Left, got '{}'", direction));
    p.left = direction == "Left";
    const int64_t padId = json.intOr("pad_id", 0);
    if (padId < 0 || padId > INT32_MAX)
        json["pad_id"].fail("token id out of range");
    p.padId = static_cast<int32_t>(padId);
    return p;
}

} // namespace

Tokenizer Tokenizer::fromJson(const std::string& json, const std::string& sourceName)
{
    nlohmann::json root;
    try {
        root = nlohmann::json::parse(json);
    } catch (const nlohmann::json::exception& e) {
        throw Error(ErrorCode::Format, fmt::format("not valid JSON: {}", e.what()), sourceName);
    }
    auto impl = std::make_shared<Impl>();
    impl->source = sourceName;
    const JsonCursor top(root, "", impl->source);
    top.expectObject();
    if (auto v = top.optional("version"); v && v->asString() != "1.0")
        throw Error(ErrorCode::Version, fmt::format("field 'version': unknown tokenizer.json version '{}' (expected \"1.0\")",
                                                    v->asString()),
                    sourceName);
    impl->model = BpeModel::fromJson(top["model"]);
    if (auto n = top.optional("normalizer"))
        impl->normalizer = Normalizer::fromJson(*n);
    if (auto p = top.optional("pre_tokenizer"))
        impl->preTokenizer = PreTokenizer::fromJson(*p);
    if (auto p = top.optional("post_processor"))
        impl->postProcessor = PostProcessor::fromJson(*p);
    if (auto d = top.optional("decoder"))
        impl->decoder = Decoder::fromJson(*d);
    if (auto t = top.optional("truncation"))
        impl->truncation = truncationFromJson(*t);
    if (auto p = top.optional("padding"))
        impl->padding = paddingFromJson(*p);
    if (auto a = top.optional("added_tokens"))
        impl->loadAddedTokens(*a);

    int64_t maxId = impl->model->maxId();
    for (const auto& [id, tok] : impl->addedById)
        maxId = std::max<int64_t>(maxId, id);
    impl->vocabSize = maxId + 1;
    return Tokenizer(std::move(impl));
}

Tokenizer Tokenizer::fromFile(const std::filesystem::path& fileOrDir)
{
    std::filesystem::path path = fileOrDir;
    std::error_code ec;
    if (std::filesystem::is_directory(path, ec))
        path /= "tokenizer.json";
    std::ifstream in(path, std::ios::binary);
    if (!in)
        throw Error(ErrorCode::Io, "cannot open tokenizer file", path.string(),
                    "a model folder needs a tokenizer.json from the Hugging Face checkpoint");
    std::ostringstream buffer;
    buffer << in.rdbuf();
    if (in.bad())
        throw Error(ErrorCode::Io, "cannot read tokenizer file", path.string());
    return fromJson(buffer.str(), path.string());
}

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool addSpecialTokens) const
{
    return m_impl->encode(text, addSpecialTokens);
}

std::string Tokenizer::decode(std::span<const int32_t> ids, bool skipSpecialTokens) const
{
    return m_impl->decode(ids, skipSpecialTokens);
}

std::string Tokenizer::tokenText(int32_t id) const
{
    return m_impl->decode(std::span<const int32_t>(&id, 1), false);
}

std::optional<int32_t> Tokenizer::tokenToId(std::string_view token) const
{
    return m_impl->tokenToId(token);
}

std::optional<std::string> Tokenizer::idToToken(int32_t id) const
{
    if (auto it = m_impl->addedById.find(id); it != m_impl->addedById.end())
        return it->second.content;
    if (const std::string* t = m_impl->model->idToToken(id))
        return *t;
    return std::nullopt;
}

int64_t Tokenizer::vocabSize() const
{
    return m_impl->vocabSize;
}

bool Tokenizer::isSpecial(int32_t id) const
{
    const auto token = idToToken(id);
    return token && m_impl->specialContents.contains(*token);
}

} // namespace archlens
