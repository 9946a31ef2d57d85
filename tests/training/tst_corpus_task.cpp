// Text training on a corpus folder (one subfolder per domain with train.txt / heldout.txt, as
// resources/corpora): windows never mix domains, held-out windows come only from heldout.txt,
// domains are drawn by the square root of their size, one domain can be evaluated alone, and
// `train` / `eval` report held-out perplexity per domain, finding the corpus again through a
// path recorded relative to the model folder.
#include <fstream>
#include <set>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "base/error.h"
#include "cli_runner.h"
#include "test_support.h"
#include "training/tasks.h"

using namespace archlens;
using namespace archlens::train;
namespace fs = std::filesystem;

namespace {

// Domain a uses ids 0..99, domain b ids 100..199; held-out parts use odd ids only.
std::vector<CorpusDomainTokens> twoDomains()
{
    CorpusDomainTokens a{"a", {}, {}}, b{"b", {}, {}};
    for (int i = 0; i < 4000; ++i)
        a.train.push_back(int32_t((2 * i) % 100));
    for (int i = 0; i < 1000; ++i)
        b.train.push_back(int32_t(100 + (2 * i) % 100));
    for (int i = 0; i < 300; ++i) {
        a.heldOut.push_back(int32_t((2 * i + 1) % 100));
        b.heldOut.push_back(int32_t(100 + (2 * i + 1) % 100));
    }
    return {a, b};
}

void writeFile(const fs::path& p, const std::string& text)
{
    fs::create_directories(p.parent_path());
    std::ofstream(p, std::ios::binary) << text;
}

} // namespace

TEST(CorpusTask, WindowsStayInOneDomainAndHeldOutIsSeparate)
{
    auto task = makeCorpusTask(twoDomains(), 200, 16, "corpus");
    EXPECT_EQ(task->domains(), (std::vector<std::string>{"a", "b"}));
    EXPECT_FALSE(task->reportsAccuracy());
    const int64_t B = 2000;
    int64_t fromA = 0;
    for (bool held : {false, true}) {
        const Batch b = task->batch(7, B, held);
        ASSERT_EQ(b.T, 16);
        for (int64_t s = 0; s < B; ++s) {
            const bool domainA = b.ids[size_t(s * b.T)] < 100;
            if (!held)
                fromA += domainA;
            for (int64_t t = 0; t < b.T; ++t) {
                const int32_t id = b.ids[size_t(s * b.T + t)], target = b.targets[size_t(s * b.T + t)];
                EXPECT_EQ(id < 100, domainA);
                EXPECT_EQ(id % 2 == 1, held) << "held-out windows use heldout.txt only";
                EXPECT_EQ(target, (id % 100 + 2) % 100 + (domainA ? 0 : 100));
            }
        }
    }
    // √4000 : √1000 = 2 : 1, so domain a gets two thirds of the windows.
    EXPECT_NEAR(double(fromA) / double(B), 2.0 / 3.0, 0.04);
    const auto onlyB = task->domainTask(1);
    const Batch bb = onlyB->batch(3, 100, true);
    for (int32_t id : bb.ids)
        EXPECT_GE(id, 100);
    EXPECT_THROW(task->domainTask(2), Error);
    EXPECT_THROW(makeTextTask(std::vector<int32_t>(100, 1), 5, 8, "x.txt")->domainTask(0), Error);
}

TEST(CorpusTask, ShortHeldOutGivesOnePaddedWindowAndTooShortTrainIsAnError)
{
    auto doms = twoDomains();
    doms[1].heldOut = {100, 101, 102, 103, 104};
    auto task = makeCorpusTask(doms, 200, 16, "corpus");
    const Batch b = task->domainTask(1)->batch(1, 4, true);
    for (int64_t s = 0; s < 4; ++s) {
        for (int64_t t = 0; t < 4; ++t)
            EXPECT_EQ(b.targets[size_t(s * 16 + t)], 101 + t);
        for (int64_t t = 4; t < 16; ++t)
            EXPECT_EQ(b.targets[size_t(s * 16 + t)], -1) << "padding counts nothing";
    }
    doms[1].train.resize(10);
    try {
        makeCorpusTask(doms, 200, 16, "corpus");
        FAIL() << "expected an error";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("'b'"), std::string::npos) << e.what();
    }
}

TEST(CorpusTask, FolderReadingNamesTheProblem)
{
    test::TempDir dir;
    EXPECT_FALSE(isCorpusFolder(dir.path()));
    EXPECT_THROW(readCorpusFolder(dir.path()), Error);
    writeFile(dir.path() / "zeta" / "train.txt", "z");
    writeFile(dir.path() / "alpha" / "train.txt", "a");
    writeFile(dir.path() / "alpha" / "heldout.txt", "h");
    fs::create_directories(dir.path() / "empty");
    ASSERT_TRUE(isCorpusFolder(dir.path()));
    const auto doms = readCorpusFolder(dir.path());
    ASSERT_EQ(doms.size(), 2u);
    EXPECT_EQ(doms[0].name, "alpha");
    EXPECT_EQ(doms[0].heldOut, "h");
    EXPECT_EQ(doms[1].name, "zeta");
    EXPECT_TRUE(doms[1].heldOut.empty());
}

TEST(CorpusTask, CliTrainAndEvalReportPerDomainPerplexity)
{
    test::TempDir dir;
    const fs::path corpus = dir.path() / "corpora", out = dir.path() / "models" / "m";
    std::string en, digits;
    for (int i = 0; i < 300; ++i) {
        en += "the quick brown fox jumps over the lazy dog. ";
        digits += std::to_string(i * 7919 % 1000) + ", ";
    }
    writeFile(corpus / "en" / "train.txt", en);
    writeFile(corpus / "en" / "heldout.txt", en.substr(0, 600));
    writeFile(corpus / "num" / "train.txt", digits);
    writeFile(corpus / "num" / "heldout.txt", digits.substr(0, 600));
    const auto r = test::cli({"train", "--task", "text", "--data", corpus.string(), "--vocab-size", "300",
                              "--context", "16", "--d-model", "16", "--layers", "1", "--d-state", "4", "--steps",
                              "30", "--batch", "8", "--threads", "2", "--eval-every", "0", "--final-eval-samples",
                              "16", "--out", out.string()});
    ASSERT_EQ(r.rc, 0) << r.err;
    const auto card = nlohmann::json::parse(test::slurp(out / "archlens_card.json"));
    const auto& by = card.at("metrics").at("held_out_by_domain");
    ASSERT_TRUE(by.contains("en") && by.contains("num")) << by.dump();
    EXPECT_GT(by["en"]["perplexity"].get<double>(), 1.0);
    const auto task = nlohmann::json::parse(test::slurp(out / "archlens_task.json"));
    EXPECT_EQ(task.at("data").get<std::string>(), "../../corpora") << "recorded relative to the model folder";
    EXPECT_EQ(task.at("domains").size(), 2u);

    // The recorded relative path still finds the corpus when the whole tree moves.
    const fs::path moved = dir.path() / "moved";
    fs::create_directories(moved);
    fs::rename(dir.path() / "models", moved / "models");
    fs::rename(corpus, moved / "corpora");
    const auto e = test::cli({"eval", "--model", (moved / "models" / "m").string(), "--samples", "8", "--json"});
    ASSERT_EQ(e.rc, 0) << e.err;
    const auto j = nlohmann::json::parse(e.out);
    ASSERT_TRUE(j.contains("by_domain")) << e.out;
    const auto& num = j["by_domain"]["num"];
    EXPECT_NEAR(num["perplexity"].get<double>(), std::exp(num["loss"].get<double>()),
                1e-6 * num["perplexity"].get<double>());
}
