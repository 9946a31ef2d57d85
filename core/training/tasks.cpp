#include "training/tasks.h"

#include <algorithm>
#include <cmath>
#include <fstream>

#include <fmt/format.h>

#include "base/error.h"
#include "ops/math.h"
#include "tokenizer/tokenizer.h"

namespace archlens::train {

namespace fs = std::filesystem;

namespace {

uint64_t mix(uint64_t a, uint64_t b, uint64_t tag)
{
    uint64_t s = a * 0x9E3779B97F4A7C15ull ^ (b + 0x632BE59BD9B4E019ull) * 0xBF58476D1CE4E5B9ull ^ tag;
    splitmix64(s);
    return splitmix64(s);
}

int64_t randBelow(uint64_t& rng, int64_t n) { return int64_t(uniform01(rng) * double(n)) % n; }

void check(bool ok, const std::string& what)
{
    if (!ok)
        throw Error(ErrorCode::InvalidArgument, what);
}

class SelectiveCopy : public Task {
public:
    explicit SelectiveCopy(SelectiveCopyParams p)
        : m_p(p)
    {
        check(p.symbols >= 2, "selective-copy needs at least 2 symbols");
        check(p.dataTokens >= 1 && p.dataTokens <= p.length,
              fmt::format("selective-copy needs 1 ≤ data tokens ({}) ≤ length ({})", p.dataTokens, p.length));
    }
    std::string name() const override { return "selective-copy"; }
    int64_t vocabSize() const override { return m_p.symbols + 2; }
    int64_t sequenceLength() const override { return m_p.length + m_p.dataTokens; }
    Batch batch(uint64_t seed, int64_t B, bool) const override
    {
        Batch b;
        b.B = B;
        b.T = sequenceLength();
        b.ids.resize(size_t(B * b.T));
        b.targets.assign(size_t(B * b.T), -1);
        uint64_t rng = seed;
        const int64_t L = m_p.length, M = m_p.dataTokens;
        std::vector<int64_t> pos(static_cast<size_t>(L));
        std::vector<int32_t> seq(size_t(L + 1 + M));
        for (int64_t s = 0; s < B; ++s) {
            for (int64_t i = 0; i < L; ++i)
                pos[size_t(i)] = i;
            for (int64_t i = 0; i < M; ++i) // partial Fisher-Yates: M distinct positions
                std::swap(pos[size_t(i)], pos[size_t(i + randBelow(rng, L - i))]);
            std::sort(pos.begin(), pos.begin() + M);
            std::fill(seq.begin(), seq.end(), 0);
            for (int64_t i = 0; i < M; ++i) {
                const int32_t sym = int32_t(2 + randBelow(rng, m_p.symbols));
                seq[size_t(pos[size_t(i)])] = sym;
                seq[size_t(L + 1 + i)] = sym;
            }
            seq[size_t(L)] = 1;
            int32_t* ids = b.ids.data() + s * b.T;
            int32_t* tg = b.targets.data() + s * b.T;
            for (int64_t t = 0; t < b.T; ++t) {
                ids[t] = seq[size_t(t)];
                if (t >= L)
                    tg[t] = seq[size_t(t + 1)];
            }
        }
        return b;
    }
    nlohmann::ordered_json toJson() const override
    {
        return {{"task", name()},
                {"length", m_p.length},
                {"data_tokens", m_p.dataTokens},
                {"symbols", m_p.symbols},
                {"vocab_size", vocabSize()},
                {"sequence_length", sequenceLength()},
                {"token_ids", {{"noise", 0}, {"marker", 1}, {"first_symbol", 2}}},
                {"metric", "fraction of sequences whose data tokens are all reproduced exactly after the marker"}};
    }

private:
    SelectiveCopyParams m_p;
};

class Induction : public Task {
public:
    explicit Induction(InductionParams p)
        : m_p(p)
    {
        check(p.symbols >= 2, "induction needs at least 2 symbols");
        check(p.length >= 4, "induction needs a length of at least 4");
    }
    std::string name() const override { return "induction"; }
    int64_t vocabSize() const override { return m_p.symbols + 2; }
    int64_t sequenceLength() const override { return m_p.length + 1; }
    Batch batch(uint64_t seed, int64_t B, bool) const override
    {
        Batch b;
        b.B = B;
        b.T = sequenceLength();
        b.ids.resize(size_t(B * b.T));
        b.targets.assign(size_t(B * b.T), -1);
        uint64_t rng = seed;
        const int64_t L = m_p.length;
        for (int64_t s = 0; s < B; ++s) {
            int32_t* ids = b.ids.data() + s * b.T;
            for (int64_t t = 0; t < L; ++t)
                ids[t] = int32_t(2 + randBelow(rng, m_p.symbols));
            const int64_t p = randBelow(rng, L - 2); // trigger at p, value at p + 1 < L − 1
            const int32_t value = int32_t(2 + randBelow(rng, m_p.symbols));
            ids[p] = 1;
            ids[p + 1] = value;
            ids[L] = 1;
            b.targets[size_t(s * b.T + L)] = value;
        }
        return b;
    }
    nlohmann::ordered_json toJson() const override
    {
        return {{"task", name()},
                {"length", m_p.length},
                {"symbols", m_p.symbols},
                {"vocab_size", vocabSize()},
                {"sequence_length", sequenceLength()},
                {"token_ids", {{"trigger", 1}, {"first_symbol", 2}}},
                {"metric", "fraction of sequences whose final trigger is followed by the value it preceded earlier"}};
    }

private:
    InductionParams m_p;
};

class Text : public Task {
public:
    Text(std::vector<int32_t> tokens, int64_t vocab, int64_t context, std::string path)
        : m_tokens(std::move(tokens))
        , m_vocab(vocab)
        , m_context(context)
        , m_path(std::move(path))
    {
        check(context >= 2, "text context must be at least 2 tokens");
        const int64_t n = int64_t(m_tokens.size());
        m_split = n - std::max<int64_t>(context + 1, n / 10);
        if (m_split < context + 1)
            throw Error(ErrorCode::InvalidArgument,
                        fmt::format("the text has {} tokens: too few for a context of {} plus a held-out tenth", n,
                                    context),
                        m_path, "use a longer text or a smaller --context");
    }
    std::string name() const override { return "text"; }
    int64_t vocabSize() const override { return m_vocab; }
    int64_t sequenceLength() const override { return m_context; }
    bool reportsAccuracy() const override { return false; }
    Batch batch(uint64_t seed, int64_t B, bool heldOut) const override
    {
        Batch b;
        b.B = B;
        b.T = m_context;
        b.ids.resize(size_t(B * b.T));
        b.targets.resize(size_t(B * b.T));
        uint64_t rng = seed;
        const int64_t begin = heldOut ? m_split : 0;
        const int64_t end = heldOut ? int64_t(m_tokens.size()) : m_split;
        const int64_t starts = end - begin - m_context; // windows of context + 1 tokens
        for (int64_t s = 0; s < B; ++s) {
            const int64_t st = begin + randBelow(rng, std::max<int64_t>(1, starts));
            for (int64_t t = 0; t < m_context; ++t) {
                b.ids[size_t(s * b.T + t)] = m_tokens[size_t(st + t)];
                b.targets[size_t(s * b.T + t)] = m_tokens[size_t(st + t + 1)];
            }
        }
        return b;
    }
    nlohmann::ordered_json toJson() const override
    {
        return {{"task", name()},
                {"data", m_path},
                {"context", m_context},
                {"vocab_size", m_vocab},
                {"sequence_length", m_context},
                {"tokens", int64_t(m_tokens.size())},
                {"held_out_from_token", m_split},
                {"metric", "mean next-token cross-entropy (nats) and perplexity on the held-out last tenth"}};
    }

private:
    std::vector<int32_t> m_tokens;
    int64_t m_vocab, m_context;
    std::string m_path;
    int64_t m_split = 0;
};

// Token windows of a corpus, one domain per window (see tasks.h).
class Corpus : public Task {
public:
    using Domains = std::vector<std::shared_ptr<const CorpusDomainTokens>>;
    Corpus(Domains domains, int64_t vocab, int64_t context, std::string path)
        : m_domains(std::move(domains))
        , m_vocab(vocab)
        , m_context(context)
        , m_path(std::move(path))
    {
        check(context >= 2, "text context must be at least 2 tokens");
        if (m_domains.empty())
            throw Error(ErrorCode::InvalidArgument, "the corpus has no domains", m_path);
        double total = 0;
        for (const auto& d : m_domains) {
            if (int64_t(d->train.size()) < context + 1)
                throw Error(ErrorCode::InvalidArgument,
                            fmt::format("domain '{}' has {} training tokens: too few for a context of {}", d->name,
                                        d->train.size(), context),
                            m_path, "use a smaller --context");
            total += std::sqrt(double(d->train.size()));
            m_cumulative.push_back(total);
        }
        for (double& c : m_cumulative)
            c /= total;
    }
    std::string name() const override { return "text"; }
    int64_t vocabSize() const override { return m_vocab; }
    int64_t sequenceLength() const override { return m_context; }
    bool reportsAccuracy() const override { return false; }
    Batch batch(uint64_t seed, int64_t B, bool heldOut) const override
    {
        Batch b;
        b.B = B;
        b.T = m_context;
        b.ids.resize(size_t(B * b.T));
        b.targets.assign(size_t(B * b.T), -1);
        uint64_t rng = seed;
        for (int64_t s = 0; s < B; ++s) {
            const double u = uniform01(rng);
            size_t d = 0;
            while (d + 1 < m_domains.size() && u >= m_cumulative[d])
                ++d;
            const auto& toks = heldOut ? m_domains[d]->heldOut : m_domains[d]->train;
            if (toks.size() < 2)
                throw Error(ErrorCode::InvalidArgument,
                            fmt::format("domain '{}' has no held-out text (heldout.txt) to evaluate on",
                                        m_domains[d]->name),
                            m_path);
            // A held-out part shorter than the context gives one shorter window (the rest of
            // the row is padding that counts nothing).
            const int64_t len = std::min<int64_t>(m_context, int64_t(toks.size()) - 1);
            const int64_t starts = int64_t(toks.size()) - len;
            const int64_t st = randBelow(rng, std::max<int64_t>(1, starts));
            for (int64_t t = 0; t < m_context; ++t) {
                b.ids[size_t(s * b.T + t)] = t < len ? toks[size_t(st + t)] : 0;
                if (t < len)
                    b.targets[size_t(s * b.T + t)] = toks[size_t(st + t + 1)];
            }
        }
        return b;
    }
    nlohmann::ordered_json toJson() const override
    {
        nlohmann::ordered_json doms = nlohmann::ordered_json::array();
        for (size_t d = 0; d < m_domains.size(); ++d)
            doms.push_back({{"name", m_domains[d]->name},
                            {"train_tokens", int64_t(m_domains[d]->train.size())},
                            {"held_out_tokens", int64_t(m_domains[d]->heldOut.size())},
                            {"sampling_share", m_cumulative[d] - (d ? m_cumulative[d - 1] : 0.0)}});
        return {{"task", name()},
                {"data", m_path},
                {"context", m_context},
                {"vocab_size", m_vocab},
                {"sequence_length", m_context},
                {"domains", doms},
                {"metric", "mean next-token cross-entropy (nats) and perplexity on each domain's heldout.txt"}};
    }
    std::vector<std::string> domains() const override
    {
        std::vector<std::string> names;
        for (const auto& d : m_domains)
            names.push_back(d->name);
        return names;
    }
    std::unique_ptr<Task> domainTask(size_t d) const override
    {
        if (d >= m_domains.size())
            throw Error(ErrorCode::InvalidArgument, fmt::format("no domain {} in the corpus", d), m_path);
        return std::make_unique<Corpus>(Domains{m_domains[d]}, m_vocab, m_context, m_path);
    }

private:
    Domains m_domains;
    std::vector<double> m_cumulative; // sampling distribution over domains
    int64_t m_vocab, m_context;
    std::string m_path;
};

class PromptCompletionTask : public Task {
public:
    PromptCompletionTask(std::vector<PromptCompletion> ex, int64_t vocab, int32_t pad, std::string path)
        : m_ex(std::move(ex))
        , m_vocab(vocab)
        , m_pad(pad)
        , m_path(std::move(path))
    {
        if (m_ex.empty())
            throw Error(ErrorCode::InvalidArgument, "no prompt/completion examples", m_path);
        for (const auto& e : m_ex) {
            if (e.completion.empty())
                throw Error(ErrorCode::InvalidArgument, "an example has an empty completion", m_path);
            m_maxLen = std::max<int64_t>(m_maxLen, int64_t(e.prompt.size() + e.completion.size()) - 1);
        }
        m_split = m_ex.size() >= 10 ? int64_t(m_ex.size()) - int64_t(m_ex.size()) / 10 : int64_t(m_ex.size());
    }
    std::string name() const override { return "prompt-completion"; }
    int64_t vocabSize() const override { return m_vocab; }
    int64_t sequenceLength() const override { return m_maxLen; }
    bool reportsAccuracy() const override { return false; }
    Batch batch(uint64_t seed, int64_t B, bool heldOut) const override
    {
        uint64_t rng = seed;
        const int64_t begin = heldOut && m_split < int64_t(m_ex.size()) ? m_split : 0;
        const int64_t end = heldOut ? int64_t(m_ex.size()) : m_split;
        std::vector<const PromptCompletion*> pick;
        int64_t T = 1;
        for (int64_t s = 0; s < B; ++s) {
            pick.push_back(&m_ex[size_t(begin + randBelow(rng, end - begin))]);
            T = std::max<int64_t>(T, int64_t(pick.back()->prompt.size() + pick.back()->completion.size()) - 1);
        }
        Batch b;
        b.B = B;
        b.T = T;
        b.ids.assign(size_t(B * T), m_pad);
        b.targets.assign(size_t(B * T), -1);
        for (int64_t s = 0; s < B; ++s) {
            std::vector<int32_t> seq = pick[size_t(s)]->prompt;
            seq.insert(seq.end(), pick[size_t(s)]->completion.begin(), pick[size_t(s)]->completion.end());
            const int64_t firstTarget = int64_t(pick[size_t(s)]->prompt.size()); // index in seq
            for (int64_t t = 0; t + 1 < int64_t(seq.size()); ++t) {
                b.ids[size_t(s * T + t)] = seq[size_t(t)];
                if (t + 1 >= firstTarget)
                    b.targets[size_t(s * T + t)] = seq[size_t(t + 1)];
            }
        }
        return b;
    }
    nlohmann::ordered_json toJson() const override
    {
        return {{"task", "prompt-completion"}, {"data", m_path}, {"examples", int64_t(m_ex.size())},
                {"vocab_size", m_vocab}, {"metric", "mean cross-entropy of the completion tokens"}};
    }

private:
    std::vector<PromptCompletion> m_ex;
    int64_t m_vocab;
    int32_t m_pad;
    std::string m_path;
    int64_t m_maxLen = 1, m_split = 0;
};

std::string readAll(const fs::path& p)
{
    std::ifstream f(p, std::ios::binary);
    if (!f)
        throw Error(ErrorCode::Io, "cannot open file", p.string());
    return std::string(std::istreambuf_iterator<char>(f), {});
}

} // namespace

std::unique_ptr<Task> Task::domainTask(size_t) const
{
    throw Error(ErrorCode::InvalidArgument, fmt::format("the {} task has no domains", name()));
}

bool isCorpusFolder(const fs::path& dir)
{
    std::error_code ec;
    if (!fs::is_directory(dir, ec))
        return false;
    for (const auto& e : fs::directory_iterator(dir, ec))
        if (e.is_directory() && fs::is_regular_file(e.path() / "train.txt"))
            return true;
    return false;
}

std::vector<CorpusDomainText> readCorpusFolder(const fs::path& dir)
{
    std::vector<fs::path> subs;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(dir, ec))
        if (e.is_directory() && fs::is_regular_file(e.path() / "train.txt"))
            subs.push_back(e.path());
    if (ec)
        throw Error(ErrorCode::Io, fmt::format("cannot list the folder: {}", ec.message()), dir.string());
    if (subs.empty())
        throw Error(ErrorCode::InvalidArgument, "no domain subfolder with a train.txt", dir.string(),
                    "a corpus folder holds one subfolder per domain, each with train.txt and heldout.txt");
    std::sort(subs.begin(), subs.end());
    std::vector<CorpusDomainText> out;
    for (const auto& s : subs) {
        CorpusDomainText d;
        d.name = s.filename().string();
        d.train = readAll(s / "train.txt");
        if (fs::exists(s / "heldout.txt"))
            d.heldOut = readAll(s / "heldout.txt");
        out.push_back(std::move(d));
    }
    return out;
}

std::vector<CorpusDomainTokens> tokenizeCorpus(const std::vector<CorpusDomainText>& texts, const Tokenizer& tok)
{
    std::vector<CorpusDomainTokens> out;
    for (const auto& d : texts)
        out.push_back({d.name, tok.encode(d.train, false), tok.encode(d.heldOut, false)});
    return out;
}

std::unique_ptr<Task> makeCorpusTask(std::vector<CorpusDomainTokens> domains, int64_t vocab, int64_t context,
                                     const std::string& dataPath)
{
    Corpus::Domains ds;
    for (auto& d : domains)
        ds.push_back(std::make_shared<const CorpusDomainTokens>(std::move(d)));
    return std::make_unique<Corpus>(std::move(ds), vocab, context, dataPath);
}

std::unique_ptr<Task> makeSelectiveCopyTask(const SelectiveCopyParams& p) { return std::make_unique<SelectiveCopy>(p); }
std::unique_ptr<Task> makeInductionTask(const InductionParams& p) { return std::make_unique<Induction>(p); }
std::unique_ptr<Task> makeTextTask(std::vector<int32_t> tokens, int64_t vocab, int64_t context,
                                   const std::string& dataPath)
{
    return std::make_unique<Text>(std::move(tokens), vocab, context, dataPath);
}

std::unique_ptr<Task> makePromptCompletionTask(std::vector<PromptCompletion> examples, int64_t vocab, int32_t pad,
                                               const std::string& dataPath)
{
    return std::make_unique<PromptCompletionTask>(std::move(examples), vocab, pad, dataPath);
}

std::unique_ptr<Task> taskFromJson(const nlohmann::json& j, const fs::path& modelDir, const std::string& dataOverride)
{
    const std::string kind = j.value("task", "");
    try {
        if (kind == "selective-copy")
            return makeSelectiveCopyTask({j.at("length").get<int64_t>(), j.at("data_tokens").get<int64_t>(),
                                          j.at("symbols").get<int64_t>()});
        if (kind == "induction")
            return makeInductionTask({j.at("length").get<int64_t>(), j.at("symbols").get<int64_t>()});
        if (kind == "text") {
            std::string data = dataOverride.empty() ? j.at("data").get<std::string>() : dataOverride;
            if (dataOverride.empty() && fs::path(data).is_relative())
                data = (modelDir / data).lexically_normal().string();
            const Tokenizer tok = Tokenizer::fromFile(modelDir);
            if (isCorpusFolder(data)) {
                return makeCorpusTask(tokenizeCorpus(readCorpusFolder(data), tok), j.at("vocab_size").get<int64_t>(),
                                      j.at("context").get<int64_t>(), j.at("data").get<std::string>());
            }
            return makeTextTask(tok.encode(readAll(data), false), j.at("vocab_size").get<int64_t>(),
                                j.at("context").get<int64_t>(), data);
        }
    } catch (const nlohmann::json::exception& e) {
        throw Error(ErrorCode::Format, fmt::format("bad task description: {}", e.what()),
                    (modelDir / "archlens_task.json").string());
    }
    throw Error(ErrorCode::Unsupported, fmt::format("unknown task '{}'", kind),
                (modelDir / "archlens_task.json").string(), "expected selective-copy, induction or text");
}

std::unique_ptr<Task> loadTask(const fs::path& modelDir, const std::string& dataOverride)
{
    const fs::path p = modelDir / "archlens_task.json";
    nlohmann::json j;
    try {
        j = nlohmann::json::parse(readAll(p));
    } catch (const nlohmann::json::exception& e) {
        throw Error(ErrorCode::Format, fmt::format("invalid JSON: {}", e.what()), p.string());
    }
    return taskFromJson(j, modelDir, dataOverride);
}

std::string symbolicTokenizerJson(int64_t vocab)
{
    const std::string chars = ".|abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    if (vocab > int64_t(chars.size()))
        return {};
    nlohmann::ordered_json v = nlohmann::ordered_json::object();
    for (int64_t i = 0; i < vocab; ++i)
        v[std::string(1, chars[size_t(i)])] = i;
    nlohmann::ordered_json tok = {
        {"version", "1.0"},
        {"truncation", nullptr},
        {"padding", nullptr},
        {"added_tokens", nlohmann::json::array()},
        {"normalizer", nullptr},
        {"pre_tokenizer", nullptr},
        {"post_processor", nullptr},
        {"decoder", {{"type", "Fuse"}}},
        {"model",
         {{"type", "BPE"}, {"dropout", nullptr}, {"unk_token", nullptr}, {"continuing_subword_prefix", nullptr},
          {"end_of_word_suffix", nullptr}, {"fuse_unk", false}, {"byte_fallback", false}, {"ignore_merges", false},
          {"vocab", v}, {"merges", nlohmann::json::array()}}},
    };
    return tok.dump(2) + "\n";
}

uint64_t stepSeed(uint64_t seed, int64_t step) { return mix(seed, uint64_t(step), 0x7261696eull); }
uint64_t evalSeed(uint64_t seed, int64_t batchIndex) { return mix(seed, uint64_t(batchIndex), 0x6576616cull); }

} // namespace archlens::train
