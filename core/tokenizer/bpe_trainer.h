// Byte-level BPE trainer producing a complete GPT-NeoX-style tokenizer.json: special tokens
// first (ids 0..), then the 256-char byte-level alphabet, then one token per merge. Words come
// from the GPT-2 split pattern (ByteLevel pre-tokenizer, add_prefix_space false); the decoder
// is ByteLevel. Used to train the tokenizers of bundled models.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace archlens {

struct BpeTrainerOptions {
    int64_t vocabSize = 4096;   // total, including special tokens and the 256-char alphabet
    int64_t minFrequency = 2;   // a pair seen fewer times is never merged
    std::vector<std::string> specialTokens = {"<|endoftext|>"};
    bool nfcNormalizer = true;  // write (and train with) an NFC normalizer, as GPT-NeoX does
};

// Deterministic: each step merges the most frequent pair; ties go to the pair whose left,
// then right, token has the lower id. Special tokens in the texts are not learnt from.
// Throws archlens::Error(InvalidArgument) for impossible options.
std::string trainByteLevelBpe(const std::vector<std::string>& texts, const BpeTrainerOptions& opts);

} // namespace archlens
