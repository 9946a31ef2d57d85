#include "tokenizer/post_processors.h"

#include <map>
#include <string>

#include "tokenizer/json_cursor.h"

namespace archlens {

namespace {

class TemplateProcessor final : public PostProcessor {
public:
    struct Item {
        bool isSequence = false;
        std::vector<int32_t> ids; // of a special token
    };
    explicit TemplateProcessor(std::vector<Item> single) : m_single(std::move(single)) {}

    void process(std::vector<int32_t>& ids, bool addSpecialTokens) const override
    {
        std::vector<int32_t> out;
        out.reserve(ids.size() + 8);
        for (const auto& item : m_single) {
            if (item.isSequence)
                out.insert(out.end(), ids.begin(), ids.end());
            else if (addSpecialTokens)
                out.insert(out.end(), item.ids.begin(), item.ids.end());
        }
        ids = std::move(out);
    }

    size_t addedTokens() const override
    {
        size_t n = 0;
        for (const auto& item : m_single)
            n += item.ids.size();
        return n;
    }

private:
    std::vector<Item> m_single;
};

class NoOpProcessor final : public PostProcessor {
public:
    void process(std::vector<int32_t>&, bool) const override {}
    size_t addedTokens() const override { return 0; }
};

// RobertaProcessing / BertProcessing for one sequence: cls, ids, sep.
class ClsSepProcessor final : public PostProcessor {
public:
    ClsSepProcessor(int32_t cls, int32_t sep) : m_cls(cls), m_sep(sep) {}
    void process(std::vector<int32_t>& ids, bool addSpecialTokens) const override
    {
        if (!addSpecialTokens)
            return;
        ids.insert(ids.begin(), m_cls);
        ids.push_back(m_sep);
    }
    size_t addedTokens() const override { return 2; }

private:
    int32_t m_cls;
    int32_t m_sep;
};

class SequenceProcessor final : public PostProcessor {
public:
    explicit SequenceProcessor(std::vector<std::unique_ptr<PostProcessor>> items) : m_items(std::move(items)) {}
    void process(std::vector<int32_t>& ids, bool addSpecialTokens) const override
    {
        for (const auto& p : m_items)
            p->process(ids, addSpecialTokens);
    }
    size_t addedTokens() const override
    {
        size_t n = 0;
        for (const auto& p : m_items)
            n += p->addedTokens();
        return n;
    }

private:
    std::vector<std::unique_ptr<PostProcessor>> m_items;
};

int32_t tokenId(const JsonCursor& json)
{
    const int64_t v = json.asInt();
    if (v < 0 || v > INT32_MAX)
        json.fail(fmt::format("token id {} is out of range", v));
    return static_cast<int32_t>(v);
}

// ["</s>", 2]
int32_t pairId(const JsonCursor& json)
{
    if (json.size() != 2)
        json.fail("expected [\"token\", id]");
    json.at(0).asString();
    return tokenId(json.at(1));
}

std::unique_ptr<PostProcessor> templateFromJson(const JsonCursor& json)
{
    std::map<std::string, std::vector<int32_t>> specials;
    if (auto st = json.optional("special_tokens")) {
        st->expectObject();
        for (const auto& [name, value] : st->value().items()) {
            const JsonCursor entry(value, st->path() + "." + name, json.source());
            const JsonCursor ids = entry["ids"];
            std::vector<int32_t> list;
            for (size_t i = 0; i < ids.size(); ++i)
                list.push_back(tokenId(ids.at(i)));
            specials[name] = std::move(list);
        }
    }
    const JsonCursor single = json["single"];
    std::vector<TemplateProcessor::Item> items;
    for (size_t i = 0; i < single.size(); ++i) {
        const JsonCursor piece = single.at(i);
        piece.expectObject();
        if (auto seq = piece.optional("Sequence")) {
            const std::string id = (*seq)["id"].asString();
            if (id != "A")
                (*seq)["id"].fail(fmt::format("a single-sequence template can only use sequence A, got '{}'", id));
            items.push_back({true, {}});
        } else if (auto sp = piece.optional("SpecialToken")) {
            const JsonCursor idField = (*sp)["id"];
            const std::string name = idField.asString();
            const auto it = specials.find(name);
            if (it == specials.end())
                idField.fail(fmt::format("special token '{}' is not defined in special_tokens", name));
            items.push_back({false, it->second});
        } else {
            piece.fail("expected {\"Sequence\": ...} or {\"SpecialToken\": ...}");
        }
    }
    return std::make_unique<TemplateProcessor>(std::move(items));
}

} // namespace

std::unique_ptr<PostProcessor> PostProcessor::fromJson(const JsonCursor& json)
{
    json.expectObject();
    const std::string type = json.typeTag();
    if (type == "TemplateProcessing")
        return templateFromJson(json);
    if (type == "ByteLevel")
        return std::make_unique<NoOpProcessor>();
    if (type == "RobertaProcessing" || type == "BertProcessing")
        return std::make_unique<ClsSepProcessor>(pairId(json["cls"]), pairId(json["sep"]));
    if (type == "Sequence") {
        const JsonCursor list = json["processors"];
        std::vector<std::unique_ptr<PostProcessor>> items;
        for (size_t i = 0; i < list.size(); ++i)
            items.push_back(fromJson(list.at(i)));
        return std::make_unique<SequenceProcessor>(std::move(items));
    }
    json["type"].failUnsupported(fmt::format(
        "unsupported post_processor type '{}' (supported: TemplateProcessing, ByteLevel, RobertaProcessing, "
        "BertProcessing, Sequence)", type));
}

} // namespace archlens
