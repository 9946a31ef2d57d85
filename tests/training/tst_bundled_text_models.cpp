// The bundled text models (resources/models/{mamba,llama,mixtral,jamba}-text*): trained cards with
// per-domain held-out perplexity, the app's loader agrees with the training model, a fresh
// held-out evaluation reproduces the card's perplexity, the size-matched pair is size-matched,
// and the MoE model's experts specialise by domain (Jensen-Shannon divergence of two domains'
// expert loads at least 0.1 bits in some layer, as its card reports).
#include <fstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "analysis/moe_analysis.h"
#include "analysis/route_report.h"
#include "backends/backend_factory.h"
#include "models/model.h"
#include "tokenizer/tokenizer.h"
#include "training/trainer.h"

using namespace archlens;
using namespace archlens::train;
namespace fs = std::filesystem;

namespace {

const fs::path kModels = fs::path(ARCHLENS_SOURCE_DIR) / "resources/models";
const std::vector<std::string> kTextModels = {"mamba-text", "llama-text", "mixtral-text-moe", "jamba-text"};

nlohmann::json readJson(const fs::path& p)
{
    std::ifstream f(p);
    return nlohmann::json::parse(f);
}

// The corpus task, tokenized once: every text model shares the tokenizer (checked below).
const Task& corpusTask()
{
    static std::unique_ptr<Task> task = loadTask(kModels / "mamba-text");
    return *task;
}

std::string slurp(const fs::path& p)
{
    std::ifstream f(p, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(f), {});
}

} // namespace

TEST(BundledTextModels, CardsAndSharedTokenizer)
{
    const std::string tok = slurp(kModels / "mamba-text" / "tokenizer.json");
    for (const auto& name : kTextModels) {
        SCOPED_TRACE(name);
        const fs::path dir = kModels / name;
        ASSERT_TRUE(fs::exists(dir / "model.safetensors")) << dir;
        const auto card = readJson(dir / "archlens_card.json");
        EXPECT_EQ(card["trained"], true);
        EXPECT_EQ(card["task"]["task"], "text");
        EXPECT_EQ(card["task"]["domains"].size(), 6u);
        EXPECT_EQ(card["metrics"]["held_out_by_domain"].size(), 6u);
        EXPECT_FALSE(card["command"].get<std::string>().empty());
        EXPECT_TRUE(fs::exists(dir / "README.md"));
        EXPECT_EQ(slurp(dir / "tokenizer.json"), tok) << "the text models share one tokenizer";
        EXPECT_FALSE(fs::exists(dir / "optimizer.safetensors")) << "training state is not bundled";
    }
    // size-matched within 1%
    const double pm = readJson(kModels / "mamba-text/archlens_card.json")["size"]["parameters"].get<double>();
    const double pl = readJson(kModels / "llama-text/archlens_card.json")["size"]["parameters"].get<double>();
    EXPECT_NEAR(pl / pm, 1.0, 0.01);
}

TEST(BundledTextModels, AppLoaderAgreesAndHeldOutPerplexityMatchesTheCard)
{
    const Tokenizer tok = Tokenizer::fromFile(kModels / "mamba-text");
    const auto ids = tok.encode("The grep command searches the named input files", false);
    ThreadPool pool(2);
    for (const auto& name : kTextModels) {
        SCOPED_TRACE(name);
        const fs::path dir = kModels / name;
        const auto trainModel = loadTrainModel(dir);
        const auto model = loadModel(dir, createBackend("cpu-reference").backend);
        // the app's forward and the training model's forward give the same logits
        auto state = model->newState();
        const Tensor logits = model->forward(ids, *state, nullptr, ForwardMode::Chunk, false); // (1, V)
        const auto ref = trainModel->logits(ids.data(), int64_t(ids.size()));
        const int64_t V = trainModel->vocabSize();
        ASSERT_EQ(int64_t(ref.size()), int64_t(ids.size()) * V);
        const float* got = logits.f32(); // the last position
        double maxErr = 0, maxAbs = 0;
        for (int64_t v = 0; v < V; ++v) {
            maxErr = std::max(maxErr, double(std::abs(got[v] - ref[size_t((int64_t(ids.size()) - 1) * V + v)])));
            maxAbs = std::max(maxAbs, double(std::abs(got[v])));
        }
        EXPECT_LT(maxErr, 1e-4 * std::max(1.0, maxAbs));
        // Fresh held-out windows (another seed than the card's) land near the card's loss: the
        // windows' losses spread by about 0.7 nats across domains, so a mean of 128 has a
        // standard error near 0.06; 0.2 nats is over three of them.
        const double card = readJson(dir / "archlens_card.json")["metrics"]["loss"].get<double>();
        const EvalResult r = evaluate(*trainModel, corpusTask(), 4242, 128, &pool);
        EXPECT_NEAR(r.loss, card, 0.2);
    }
}

TEST(BundledTextModels, MixtralExpertsSpecialiseByDomain)
{
    const fs::path dir = kModels / "mixtral-text-moe";
    const auto model = loadModel(dir, createBackend("cpu").backend);
    const Tokenizer tok = Tokenizer::fromFile(dir);
    const fs::path corpora = fs::path(ARCHLENS_SOURCE_DIR) / "resources/corpora";
    analysis::RouteAccumulator code, numbers;
    for (auto [acc, domain] : {std::pair{&code, "code"}, std::pair{&numbers, "numbers"}}) {
        auto ids = tok.encode(slurp(corpora / domain / "heldout.txt"), false);
        ids.resize(std::min<size_t>(ids.size(), 3072));
        analysis::routeTokens(*model, ids, *acc, 512, [](int64_t, int64_t) { return true; });
    }
    double best = 0;
    for (const auto& [l, L] : code.layers())
        best = std::max(best, analysis::jensenShannonBits(L.counts, numbers.layers().at(l).counts));
    EXPECT_GE(best, 0.1) << "the card reports the same measure over whole held-out files";
}
