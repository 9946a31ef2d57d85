// tokenizer.json pre-tokenizers (tokenizers/src/pre_tokenizers): ByteLevel, Split, Digits,
// Metaspace and Sequence. They subdivide or rewrite the pieces between added tokens; pieces
// never merge and empty ones are dropped.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "tokenizer/onig_regex.h"

namespace archlens {

class JsonCursor;

struct Piece {
    std::string text;
    int32_t addedId = -1;     // >= 0: an added token, skipped by pre-tokenizers and the model
    bool atTextStart = false; // begins at offset 0 of the original text (Metaspace "first")
};

enum class SplitBehavior { Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous };

// Byte ranges of `text` kept by a split with this behavior (tokenizers NormalizedString::split).
std::vector<std::pair<size_t, size_t>> applySplitBehavior(const std::vector<PatternSpan>& spans, SplitBehavior behavior);

class PreTokenizer {
public:
    virtual ~PreTokenizer() = default;
    virtual void preTokenize(std::vector<Piece>& pieces) const = 0;

    static std::unique_ptr<PreTokenizer> fromJson(const JsonCursor& json);
};

// The GPT-2 pattern used by ByteLevel with use_regex.
extern const char* const kGpt2SplitPattern;

} // namespace archlens
