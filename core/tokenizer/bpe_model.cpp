#include "tokenizer/bpe_model.h"

#include <queue>

#include "tokenizer/json_cursor.h"
#include "tokenizer/unicode.h"

namespace archlens {

std::unique_ptr<BpeModel> BpeModel::fromJson(const JsonCursor& json)
{
    json.expectObject();
    if (json.has("type")) {
        const std::string type = json.typeTag();
        if (type != "BPE")
            json["type"].failUnsupported(fmt::format("unsupported model type '{}' (only BPE is supported)", type));
    } else if (!json.has("merges")) {
        json.failUnsupported("model has no \"type\" and no \"merges\"; only BPE models are supported");
    }
    auto model = std::unique_ptr<BpeModel>(new BpeModel());
    model->m_source = json.source();

    if (auto d = json.optional("dropout")) {
        if (!d->value().is_number())
            d->fail("expected a number or null");
    }
    if (auto u = json.optional("unk_token"))
        model->m_unkToken = u->asString();
    if (auto p = json.optional("continuing_subword_prefix"))
        model->m_continuingSubwordPrefix = p->asString();
    if (auto s = json.optional("end_of_word_suffix"))
        model->m_endOfWordSuffix = s->asString();
    model->m_fuseUnk = json.boolOr("fuse_unk", false);
    model->m_byteFallback = json.boolOr("byte_fallback", false);
    model->m_ignoreMerges = json.boolOr("ignore_merges", false);

    const JsonCursor vocab = json["vocab"];
    vocab.expectObject();
    model->m_vocab.reserve(vocab.value().size());
    for (const auto& [token, idValue] : vocab.value().items()) {
        const JsonCursor idCursor(idValue, vocab.path() + "[\"" + token + "\"]", json.source());
        const int64_t id = idCursor.asInt();
        if (id < 0 || id > INT32_MAX)
            idCursor.fail(fmt::format("token id {} is out of range", id));
        const auto id32 = static_cast<int32_t>(id);
        model->m_vocab[token] = id32;
        model->m_vocabR[id32] = token;
        model->m_maxId = std::max(model->m_maxId, id32);
    }

    const JsonCursor merges = json["merges"];
    const size_t prefixLen = model->m_continuingSubwordPrefix ? model->m_continuingSubwordPrefix->size() : 0;
    model->m_merges.reserve(merges.size());
    uint32_t rank = 0;
    for (size_t i = 0; i < merges.size(); ++i) {
        const JsonCursor m = merges.at(i);
        std::string a, b;
        if (m.value().is_string()) {
            const std::string line = m.asString();
            if (line.rfind("#version", 0) == 0)
                continue;
            const size_t sp = line.find(' ');
            if (sp == std::string::npos || line.find(' ', sp + 1) != std::string::npos)
                m.fail(fmt::format("expected \"left right\" (exactly one space), got '{}'", line));
            a = line.substr(0, sp);
            b = line.substr(sp + 1);
        } else if (m.value().is_array()) {
            if (m.size() != 2)
                m.fail(fmt::format("expected a pair [\"left\", \"right\"], got {} elements", m.size()));
            a = m.at(0).asString();
            b = m.at(1).asString();
        } else {
            m.fail(fmt::format("expected \"left right\" or [\"left\", \"right\"], got {}", m.value().type_name()));
        }
        const auto ia = model->m_vocab.find(a);
        if (ia == model->m_vocab.end())
            m.fail(fmt::format("merge token '{}' is not in model.vocab", a));
        const auto ib = model->m_vocab.find(b);
        if (ib == model->m_vocab.end())
            m.fail(fmt::format("merge token '{}' is not in model.vocab", b));
        if (b.size() < prefixLen)
            m.fail(fmt::format("merge token '{}' is shorter than continuing_subword_prefix", b));
        const std::string merged = a + b.substr(prefixLen);
        const auto im = model->m_vocab.find(merged);
        if (im == model->m_vocab.end())
            m.fail(fmt::format("merge result '{}' (of '{}' + '{}') is not in model.vocab", merged, a, b));
        // A repeated pair keeps its last rank, as the reference's map insertion does.
        model->m_merges[pairKey(ia->second, ib->second)] = MergeInfo{rank, im->second};
        ++rank;
    }

    model->m_haveAllByteIds = true;
    for (int byte = 0; byte < 256; ++byte) {
        const auto it = model->m_vocab.find(fmt::format("<0x{:02X}>", byte));
        model->m_byteIds[byte] = it == model->m_vocab.end() ? -1 : it->second;
        if (it == model->m_vocab.end())
            model->m_haveAllByteIds = false;
    }
    return model;
}

std::optional<int32_t> BpeModel::tokenToId(std::string_view token) const
{
    const auto it = m_vocab.find(token);
    if (it == m_vocab.end())
        return std::nullopt;
    return it->second;
}

const std::string* BpeModel::idToToken(int32_t id) const
{
    const auto it = m_vocabR.find(id);
    return it == m_vocabR.end() ? nullptr : &it->second;
}

int32_t BpeModel::unkId() const
{
    const auto it = m_vocab.find(*m_unkToken);
    if (it == m_vocab.end())
        throw Error(ErrorCode::Format,
                    fmt::format("field 'model.unk_token': '{}' is not in model.vocab, but the text has "
                                "characters that need it", *m_unkToken),
                    m_source);
    return it->second;
}

void BpeModel::tokenize(std::string_view word, std::vector<int32_t>& out) const
{
    if (word.empty())
        return;
    if (m_ignoreMerges) {
        if (const auto it = m_vocab.find(word); it != m_vocab.end()) {
            out.push_back(it->second);
            return;
        }
    }

    struct Symbol {
        int32_t id;
        int32_t prev;
        int32_t next;
        bool removed;
    };
    std::vector<Symbol> symbols;
    symbols.reserve(word.size());
    auto add = [&](int32_t id) {
        const auto n = static_cast<int32_t>(symbols.size());
        symbols.push_back(Symbol{id, n - 1, -1, false});
        if (n > 0)
            symbols[static_cast<size_t>(n - 1)].next = n;
    };

    // Pending unknown run (the reference emits it lazily so that fuse_unk can extend it).
    bool pendingUnk = false;
    std::string key;
    for (size_t pos = 0; pos < word.size();) {
        const size_t len = unicode::charLength(static_cast<unsigned char>(word[pos]));
        const bool isFirst = pos == 0;
        const bool isLast = pos + len >= word.size();
        key.clear();
        if (!isFirst && m_continuingSubwordPrefix)
            key += *m_continuingSubwordPrefix;
        key.append(word.substr(pos, len));
        if (isLast && m_endOfWordSuffix)
            key += *m_endOfWordSuffix;
        pos += len;

        if (const auto it = m_vocab.find(key); it != m_vocab.end()) {
            if (pendingUnk) {
                add(unkId());
                pendingUnk = false;
            }
            add(it->second);
            continue;
        }
        if (m_byteFallback) {
            bool all = true;
            for (char c : key)
                all = all && m_byteIds[static_cast<unsigned char>(c)] >= 0;
            if (all) {
                for (char c : key)
                    add(m_byteIds[static_cast<unsigned char>(c)]);
                continue;
            }
        }
        if (m_unkToken) {
            if (pendingUnk && !m_fuseUnk)
                add(unkId());
            pendingUnk = true;
        }
    }
    if (pendingUnk)
        add(unkId());

    struct Candidate {
        uint32_t rank;
        int32_t pos;
        int32_t newId;
        bool operator>(const Candidate& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
    };
    std::priority_queue<Candidate, std::vector<Candidate>, std::greater<>> queue;
    auto pushPair = [&](int32_t leftPos) {
        const Symbol& l = symbols[static_cast<size_t>(leftPos)];
        if (l.next < 0)
            return;
        const auto it = m_merges.find(pairKey(l.id, symbols[static_cast<size_t>(l.next)].id));
        if (it != m_merges.end())
            queue.push(Candidate{it->second.rank, leftPos, it->second.newId});
    };
    for (int32_t i = 0; i + 1 < static_cast<int32_t>(symbols.size()); ++i)
        pushPair(i);

    while (!queue.empty()) {
        const Candidate top = queue.top();
        queue.pop();
        Symbol& left = symbols[static_cast<size_t>(top.pos)];
        if (left.removed || left.next < 0)
            continue;
        const int32_t rightPos = left.next;
        Symbol& right = symbols[static_cast<size_t>(rightPos)];
        const auto it = m_merges.find(pairKey(left.id, right.id));
        if (it == m_merges.end() || it->second.newId != top.newId)
            continue; // stale entry: one side changed since it was queued
        left.id = top.newId;
        right.removed = true;
        left.next = right.next;
        if (right.next >= 0)
            symbols[static_cast<size_t>(right.next)].prev = top.pos;
        if (left.prev >= 0)
            pushPair(left.prev);
        pushPair(top.pos);
    }
    for (const auto& s : symbols)
        if (!s.removed)
            out.push_back(s.id);
}

} // namespace archlens
