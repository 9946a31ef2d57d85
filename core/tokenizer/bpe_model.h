// The BPE model of tokenizer.json (tokenizers/src/models/bpe): vocab, ranked merges, unknown
// characters through byte_fallback / unk_token / fuse_unk, ignore_merges, and the optional
// continuing_subword_prefix / end_of_word_suffix.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace archlens {

class JsonCursor;

struct StringHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};
using Vocab = std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>>;

class BpeModel {
public:
    // json is the "model" object; its "type" must be "BPE".
    static std::unique_ptr<BpeModel> fromJson(const JsonCursor& json);

    // Appends the ids of one pre-tokenized word.
    void tokenize(std::string_view word, std::vector<int32_t>& out) const;

    std::optional<int32_t> tokenToId(std::string_view token) const;
    const std::string* idToToken(int32_t id) const;
    size_t vocabEntries() const { return m_vocab.size(); }
    int32_t maxId() const { return m_maxId; }

private:
    struct MergeInfo {
        uint32_t rank;
        int32_t newId;
    };
    static uint64_t pairKey(int32_t a, int32_t b)
    {
        return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
    }
    int32_t unkId() const;

    Vocab m_vocab;
    std::unordered_map<int32_t, std::string> m_vocabR;
    std::unordered_map<uint64_t, MergeInfo> m_merges;
    std::optional<std::string> m_unkToken;
    std::optional<std::string> m_continuingSubwordPrefix;
    std::optional<std::string> m_endOfWordSuffix;
    std::string m_source;
    bool m_fuseUnk = false;
    bool m_byteFallback = false;
    bool m_ignoreMerges = false;
    int32_t m_maxId = -1;
    int32_t m_byteIds[256];
    bool m_haveAllByteIds = false;
};

} // namespace archlens
