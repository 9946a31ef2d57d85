// tokenizer.json post-processors (tokenizers/src/processors) for a single sequence:
// TemplateProcessing, ByteLevel (adds nothing), RobertaProcessing, BertProcessing, Sequence.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

namespace archlens {

class JsonCursor;

class PostProcessor {
public:
    virtual ~PostProcessor() = default;
    // With addSpecialTokens false, processors leave the ids unchanged.
    virtual void process(std::vector<int32_t>& ids, bool addSpecialTokens) const = 0;
    // Number of ids process() adds to one sequence (truncation leaves room for them).
    virtual size_t addedTokens() const = 0;

    static std::unique_ptr<PostProcessor> fromJson(const JsonCursor& json);
};

} // namespace archlens
