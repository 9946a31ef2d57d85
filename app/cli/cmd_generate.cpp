// archlens-cli generate: prefill, then stream new tokens as they are sampled.
#include <cstdio>

#include <fmt/format.h>

#include "common.h"
#include "run_options.h"
#include "runtime/generator.h"

namespace archlens::cli {

namespace {

// Streams decoded text: prints the new suffix of decode(all new ids), holding back while
// the text ends in an incomplete UTF-8 sequence (shown as U+FFFD).
class TextStreamer {
public:
    explicit TextStreamer(const Tokenizer& tok)
        : m_tok(tok)
    {
    }
    void push(int32_t id)
    {
        m_ids.push_back(id);
        const std::string text = m_tok.decode(m_ids, false);
        static const std::string kReplacement = "\xEF\xBF\xBD";
        if (text.size() >= 3 && text.compare(text.size() - 3, 3, kReplacement) == 0)
            return; // wait for the rest of the character
        if (text.size() > m_printed) {
            std::fwrite(text.data() + m_printed, 1, text.size() - m_printed, stdout);
            m_printed = text.size();
            std::fflush(stdout);
        }
    }
    void finish()
    {
        const std::string text = m_tok.decode(m_ids, false);
        if (text.size() > m_printed)
            std::fwrite(text.data() + m_printed, 1, text.size() - m_printed, stdout);
        std::fputc('\n', stdout);
    }

private:
    const Tokenizer& m_tok;
    std::vector<int32_t> m_ids;
    size_t m_printed = 0;
};

} // namespace

void addGenerateCommand(CLI::App& app)
{
    auto* cmd = app.add_subcommand("generate", "Generate text (or ids) from a prompt, streaming tokens as they come");
    struct Opts {
        RunOptions run;
        int maxNew = 32;
        float temperature = 0.f;
        int topK = 0;
        float topP = 1.f;
        int64_t seed = 0;
        bool ids = false;
    };
    auto o = std::make_shared<Opts>();
    o->run.add(cmd, "auto");
    cmd->add_option("--max-new-tokens", o->maxNew, "Tokens to generate")->capture_default_str()->check(CLI::Range(0, 1 << 20));
    cmd->add_option("--temperature", o->temperature, "0 = greedy")->capture_default_str()->check(CLI::Range(0.f, 100.f));
    cmd->add_option("--top-k", o->topK, "Keep the k most likely tokens (0 = off)")->capture_default_str()->check(CLI::NonNegativeNumber);
    cmd->add_option("--top-p", o->topP, "Nucleus sampling mass (1 = off)")->capture_default_str()->check(CLI::Range(0.f, 1.f));
    cmd->add_option("--seed", o->seed, "Seed for sampling")->capture_default_str();
    cmd->add_flag("--ids", o->ids, "Print token ids instead of text");
    cmd->callback([o] {
        PreparedRun run = prepareRun(o->run);
        auto state = run.model->newState();
        GenerateOptions g;
        g.maxNewTokens = o->maxNew;
        g.sampling = {o->temperature, o->topK, o->topP};
        g.seed = uint64_t(o->seed);
        const bool asText = run.tokenizer && !o->ids;
        std::optional<TextStreamer> streamer;
        if (asText)
            streamer.emplace(*run.tokenizer);
        bool first = true;
        g.onToken = [&](int32_t id, const Tensor&) {
            if (streamer) {
                streamer->push(id);
            } else {
                fmt::print("{}{}", first ? "" : ",", id);
                std::fflush(stdout);
            }
            first = false;
            return true;
        };
        if (o->maxNew > 0)
            generate(*run.model, *state, run.ids, g);
        if (streamer)
            streamer->finish();
        else
            fmt::print("\n");
    });
}

} // namespace archlens::cli
