// Tokenizer: loads a Hugging Face tokenizer.json and encodes/decodes exactly as the
// `tokenizers` library does with that file alone (tokenizer_config.json is not read).
// Supported: BPE models with the normalizers, pre-tokenizers, post-processors and decoders
// used by GPT-2/GPT-NeoX, Llama/Mistral (both SentencePiece forms), Qwen2/3 and DeepSeek.
// See docs/model-formats.md section 10.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace archlens {

class Tokenizer {
public:
    // A directory means <dir>/tokenizer.json. Throws archlens::Error (Io, Format, Unsupported, Version).
    static Tokenizer fromFile(const std::filesystem::path& fileOrDir);
    // sourceName names the input in error messages.
    static Tokenizer fromJson(const std::string& json, const std::string& sourceName);

    // text must be valid UTF-8 (throws InvalidArgument otherwise).
    std::vector<int32_t> encode(std::string_view text, bool addSpecialTokens) const;
    // Unknown ids are skipped, as the reference does; no clean-up of spaces.
    std::string decode(std::span<const int32_t> ids, bool skipSpecialTokens = false) const;
    // One token shown alone: decode({id}); partial UTF-8 shows as U+FFFD.
    std::string tokenText(int32_t id) const;

    std::optional<int32_t> tokenToId(std::string_view token) const;
    std::optional<std::string> idToToken(int32_t id) const;
    // Highest id of the vocab and the added tokens, plus one.
    int64_t vocabSize() const;
    bool isSpecial(int32_t id) const;

private:
    struct Impl;
    explicit Tokenizer(std::shared_ptr<const Impl> impl) : m_impl(std::move(impl)) {}
    std::shared_ptr<const Impl> m_impl;
};

} // namespace archlens
