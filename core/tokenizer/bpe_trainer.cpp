#include "tokenizer/bpe_trainer.h"

#include <algorithm>
#include <queue>
#include <unordered_map>
#include <unordered_set>

#include <nlohmann/json.hpp>

#include "base/error.h"
#include "tokenizer/onig_regex.h"
#include "tokenizer/pre_tokenizers.h"
#include "tokenizer/unicode.h"

namespace archlens {

namespace {

uint64_t pairKey(int32_t a, int32_t b)
{
    return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
}
int32_t pairLeft(uint64_t k) { return static_cast<int32_t>(k >> 32); }
int32_t pairRight(uint64_t k) { return static_cast<int32_t>(k & 0xFFFFFFFFu); }

struct Word {
    std::vector<int32_t> symbols;
    int64_t count = 0;
};

struct QueueEntry {
    int64_t count;
    uint64_t pair;
    // Max-heap order: higher count first, then the lower pair key (left id, then right id).
    bool operator<(const QueueEntry& o) const { return count != o.count ? count < o.count : pair > o.pair; }
};

// Counts the byte-level words of all texts, skipping special-token occurrences.
std::unordered_map<std::string, int64_t> countWords(const std::vector<std::string>& texts, const BpeTrainerOptions& opts)
{
    const OnigRegex regex(kGpt2SplitPattern, "BPE trainer split pattern");
    std::unordered_map<std::string, int64_t> counts;
    auto addSegment = [&](std::string_view segment) {
        if (segment.empty())
            return;
        std::string text(segment);
        if (opts.nfcNormalizer)
            text = unicode::normalize(text, unicode::NormalForm::NFC);
        for (const auto& [s, e] : regex.findAll(text))
            if (e > s)
                ++counts[unicode::bytesToByteLevel(std::string_view(text).substr(s, e - s))];
    };
    for (size_t t = 0; t < texts.size(); ++t) {
        const std::string_view text = texts[t];
        if (const size_t bad = unicode::findInvalidUtf8(text); bad != std::string_view::npos)
            throw makeError(ErrorCode::InvalidArgument, "BPE trainer: text {} is not valid UTF-8 (byte offset {})", t, bad);
        size_t pos = 0;
        while (pos < text.size()) {
            // Leftmost, then longest, special token occurrence.
            size_t best = std::string_view::npos;
            size_t bestLen = 0;
            for (const auto& sp : opts.specialTokens) {
                const size_t at = text.find(sp, pos);
                if (at != std::string_view::npos && (at < best || (at == best && sp.size() > bestLen))) {
                    best = at;
                    bestLen = sp.size();
                }
            }
            if (best == std::string_view::npos) {
                addSegment(text.substr(pos));
                break;
            }
            addSegment(text.substr(pos, best - pos));
            pos = best + bestLen;
        }
    }
    return counts;
}

} // namespace

std::string trainByteLevelBpe(const std::vector<std::string>& texts, const BpeTrainerOptions& opts)
{
    std::vector<std::string> idToToken;
    std::unordered_map<std::string, int32_t> tokenToId;
    auto addToken = [&](const std::string& t) {
        const auto id = static_cast<int32_t>(idToToken.size());
        idToToken.push_back(t);
        tokenToId.emplace(t, id);
        return id;
    };

    std::unordered_set<std::string> seen;
    for (const auto& sp : opts.specialTokens) {
        if (sp.empty() || unicode::findInvalidUtf8(sp) != std::string::npos)
            throw makeError(ErrorCode::InvalidArgument, "BPE trainer: special token '{}' is empty or not UTF-8", sp);
        if (!seen.insert(sp).second)
            throw makeError(ErrorCode::InvalidArgument, "BPE trainer: special token '{}' is listed twice", sp);
        addToken(sp);
    }
    // The alphabet in code point order, as the reference trainer sorts it.
    std::vector<char32_t> alphabet(unicode::byteToChar().begin(), unicode::byteToChar().end());
    std::sort(alphabet.begin(), alphabet.end());
    for (char32_t c : alphabet) {
        const std::string s = unicode::toUtf8(c);
        if (tokenToId.contains(s))
            throw makeError(ErrorCode::InvalidArgument, "BPE trainer: special token '{}' collides with a byte-level character", s);
        addToken(s);
    }
    const auto baseSize = static_cast<int64_t>(idToToken.size());
    if (opts.vocabSize < baseSize)
        throw makeError(ErrorCode::InvalidArgument,
                        "BPE trainer: vocabSize {} is smaller than the {} special tokens plus the 256-char alphabet",
                        opts.vocabSize, opts.specialTokens.size());
    if (opts.minFrequency < 1)
        throw makeError(ErrorCode::InvalidArgument, "BPE trainer: minFrequency must be at least 1, got {}", opts.minFrequency);

    // Words as symbol sequences, in a fixed (sorted) order so that the result never depends on
    // hash-map iteration.
    auto wordCounts = countWords(texts, opts);
    std::vector<std::pair<std::string, int64_t>> sortedWords(wordCounts.begin(), wordCounts.end());
    std::sort(sortedWords.begin(), sortedWords.end());
    std::vector<Word> words;
    words.reserve(sortedWords.size());
    for (const auto& [w, c] : sortedWords) {
        Word word;
        word.count = c;
        for (size_t pos = 0; pos < w.size();) {
            const size_t len = unicode::charLength(static_cast<unsigned char>(w[pos]));
            word.symbols.push_back(tokenToId.at(w.substr(pos, len)));
            pos += len;
        }
        words.push_back(std::move(word));
    }

    std::unordered_map<uint64_t, int64_t> pairCounts;
    std::unordered_map<uint64_t, std::vector<uint32_t>> pairWords; // may hold stale entries
    for (uint32_t wi = 0; wi < words.size(); ++wi) {
        const auto& s = words[wi].symbols;
        for (size_t i = 0; i + 1 < s.size(); ++i) {
            const uint64_t k = pairKey(s[i], s[i + 1]);
            pairCounts[k] += words[wi].count;
            auto& list = pairWords[k];
            if (list.empty() || list.back() != wi)
                list.push_back(wi);
        }
    }
    std::priority_queue<QueueEntry> queue;
    for (const auto& [k, c] : pairCounts)
        queue.push({c, k});

    std::vector<std::pair<std::string, std::string>> merges;
    std::unordered_map<uint64_t, int64_t> delta;
    std::vector<uint32_t> touchedWords;
    while (static_cast<int64_t>(idToToken.size()) < opts.vocabSize && !queue.empty()) {
        QueueEntry top = queue.top();
        queue.pop();
        const auto it = pairCounts.find(top.pair);
        const int64_t current = it == pairCounts.end() ? 0 : it->second;
        if (current != top.count) {
            if (current > 0)
                queue.push({current, top.pair}); // stale count: requeue with the real one
            continue;
        }
        if (current < opts.minFrequency)
            break;

        const int32_t a = pairLeft(top.pair);
        const int32_t b = pairRight(top.pair);
        const std::string merged = idToToken[static_cast<size_t>(a)] + idToToken[static_cast<size_t>(b)];
        merges.emplace_back(idToToken[static_cast<size_t>(a)], idToToken[static_cast<size_t>(b)]);
        int32_t newId;
        if (auto found = tokenToId.find(merged); found != tokenToId.end())
            newId = found->second;
        else
            newId = addToken(merged);

        delta.clear();
        touchedWords = std::move(pairWords[top.pair]);
        pairWords.erase(top.pair);
        for (uint32_t wi : touchedWords) {
            Word& word = words[wi];
            auto& s = word.symbols;
            bool present = false;
            for (size_t i = 0; i + 1 < s.size() && !present; ++i)
                present = s[i] == a && s[i + 1] == b;
            if (!present)
                continue;
            for (size_t i = 0; i + 1 < s.size(); ++i)
                delta[pairKey(s[i], s[i + 1])] -= word.count;
            std::vector<int32_t> next;
            next.reserve(s.size());
            for (size_t i = 0; i < s.size(); ++i) {
                if (i + 1 < s.size() && s[i] == a && s[i + 1] == b) {
                    next.push_back(newId);
                    ++i;
                } else {
                    next.push_back(s[i]);
                }
            }
            s = std::move(next);
            for (size_t i = 0; i + 1 < s.size(); ++i) {
                const uint64_t k = pairKey(s[i], s[i + 1]);
                delta[k] += word.count;
                auto& list = pairWords[k];
                if (list.empty() || list.back() != wi)
                    list.push_back(wi);
            }
        }
        // Apply in key order so that queue contents are independent of hash iteration.
        std::vector<std::pair<uint64_t, int64_t>> changes(delta.begin(), delta.end());
        std::sort(changes.begin(), changes.end());
        for (const auto& [k, d] : changes) {
            if (d == 0)
                continue;
            int64_t& c = pairCounts[k];
            c += d;
            if (c <= 0)
                pairCounts.erase(k);
            else if (d > 0)
                queue.push({c, k});
        }
    }

    nlohmann::ordered_json vocab = nlohmann::ordered_json::object();
    for (size_t id = 0; id < idToToken.size(); ++id)
        vocab[idToToken[id]] = id;
    nlohmann::ordered_json mergeList = nlohmann::ordered_json::array();
    for (const auto& [l, r] : merges)
        mergeList.push_back(nlohmann::ordered_json::array({l, r}));
    nlohmann::ordered_json added = nlohmann::ordered_json::array();
    for (size_t i = 0; i < opts.specialTokens.size(); ++i) {
        added.push_back({{"id", i}, {"content", opts.specialTokens[i]}, {"single_word", false}, {"lstrip", false},
                         {"rstrip", false}, {"normalized", false}, {"special", true}});
    }
    const nlohmann::ordered_json byteLevel = {
        {"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", true}};
    nlohmann::ordered_json root;
    root["version"] = "1.0";
    root["truncation"] = nullptr;
    root["padding"] = nullptr;
    root["added_tokens"] = added;
    root["normalizer"] = opts.nfcNormalizer ? nlohmann::ordered_json{{"type", "NFC"}} : nlohmann::ordered_json(nullptr);
    root["pre_tokenizer"] = byteLevel;
    root["post_processor"] = byteLevel;
    root["decoder"] = byteLevel;
    root["model"] = {{"type", "BPE"},
                     {"dropout", nullptr},
                     {"unk_token", nullptr},
                     {"continuing_subword_prefix", nullptr},
                     {"end_of_word_suffix", nullptr},
                     {"fuse_unk", false},
                     {"byte_fallback", false},
                     {"ignore_merges", false},
                     {"vocab", vocab},
                     {"merges", mergeList}};
    return root.dump(1, ' ', false, nlohmann::ordered_json::error_handler_t::strict);
}

} // namespace archlens
