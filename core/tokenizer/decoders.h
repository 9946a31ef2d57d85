// tokenizer.json decoders (tokenizers/src/decoders): ByteLevel, Metaspace, Replace,
// ByteFallback, Fuse, Strip and Sequence. Each maps the list of token strings to a new list
// (decode_chain); the tokenizer joins the final list.
#pragma once

#include <memory>
#include <string>
#include <vector>

namespace archlens {

class JsonCursor;

class Decoder {
public:
    virtual ~Decoder() = default;
    virtual void decodeChain(std::vector<std::string>& tokens) const = 0;

    static std::unique_ptr<Decoder> fromJson(const JsonCursor& json);
};

} // namespace archlens
