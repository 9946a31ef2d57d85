// Oniguruma regex compiled once and shared by copies; the engine and iteration rules are the
// ones Hugging Face tokenizers uses (rust-onig find_iter), so Split/Replace/ByteLevel patterns
// cut text at exactly the same places.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace archlens {

class JsonCursor;

// One span of a piece: a regex match or the gap between matches (byte offsets).
struct PatternSpan {
    size_t start = 0;
    size_t end = 0;
    bool isMatch = false;
};

class OnigRegex {
public:
    // Throws archlens::Error(Format) naming `what` when the pattern does not compile.
    OnigRegex(std::string_view pattern, const std::string& what);
    // A pattern matching the literal text (Split/Replace with {"String": ...}).
    static OnigRegex literal(std::string_view text, const std::string& what);

    // Non-overlapping matches, searched from the end of the previous one over the whole text;
    // an empty match right after the previous match is skipped by advancing one character.
    std::vector<std::pair<size_t, size_t>> findAll(std::string_view text) const;

    // Matches and the non-empty gaps between them, covering text; empty text gives one empty gap.
    std::vector<PatternSpan> spans(std::string_view text) const;

private:
    struct Compiled;
    std::shared_ptr<const Compiled> m_compiled;
};

// A Split/Replace pattern object: {"String": literal} or {"Regex": oniguruma pattern}.
OnigRegex patternFromJson(const JsonCursor& json);

} // namespace archlens
