// tokenizer.json normalizers (tokenizers/src/normalizers): NFC/NFD/NFKC/NFKD, Lowercase,
// Strip, StripAccents, Prepend, Replace, ByteLevel and Sequence. Alignments are not tracked:
// ArchLens needs ids and text, not offsets.
#pragma once

#include <memory>
#include <string>

namespace archlens {

class JsonCursor;

class Normalizer {
public:
    virtual ~Normalizer() = default;
    virtual void normalize(std::string& text) const = 0;

    // Builds the normalizer described at `json` (an object with "type"); throws archlens::Error.
    static std::unique_ptr<Normalizer> fromJson(const JsonCursor& json);
};

} // namespace archlens
