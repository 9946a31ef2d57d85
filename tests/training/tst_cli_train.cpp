// archlens-cli train / eval / finetune / bench train end to end: a short run writes a loadable
// model with its card and task; eval --json reports accuracy; SIGINT leaves a resumable
// checkpoint without temporary files, and --resume finishes the run; LoRA fine-tuning on
// JSONL writes a PEFT adapter that eval applies; bad targets fail with one line.
#include <csignal>
#include <fstream>
#include <sstream>
#include <thread>

#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "cli_runner.h"
#include "test_support.h"

using namespace archlens;
namespace fs = std::filesystem;

namespace {

using test::CliResult;
using test::cli;
using test::slurp;

int lines(const std::string& s) { return int(std::count(s.begin(), s.end(), '\n')); }

const std::vector<std::string> kTiny = {"--task", "selective-copy", "--length", "16", "--data-tokens", "4",
                                        "--symbols", "4", "--d-model", "16", "--layers", "2", "--d-state", "4",
                                        "--batch", "8", "--threads", "2", "--final-eval-samples", "64"};

std::vector<std::string> trainArgs(const fs::path& out, int steps)
{
    std::vector<std::string> a = {"train"};
    a.insert(a.end(), kTiny.begin(), kTiny.end());
    a.insert(a.end(), {"--steps", std::to_string(steps), "--out", out.string()});
    return a;
}

} // namespace

TEST(CliTrain, TrainWritesModelCardAndTaskThenEval)
{
    test::TempDir dir;
    const CliResult r = cli(trainArgs(dir.path() / "m", 20));
    ASSERT_EQ(r.rc, 0) << r.err;
    EXPECT_NE(r.err.find("step 20/20"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("left"), std::string::npos);
    for (const char* f : {"config.json", "model.safetensors", "optimizer.safetensors", "trainer_state.json",
                          "archlens_task.json", "archlens_card.json"})
        EXPECT_TRUE(fs::exists(dir.path() / "m" / f)) << f;
    const auto card = nlohmann::json::parse(slurp(dir.path() / "m" / "archlens_card.json"));
    EXPECT_EQ(card["trained"], true);
    EXPECT_EQ(card["steps"], 20);
    EXPECT_NE(card["command"].get<std::string>().find("archlens-cli train --arch mamba --task selective-copy"),
              std::string::npos);
    EXPECT_TRUE(card["metrics"].contains("exact_sequence_accuracy"));

    const CliResult e = cli({"eval", "--model", (dir.path() / "m").string(), "--seed", "5", "--samples", "100",
                             "--json"});
    ASSERT_EQ(e.rc, 0) << e.err;
    const auto j = nlohmann::json::parse(e.out);
    EXPECT_EQ(j["samples"], 100);
    EXPECT_EQ(j["task"], "selective-copy");
    EXPECT_GE(j["accuracy"].get<double>(), 0.0);
    EXPECT_TRUE(j.contains("loss"));
    // the same seed gives the same numbers
    EXPECT_EQ(cli({"eval", "--model", (dir.path() / "m").string(), "--seed", "5", "--samples", "100", "--json"}).out,
              e.out);
    // a task the model was not trained on
    const CliResult wrong = cli({"eval", "--model", (dir.path() / "m").string(), "--task", "induction"});
    EXPECT_NE(wrong.rc, 0);
    EXPECT_EQ(lines(wrong.err), 1) << wrong.err;
}

TEST(CliTrain, SigintLeavesResumableCheckpoint)
{
    test::TempDir dir;
    const fs::path out = dir.path() / "run";
    const fs::path errFile = dir.path() / "err.txt";
    std::vector<std::string> args = trainArgs(out, 100000);
    const pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        std::vector<char*> argv;
        std::string exe = ARCHLENS_CLI;
        argv.push_back(exe.data());
        for (auto& a : args)
            argv.push_back(a.data());
        argv.push_back(nullptr);
        if (!freopen(errFile.c_str(), "w", stderr) || !freopen("/dev/null", "w", stdout))
            _exit(99);
        execv(exe.c_str(), argv.data());
        _exit(98);
    }
    // wait until training is under way
    for (int i = 0; i < 600 && slurp(errFile).find("step ") == std::string::npos; ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    kill(pid, SIGINT);
    int status = 0;
    waitpid(pid, &status, 0);
    ASSERT_TRUE(WIFEXITED(status));
    EXPECT_NE(WEXITSTATUS(status), 0);
    const std::string err = slurp(errFile);
    EXPECT_NE(err.find("interrupted at step"), std::string::npos) << err;
    EXPECT_NE(err.find("--resume"), std::string::npos) << err;
    for (const auto& e : fs::directory_iterator(out))
        EXPECT_EQ(e.path().filename().string().find(".tmp"), std::string::npos) << e.path();
    const auto st = nlohmann::json::parse(slurp(out / "trainer_state.json"));
    const int64_t step = st["step"];
    EXPECT_GT(step, 0);
    // resume and finish a few more steps
    const CliResult r = cli({"train", "--resume", out.string(), "--steps", std::to_string(step + 5)});
    ASSERT_EQ(r.rc, 0) << r.err;
    EXPECT_NE(r.err.find("from step " + std::to_string(step)), std::string::npos) << r.err;
    EXPECT_EQ(nlohmann::json::parse(slurp(out / "trainer_state.json"))["step"], step + 5);
}

TEST(CliTrain, FinetuneJsonlWritesPeftAdapter)
{
    const fs::path demo = fs::path(ARCHLENS_SOURCE_DIR) / "resources/models/mamba-text";
    test::TempDir dir;
    const fs::path data = dir.path() / "pairs.jsonl";
    {
        std::ofstream f(data);
        for (int i = 0; i < 12; ++i)
            f << nlohmann::json({{"prompt", "Q: what is " + std::to_string(i) + "?"},
                                 {"completion", " A: the number " + std::to_string(i) + "."}})
                     .dump()
              << "\n";
    }
    const fs::path ad = dir.path() / "adapter";
    const CliResult r = cli({"finetune", "--model", demo.string(), "--data", data.string(), "--rank", "4", "--alpha",
                             "8", "--targets", "in_proj,x_proj", "--steps", "15", "--batch", "4", "--lr", "5e-3",
                             "--out", ad.string()});
    ASSERT_EQ(r.rc, 0) << r.err;
    EXPECT_NE(r.err.find("covering 4 of 4 layers"), std::string::npos) << r.err;
    EXPECT_TRUE(fs::exists(ad / "adapter_config.json"));
    EXPECT_TRUE(fs::exists(ad / "adapter_model.safetensors"));
    EXPECT_NE(r.out.find("loss"), std::string::npos);
    // PEFT-refused target: warning, still written
    const CliResult w = cli({"finetune", "--model", demo.string(), "--data", data.string(), "--targets", "out_proj",
                             "--steps", "2", "--batch", "2", "--out", (dir.path() / "ad2").string()});
    ASSERT_EQ(w.rc, 0) << w.err;
    EXPECT_NE(w.err.find("PEFT refuses"), std::string::npos) << w.err;
    // unknown target: one line, non-zero
    const CliResult bad = cli({"finetune", "--model", demo.string(), "--data", data.string(), "--targets",
                               "in_proj,q_proj", "--out", (dir.path() / "ad3").string()});
    EXPECT_NE(bad.rc, 0);
    EXPECT_EQ(lines(bad.err), 1) << bad.err;
    EXPECT_NE(bad.err.find("q_proj"), std::string::npos);
    EXPECT_FALSE(fs::exists(dir.path() / "ad3" / "adapter_model.safetensors"));
}

TEST(CliTrain, BenchTrainReportsTokensPerSecond)
{
    const CliResult r = cli({"bench", "train", "--d-model", "16", "--layers", "1", "--d-state", "4", "--length", "16",
                             "--data-tokens", "4", "--symbols", "4", "--batch", "4", "--steps", "3", "--json"});
    ASSERT_EQ(r.rc, 0) << r.err;
    const auto j = nlohmann::json::parse(r.out);
    EXPECT_GT(j["tokens_per_second"].get<double>(), 0);
}

// Every architecture trains from the command line, writes a checkpoint whose config names it,
// evaluates and resumes (the model class comes from config.json's architectures).
TEST(CliTrain, AttentionArchitecturesTrainEvalAndResume)
{
    test::TempDir dir;
    for (const std::string arch : {"llama", "mixtral", "jamba"}) {
        SCOPED_TRACE(arch);
        const fs::path out = dir.path() / arch;
        std::vector<std::string> a = {"train", "--arch", arch, "--heads", "2", "--kv-heads", "1", "--intermediate", "24",
                                      "--experts", "3", "--top-k", "2", "--aux-loss-coef", "0.01", "--attn-period", "2",
                                      "--attn-offset", "1", "--expert-period", "2", "--expert-offset", "0"};
        a.insert(a.end(), kTiny.begin(), kTiny.end());
        a.insert(a.end(), {"--steps", "6", "--checkpoint-every", "3", "--out", out.string()});
        const CliResult r = cli(a);
        ASSERT_EQ(r.rc, 0) << r.err;
        const auto cfg = nlohmann::json::parse(slurp(out / "config.json"));
        const std::string want = arch == "llama" ? "LlamaForCausalLM"
                                 : arch == "mixtral" ? "MixtralForCausalLM"
                                                     : "JambaForCausalLM";
        EXPECT_EQ(cfg["architectures"][0], want);
        const auto card = nlohmann::json::parse(slurp(out / "archlens_card.json"));
        EXPECT_EQ(card["architecture"], want);
        EXPECT_NE(card["command"].get<std::string>().find("--arch " + arch), std::string::npos);
        if (arch != "llama") {
            EXPECT_EQ(cfg["num_experts_per_tok"], 2);
            EXPECT_EQ(cfg["router_aux_loss_coef"], 0.01);
        }
        const CliResult e = cli({"eval", "--model", out.string(), "--seed", "3", "--samples", "20", "--json"});
        ASSERT_EQ(e.rc, 0) << e.err;
        EXPECT_EQ(nlohmann::json::parse(e.out)["samples"], 20);
        const CliResult res = cli({"train", "--resume", out.string(), "--steps", "8"});
        ASSERT_EQ(res.rc, 0) << res.err;
        EXPECT_EQ(nlohmann::json::parse(slurp(out / "trainer_state.json"))["step"], 8);
        EXPECT_NE(res.err.find("resuming"), std::string::npos) << res.err;
        const CliResult b = cli({"bench", "train", "--arch", arch, "--d-model", "16", "--layers", "2", "--heads", "2",
                                 "--experts", "3", "--d-state", "4", "--task", "text", "--context", "16",
                                 "--vocab-size", "50", "--batch", "2", "--steps", "2", "--json"});
        ASSERT_EQ(b.rc, 0) << b.err;
        const auto bj = nlohmann::json::parse(b.out);
        EXPECT_EQ(bj["architecture"], want);
        EXPECT_GT(bj["tokens_per_second"].get<double>(), 0);
    }
}
