// archlens-cli route: expert routing statistics of a mixture-of-experts model over one or more
// corpora (text files or folders), in sequential chunks of at most --chunk tokens, written as a
// long-form CSV or an HDF5 report (core/analysis/route_report.h), with the balance readouts and
// the top tokens per expert printed as a summary.
#include <algorithm>
#include <cstdio>
#include <unistd.h>
#include <numeric>
#include <optional>
#include <set>

#include <fmt/format.h>

#include "analysis/route_report.h"
#include "backends/backend_factory.h"
#include "common.h"
#include "formats/atomic_file.h"
#include "formats/hf_cache.h"
#include "models/model.h"

namespace archlens::cli {

namespace {
bool endsWith(const std::string& s, const std::string& tail)
{
    return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}
// a token's text with newlines and tabs made visible, for one-line summaries
std::string visible(std::string s)
{
    std::string out;
    for (char c : s)
        out += c == '\n' ? "↵" : c == '\t' ? "⇥" : std::string(1, c);
    return out;
}
} // namespace

void addRouteCommand(CLI::App& app)
{
    auto* cmd = app.add_subcommand("route", "Expert routing statistics of an MoE model over corpora (CSV or HDF5)");
    struct Opts {
        std::string model, tokenizer, out, backend = "auto";
        std::vector<std::string> corpora;
        int64_t chunk = analysis::kDefaultRouteChunk, maxTokens = 0;
        int top = 5;
    };
    auto o = std::make_shared<Opts>();
    cmd->add_option("--model", o->model, "Model folder, or org/name in the Hugging Face cache")->required();
    cmd->add_option("--corpus", o->corpora, "A text file or a folder of text files (repeat for a second corpus)")
        ->required();
    cmd->add_option("--tokenizer", o->tokenizer, "tokenizer.json (or its folder) when the model folder has none");
    cmd->add_option("--out", o->out, "Output: stats.csv (corpus,layer,expert,count,share) or stats.h5")->required();
    cmd->add_option("--chunk", o->chunk, "Tokens per forward call (each chunk starts from a fresh state)")
        ->capture_default_str();
    cmd->add_option("--max-tokens", o->maxTokens, "Use at most this many tokens of each corpus (0: all)");
    cmd->add_option("--top", o->top, "Top tokens per expert in the printed summary")->capture_default_str();
    cmd->add_option("--backend", o->backend, "auto | cpu | cpu-reference | cuda")->capture_default_str();
    cmd->callback([o] {
        const bool h5 = endsWith(o->out, ".h5") || endsWith(o->out, ".hdf5");
        if (!h5 && !endsWith(o->out, ".csv"))
            throw makeError(ErrorCode::InvalidArgument, "--out '{}' must end in .csv or .h5", o->out);
        if (o->chunk <= 0)
            throw makeError(ErrorCode::InvalidArgument, "--chunk {} must be positive", o->chunk);
        const std::filesystem::path dir = resolveModelPath(o->model);
        std::optional<Tokenizer> tok;
        if (!o->tokenizer.empty()) {
            std::filesystem::path t = o->tokenizer;
            if (std::filesystem::is_directory(t))
                t /= "tokenizer.json";
            tok = Tokenizer::fromFile(t);
        } else {
            tok = tokenizerForModel(dir);
        }
        if (!tok)
            throw Error(ErrorCode::InvalidArgument, "this model folder has no tokenizer.json, so the corpus cannot be encoded",
                        dir.string(), "give one with --tokenizer FILE (its ids must fit the model's vocabulary)");
        BackendChoice choice = createBackend(o->backend);
        auto model = loadModel(dir, choice.backend);
        const ModelInfo& info = model->info();
        if (info.experts == 0)
            throw Error(ErrorCode::InvalidArgument, "this model has no mixture-of-experts layers", dir.string(),
                        "route needs a model with routed experts (Mixtral, OLMoE, Qwen2-MoE, Jamba)");

        std::vector<analysis::RouteAccumulator> accs(o->corpora.size());
        std::vector<analysis::NamedRoute> named;
        // corpus labels: the file or folder name; when two share it (code/heldout.txt and
        // de/heldout.txt), each gets its parent folder too
        auto normal = [](const std::string& c) {
            auto p = std::filesystem::absolute(c).lexically_normal();
            return p.has_filename() ? p : p.parent_path(); // "code/" -> "code"
        };
        std::vector<std::string> names;
        for (const auto& c : o->corpora)
            names.push_back(normal(c).filename().string());
        for (size_t i = 0; i < names.size(); ++i)
            if (std::count(names.begin(), names.end(), names[i]) > 1) {
                const std::string shared = names[i];
                for (size_t j = 0; j < names.size(); ++j)
                    if (names[j] == shared) {
                        const auto abs = normal(o->corpora[j]);
                        names[j] = (abs.parent_path().filename() / abs.filename()).string();
                    }
            }
        for (size_t i = 0; i < names.size(); ++i)
            for (size_t j = 0; j < i; ++j)
                if (names[j] == names[i])
                    names[i] += "-" + std::to_string(i + 1);
        for (size_t i = 0; i < o->corpora.size(); ++i) {
            const std::filesystem::path src = o->corpora[i];
            std::vector<int32_t> ids;
            for (const auto& [file, text] : analysis::readCorpus(src)) {
                const auto part = tok->encode(text, false);
                ids.insert(ids.end(), part.begin(), part.end());
                if (o->maxTokens > 0 && int64_t(ids.size()) >= o->maxTokens)
                    break;
            }
            if (o->maxTokens > 0 && int64_t(ids.size()) > o->maxTokens)
                ids.resize(size_t(o->maxTokens));
            const std::string name = names[i];
            // progress on a terminal only (a log or a test's captured stderr stays clean)
            const bool tty = isatty(fileno(stderr));
            int lastPct = -1;
            analysis::routeTokens(*model, ids, accs[i], o->chunk, [&](int64_t done, int64_t total) {
                const int pct = int(100 * done / std::max<int64_t>(total, 1));
                if (tty && pct != lastPct)
                    std::fprintf(stderr, "\r%s: %d%% of %lld tokens", name.c_str(), pct, (long long)total);
                lastPct = pct;
                return true;
            });
            if (tty)
                std::fprintf(stderr, "\n");
            named.push_back({name, src.string(), &accs[i]});
        }
        if (h5)
            analysis::writeRouteH5(o->out, named);
        else
            writeFileAtomic(o->out, analysis::routeCsv(named));

        for (const auto& c : named) {
            fmt::print("{}: {} tokens in {} chunks\n", c.name, c.route->tokens(), c.route->chunks());
            for (const auto& [l, L] : c.route->layers()) {
                const auto b = c.route->balance(l);
                fmt::print("  layer {}: cv {:.3f}, max violation {:.3f}, mean router entropy {:.3f} nats, "
                           "load-balancing loss {:.4f}{}\n",
                           l, b.cv, b.maxViolation, b.meanEntropy, b.loadBalancingLoss,
                           b.collapse() ? "  WARNING: " + b.warning() : std::string());
                for (int64_t e = 0; e < L.experts && o->top > 0; ++e) {
                    std::string toks;
                    for (const auto& [id, n] : c.route->topTokens(l, e, size_t(o->top)))
                        toks += fmt::format("{}'{}'×{}", toks.empty() ? "" : " ", visible(tokenDisplay(tok, id)), n);
                    fmt::print("    expert {}: {} picks; top tokens {}\n", e, L.counts[size_t(e)], toks);
                }
            }
        }
        // How differently the corpora are routed: Jensen-Shannon divergence of expert loads.
        for (size_t i = 0; i < named.size(); ++i)
            for (size_t j = i + 1; j < named.size(); ++j)
                for (const auto& [l, L] : named[i].route->layers()) {
                    const auto other = named[j].route->layers().find(l);
                    if (other == named[j].route->layers().end() || other->second.counts.size() != L.counts.size())
                        continue;
                    const int64_t na = std::accumulate(L.counts.begin(), L.counts.end(), int64_t(0));
                    const int64_t nb =
                        std::accumulate(other->second.counts.begin(), other->second.counts.end(), int64_t(0));
                    if (na == 0 || nb == 0)
                        continue;
                    fmt::print("JSD({}, {}) layer {}: {:.4f} bits\n", named[i].name, named[j].name, l,
                               analysis::jensenShannonBits(L.counts, other->second.counts));
                }
        fmt::print("wrote {}\n", o->out);
    });
}

} // namespace archlens::cli
