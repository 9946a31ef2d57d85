// archlens-cli train: trains a Mamba, Llama, Mixtral or Jamba from scratch on a synthetic task (selective copying,
// induction heads) or on a text file, with core/training. Progress and time left go to
// stderr; Ctrl-C (SIGINT) stops after the current step and leaves a resumable checkpoint
// (every file is written atomically). `bench train` times the same training step.
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <thread>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "common.h"
#include "formats/atomic_file.h"
#include "tokenizer/bpe_trainer.h"
#include "training/trainer.h"

namespace archlens::cli {

namespace fs = std::filesystem;
using namespace archlens::train;

namespace {

std::atomic<bool> g_interrupted { false };

extern "C" void onSigint(int) { g_interrupted.store(true); }

std::string duration(double s)
{
    if (!(s >= 0) || s > 1e7)
        return "?";
    const int64_t t = int64_t(s + 0.5);
    if (t >= 3600)
        return fmt::format("{}h{:02}m", t / 3600, t / 60 % 60);
    return fmt::format("{}m{:02}s", t / 60, t % 60);
}

struct TrainCliOptions {
    std::string arch = "mamba", task = "selective-copy", data, out, resume, name;
    int64_t dModel = 64, layers = 2, dState = 16, expand = 2;
    // attention decoders (llama, mixtral, jamba); intermediate 0: 8/3 · d_model rounded up to 8
    int64_t heads = 4, kvHeads = 0, intermediate = 0, experts = 4, topK = 2;
    int64_t attnPeriod = 2, attnOffset = 1, expertPeriod = 2, expertOffset = 1;
    double auxLossCoef = 0.001;
    int64_t length = 64, dataTokens = 8, symbols = 8, context = 128, vocabSize = 512;
    int64_t steps = 2000, batch = 32, warmup = 100, checkpointEvery = 200, evalEvery = 200, evalSamples = 256;
    int64_t finalEvalSamples = 1000;
    double lr = 2e-3, weightDecay = 0.1, clip = 1.0, minLrRatio = 0.1, targetAccuracy = 0;
    uint64_t seed = 1;
    int threads = 0;
};

int defaultThreads(int threads)
{
    return threads > 0 ? threads : std::max(1, int(std::thread::hardware_concurrency()));
}

// The command that reproduces a run (every option spelled out).
std::string commandLine(const TrainCliOptions& o)
{
    std::string c = fmt::format("archlens-cli train --arch {} --task {}", o.arch, o.task);
    if (o.task == "text")
        c += fmt::format(" --data {} --context {} --vocab-size {}", o.data, o.context, o.vocabSize);
    else if (o.task == "selective-copy")
        c += fmt::format(" --length {} --data-tokens {} --symbols {}", o.length, o.dataTokens, o.symbols);
    else
        c += fmt::format(" --length {} --symbols {}", o.length, o.symbols);
    c += fmt::format(" --d-model {} --layers {}", o.dModel, o.layers);
    if (o.arch == "mamba" || o.arch == "jamba")
        c += fmt::format(" --d-state {} --expand {}", o.dState, o.expand);
    if (o.arch != "mamba")
        c += fmt::format(" --heads {} --kv-heads {} --intermediate {}", o.heads, o.kvHeads, o.intermediate);
    if (o.arch == "mixtral" || o.arch == "jamba")
        c += fmt::format(" --experts {} --top-k {} --aux-loss-coef {}", o.experts, o.topK, o.auxLossCoef);
    if (o.arch == "jamba")
        c += fmt::format(" --attn-period {} --attn-offset {} --expert-period {} --expert-offset {}", o.attnPeriod,
                         o.attnOffset, o.expertPeriod, o.expertOffset);
    c += fmt::format(" --steps {} --batch {} --lr {} --warmup {} --weight-decay {} --clip {} --seed {}", o.steps,
                     o.batch, o.lr, o.warmup, o.weightDecay, o.clip, o.seed);
    if (o.targetAccuracy > 0)
        c += fmt::format(" --target-accuracy {} --eval-every {} --eval-samples {}", o.targetAccuracy, o.evalEvery,
                         o.evalSamples);
    c += fmt::format(" --threads {}{} --out {}", defaultThreads(o.threads), o.name.empty() ? "" : " --name " + o.name,
                     o.out);
    return c;
}

std::unique_ptr<Task> makeTask(const TrainCliOptions& o, const fs::path& out, int64_t& vocab)
{
    if (o.task == "selective-copy" || o.task == "induction") {
        auto t = o.task == "induction" ? makeInductionTask({o.length, o.symbols})
                                       : makeSelectiveCopyTask({o.length, o.dataTokens, o.symbols});
        vocab = t->vocabSize();
        const std::string tok = symbolicTokenizerJson(vocab);
        if (!tok.empty()) {
            std::error_code ec;
            fs::create_directories(out, ec);
            writeFileAtomic(out / "tokenizer.json", tok);
        }
        return t;
    }
    if (o.task == "text") {
        if (o.data.empty())
            throw Error(ErrorCode::InvalidArgument, "--task text needs --data FILE");
        if (isCorpusFolder(o.data)) {
            std::vector<CorpusDomainText> texts = readCorpusFolder(o.data);
            std::vector<std::string> trainTexts;
            for (const auto& d : texts)
                trainTexts.push_back(d.train);
            BpeTrainerOptions bo;
            bo.vocabSize = o.vocabSize;
            std::fprintf(stderr, "training a %lld-token byte-level BPE tokenizer on %zu domains of %s\n",
                         (long long)o.vocabSize, texts.size(), o.data.c_str());
            const std::string tokJson = trainByteLevelBpe(trainTexts, bo);
            std::error_code ec;
            fs::create_directories(out, ec);
            writeFileAtomic(out / "tokenizer.json", tokJson);
            const Tokenizer tok = Tokenizer::fromJson(tokJson, "trained tokenizer");
            vocab = tok.vocabSize();
            // Recorded relative to the model folder, so a bundled model finds its corpus wherever
            // the source tree is.
            const fs::path rel =
                fs::absolute(o.data).lexically_normal().lexically_relative(fs::absolute(out).lexically_normal());
            return makeCorpusTask(tokenizeCorpus(texts, tok), vocab, o.context,
                                  rel.empty() ? fs::absolute(o.data).string() : rel.string());
        }
        const std::string text = readFileBytes(o.data);
        BpeTrainerOptions bo;
        bo.vocabSize = o.vocabSize;
        const std::string tokJson = trainByteLevelBpe({text}, bo);
        std::error_code ec;
        fs::create_directories(out, ec);
        writeFileAtomic(out / "tokenizer.json", tokJson);
        const Tokenizer tok = Tokenizer::fromJson(tokJson, "trained tokenizer");
        vocab = tok.vocabSize();
        return makeTextTask(tok.encode(text, false), vocab, o.context, fs::absolute(o.data).string());
    }
    throw Error(ErrorCode::InvalidArgument, fmt::format("unknown task '{}'", o.task), {},
                "expected selective-copy, induction or text");
}

// The architecture-specific options as stored in trainer_state.json (and read back on resume).
nlohmann::ordered_json archJson(const TrainCliOptions& o)
{
    return {{"arch", o.arch},          {"heads", o.heads},           {"kv_heads", o.kvHeads},
            {"intermediate", o.intermediate}, {"experts", o.experts}, {"top_k", o.topK},
            {"aux_loss_coef", o.auxLossCoef}, {"attn_period", o.attnPeriod}, {"attn_offset", o.attnOffset},
            {"expert_period", o.expertPeriod}, {"expert_offset", o.expertOffset}};
}

void readArchJson(const nlohmann::json& cli, TrainCliOptions& o)
{
    o.arch = cli.value("arch", std::string("mamba")); // checkpoints from before --arch were Mamba
    o.heads = cli.value("heads", o.heads);
    o.kvHeads = cli.value("kv_heads", o.kvHeads);
    o.intermediate = cli.value("intermediate", o.intermediate);
    o.experts = cli.value("experts", o.experts);
    o.topK = cli.value("top_k", o.topK);
    o.auxLossCoef = cli.value("aux_loss_coef", o.auxLossCoef);
    o.attnPeriod = cli.value("attn_period", o.attnPeriod);
    o.attnOffset = cli.value("attn_offset", o.attnOffset);
    o.expertPeriod = cli.value("expert_period", o.expertPeriod);
    o.expertOffset = cli.value("expert_offset", o.expertOffset);
}

// A freshly initialised model of --arch for a vocabulary of `vocab` ids.
std::unique_ptr<TrainModel> makeModel(const TrainCliOptions& o, int64_t vocab)
{
    if (o.arch == "mamba") {
        MambaInitOptions init;
        init.dModel = o.dModel;
        init.layers = o.layers;
        init.dState = o.dState;
        init.expand = o.expand;
        init.vocabSize = vocab;
        init.seed = o.seed;
        return std::make_unique<MambaTrainModel>(MambaTrainModel::randomInit(init));
    }
    if (o.arch != "llama" && o.arch != "mixtral" && o.arch != "jamba")
        throw Error(ErrorCode::InvalidArgument, fmt::format("unknown architecture '{}'", o.arch), {},
                    "expected mamba, llama, mixtral or jamba");
    DecoderTrainConfig c;
    c.arch = o.arch;
    c.V = vocab;
    c.D = o.dModel;
    c.layers = o.layers;
    c.H = o.heads;
    c.Hkv = o.kvHeads > 0 ? o.kvHeads : o.heads;
    c.I = o.intermediate > 0 ? o.intermediate : (8 * o.dModel / 3 + 7) / 8 * 8;
    c.eps = 1e-5;
    c.tied = true;
    c.experts = o.arch == "llama" ? 0 : o.experts;
    c.topK = o.topK;
    c.auxCoef = o.auxLossCoef;
    c.routerAux = true;
    c.attnPeriod = o.attnPeriod;
    c.attnOffset = o.attnOffset;
    c.expertPeriod = o.expertPeriod;
    c.expertOffset = o.expertOffset;
    c.N = o.dState;
    c.expand = o.expand;
    return std::make_unique<DecoderTrainModel>(DecoderTrainModel::randomInit(c, o.seed));
}

void printProgress(const TrainProgress& p, bool accuracyTask)
{
    static auto last = std::chrono::steady_clock::now() - std::chrono::seconds(10);
    const auto now = std::chrono::steady_clock::now();
    if (p.evaluated) {
        if (accuracyTask)
            std::fprintf(stderr, "eval  step %lld: exact %.1f%%  loss %.4f\n", (long long)p.step,
                         100.0 * p.evalAccuracy, p.evalLoss);
        else
            std::fprintf(stderr, "eval  step %lld: loss %.4f  perplexity %.2f\n", (long long)p.step, p.evalLoss,
                         std::exp(p.evalLoss));
    }
    if (now - last < std::chrono::seconds(2) && p.step != p.steps)
        return;
    last = now;
    std::fprintf(stderr, "step %lld/%lld  loss %.4f%s  lr %.2e  |g| %.3f  %.0f tok/s  elapsed %s  left %s\n",
                 (long long)p.step, (long long)p.steps, p.loss,
                 p.auxLoss > 0 ? fmt::format("  aux {:.3f}", p.auxLoss).c_str() : "", p.lr, p.gradNorm,
                 p.tokensPerSecond, duration(p.elapsedSeconds).c_str(), duration(p.etaSeconds).c_str());
    std::fflush(stderr);
}

void writeCard(const fs::path& dir, const TrainCliOptions& o, const TrainModel& model, const Task& task,
               const TrainResult& res, const EvalResult& ev, uint64_t evalSeedValue, double seconds,
               const nlohmann::ordered_json& perDomain)
{
    nlohmann::ordered_json size = model.sizeJson();
    size["parameters"] = model.params().numel();
    nlohmann::ordered_json metrics;
    if (task.reportsAccuracy())
        metrics = {{"exact_sequence_accuracy", ev.accuracy},
                   {"token_accuracy", ev.tokenAccuracy},
                   {"loss", ev.loss},
                   {"eval_samples", ev.samples},
                   {"eval_seed", evalSeedValue},
                   {"eval_note", "fresh sequences drawn from the eval seed, never seen in training"}};
    else if (!perDomain.empty())
        metrics = {{"loss", ev.loss},
                   {"perplexity", ev.perplexity},
                   {"held_out_by_domain", perDomain},
                   {"eval_samples", ev.samples},
                   {"eval_seed", evalSeedValue},
                   {"eval_note", "windows of each domain's heldout.txt (never trained on); loss in nats per token"}};
    else
        metrics = {{"loss", ev.loss},
                   {"perplexity", ev.perplexity},
                   {"eval_samples", ev.samples},
                   {"eval_seed", evalSeedValue},
                   {"eval_note", "windows of the held-out last tenth of the data"}};
    nlohmann::ordered_json card = {
        {"name", o.name.empty() ? fmt::format("{}-{}", o.arch, task.name()) : o.name},
        {"architecture", model.architecture()},
        {"trained", true},
        {"label", fmt::format("trained: {}", task.name())},
        {"task", task.toJson()},
        {"data", task.name() == "text" ? o.data : std::string("generated from the seed (core/training/tasks.cpp)")},
        {"size", size},
        {"steps", res.step},
        {"batch", o.batch},
        {"tokens_seen", res.step * o.batch * task.sequenceLength()},
        {"training_seconds", seconds},
        {"metrics", metrics},
        {"seed", o.seed},
        {"command", commandLine(o)},
    };
    writeFileAtomic(dir / "archlens_card.json", card.dump(2) + "\n");
}

void runTrain(TrainCliOptions o)
{
    fs::path out;
    std::unique_ptr<TrainModel> model;
    std::unique_ptr<Task> task;
    TrainOptions to;
    bool resumed = false;
    if (!o.resume.empty()) {
        const fs::path rdir(o.resume);
        const nlohmann::json st = readTrainerState(rdir);
        to = TrainOptions::fromJson(st.at("options"));
        if (st.contains("options") && st["options"].contains("extra") && st["options"]["extra"].contains("cli")) {
            const auto& cli = st["options"]["extra"]["cli"];
            const int64_t stepsOverride = o.steps;
            const bool stepsGiven = o.steps != TrainCliOptions().steps;
            readArchJson(cli, o);
            o.task = cli.value("task", o.task);
            o.data = cli.value("data", o.data);
            o.name = cli.value("name", o.name);
            o.dModel = cli.value("d_model", o.dModel);
            o.layers = cli.value("layers", o.layers);
            o.dState = cli.value("d_state", o.dState);
            o.expand = cli.value("expand", o.expand);
            o.length = cli.value("length", o.length);
            o.dataTokens = cli.value("data_tokens", o.dataTokens);
            o.symbols = cli.value("symbols", o.symbols);
            o.context = cli.value("context", o.context);
            o.vocabSize = cli.value("vocab_size", o.vocabSize);
            o.batch = to.batch;
            o.lr = to.lr;
            o.warmup = to.warmup;
            o.weightDecay = to.adam.weightDecay;
            o.clip = to.clip;
            o.seed = to.seed;
            o.targetAccuracy = to.targetAccuracy;
            o.evalEvery = to.evalEvery;
            o.evalSamples = to.evalSamples;
            o.finalEvalSamples = cli.value("final_eval_samples", o.finalEvalSamples);
            o.steps = stepsGiven ? stepsOverride : to.steps;
            to.steps = o.steps;
        }
        out = o.out.empty() ? rdir : fs::path(o.out);
        o.out = out.string();
        model = loadTrainModel(rdir);
        task = loadTask(rdir);
        resumed = true;
        if (out != rdir) {
            std::error_code ec;
            fs::create_directories(out, ec);
            if (fs::exists(rdir / "tokenizer.json"))
                fs::copy_file(rdir / "tokenizer.json", out / "tokenizer.json", fs::copy_options::overwrite_existing);
        }
    } else {
        if (o.out.empty())
            throw Error(ErrorCode::InvalidArgument, "--out DIR is required (or --resume DIR)");
        out = o.out;
        int64_t vocab = 0;
        task = makeTask(o, out, vocab);
        model = makeModel(o, vocab);
        to.steps = o.steps;
        to.batch = o.batch;
        to.warmup = std::min(o.warmup, o.steps);
        to.lr = o.lr;
        to.minLrRatio = o.minLrRatio;
        to.clip = o.clip;
        to.adam.weightDecay = o.weightDecay;
        to.seed = o.seed;
        to.checkpointEvery = o.checkpointEvery;
        to.evalEvery = o.evalEvery;
        to.evalSamples = o.evalSamples;
        to.targetAccuracy = o.targetAccuracy;
        to.extra = {{"command", commandLine(o)},
                    {"cli",
                     {{"task", o.task}, {"data", o.data}, {"name", o.name}, {"d_model", o.dModel},
                      {"layers", o.layers}, {"d_state", o.dState}, {"expand", o.expand}, {"length", o.length},
                      {"data_tokens", o.dataTokens}, {"symbols", o.symbols}, {"context", o.context},
                      {"vocab_size", o.vocabSize}, {"final_eval_samples", o.finalEvalSamples}}}};
        const nlohmann::ordered_json arch = archJson(o);
        for (auto it = arch.begin(); it != arch.end(); ++it)
            to.extra["cli"][it.key()] = it.value();
    }
    to.checkpointEvery = o.checkpointEvery;
    ThreadPool pool(defaultThreads(o.threads));
    Trainer trainer(*model, *task, to, out, &pool);
    if (resumed)
        trainer.resume(o.resume);
    std::fprintf(stderr,
                 "%s %s %s (%s, %lld parameters) on %s, %lld steps of %lld sequences × %lld tokens, %d threads%s\n",
                 resumed ? "resuming" : "training", out.string().c_str(), model->architecture().c_str(),
                 model->sizeJson().dump().c_str(), (long long)model->params().numel(), task->name().c_str(), (long long)to.steps, (long long)to.batch, (long long)task->sequenceLength(),
                 pool.threads(), resumed ? fmt::format(" from step {}", trainer.step()).c_str() : "");
    g_interrupted.store(false);
    auto previous = std::signal(SIGINT, onSigint);
    const bool accuracyTask = task->reportsAccuracy();
    TrainResult res;
    try {
        res = trainer.run([&](const TrainProgress& p) { printProgress(p, accuracyTask); }, &g_interrupted);
    } catch (...) {
        std::signal(SIGINT, previous);
        throw;
    }
    std::signal(SIGINT, previous);
    if (res.cancelled)
        throw Error(ErrorCode::Cancelled,
                    fmt::format("interrupted at step {}; checkpoint saved in {}; continue with: archlens-cli train "
                                "--resume {}",
                                res.step, out.string(), out.string()));
    const uint64_t evalSeedValue = o.seed + 7777;
    const EvalResult ev = evaluate(*model, *task, evalSeedValue, o.finalEvalSamples, &pool);
    nlohmann::ordered_json perDomain = nlohmann::ordered_json::object();
    const auto domainNames = task->domains();
    for (size_t d = 0; d < domainNames.size(); ++d) {
        const EvalResult de = evaluate(*model, *task->domainTask(d), evalSeedValue, o.finalEvalSamples, &pool);
        perDomain[domainNames[d]] = {{"loss", de.loss}, {"perplexity", de.perplexity}, {"windows", de.samples}};
        fmt::print("  held-out {:<10} loss {:.4f}  perplexity {:.2f}\n", domainNames[d], de.loss, de.perplexity);
    }
    const double seconds = readTrainerState(out).value("elapsed_seconds", res.seconds);
    writeCard(out, o, *model, *task, res, ev, evalSeedValue, seconds, perDomain);
    if (accuracyTask)
        fmt::print("trained {} steps in {}: {:.1f}% of {} fresh sequences exact (token accuracy {:.2f}%), loss {:.4f}; "
                   "saved in {}\n",
                   res.step, duration(seconds), 100 * ev.accuracy, ev.samples, 100 * ev.tokenAccuracy, ev.loss,
                   out.string());
    else
        fmt::print("trained {} steps in {}: held-out loss {:.4f}, perplexity {:.2f}; saved in {}\n", res.step,
                   duration(seconds), ev.loss, ev.perplexity, out.string());
}

void runBenchTrain(const TrainCliOptions& o, int64_t steps, bool json)
{
    std::unique_ptr<Task> task;
    if (o.task == "text") {
        // a seeded random token stream: the step costs what a text run of this vocabulary and
        // context costs (the lm_head grows with the vocabulary)
        std::vector<int32_t> toks(size_t(std::max<int64_t>(20 * o.context, 4096)));
        uint64_t x = o.seed * 0x9E3779B97F4A7C15ull + 1;
        for (auto& t : toks) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            t = int32_t(x % uint64_t(o.vocabSize));
        }
        task = makeTextTask(toks, o.vocabSize, o.context, "random tokens");
    } else if (o.task == "selective-copy") {
        task = makeSelectiveCopyTask({o.length, o.dataTokens, o.symbols});
    } else {
        throw Error(ErrorCode::InvalidArgument, fmt::format("bench train: unknown task '{}'", o.task), {},
                    "expected selective-copy or text (random tokens of --vocab-size at --context)");
    }
    std::unique_ptr<TrainModel> mp = makeModel(o, task->vocabSize());
    TrainModel& model = *mp;
    ThreadPool pool(defaultThreads(o.threads));
    TrainOptions to;
    to.steps = steps + 2;
    to.batch = o.batch;
    to.warmup = 1;
    to.evalEvery = 0;
    AdamW adam(model.params(), to.adam);
    std::vector<float> g(size_t(model.params().numel()));
    std::vector<double> perStep;
    for (int64_t s = 0; s < steps + 2; ++s) {
        const Batch b = task->batch(stepSeed(o.seed, s), o.batch, false);
        const auto t0 = std::chrono::steady_clock::now();
        std::fill(g.begin(), g.end(), 0.f);
        model.lossAndGrad(b.ids.data(), b.targets.data(), b.B, b.T, g.data(), &pool);
        clipGradNorm(g.data(), int64_t(g.size()), 1.0);
        adam.step(model.params(), g.data(), 1e-3);
        const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        if (s >= 2) // two warm-up steps
            perStep.push_back(dt);
    }
    std::sort(perStep.begin(), perStep.end());
    const double median = perStep[perStep.size() / 2], best = perStep.front();
    const double tokens = double(o.batch * task->sequenceLength());
    if (json) {
        nlohmann::ordered_json j = {{"architecture", model.architecture()}, {"size", model.sizeJson()},
                                    {"task", task->name()}, {"batch", o.batch}, {"sequence_length", task->sequenceLength()},
                                    {"threads", pool.threads()}, {"steps", steps},
                                    {"parameters", model.params().numel()},
                                    {"median_step_seconds", median}, {"min_step_seconds", best},
                                    {"tokens_per_second", tokens / median},
                                    {"best_tokens_per_second", tokens / best}};
        fmt::print("{}\n", j.dump(2));
    } else {
        fmt::print("training step (forward + backward + AdamW), {} {}, {} params\n"
                   "{}: batch {} × {} tokens, {} threads, {} timed steps\n"
                   "median {:.1f} ms/step = {:.0f} tokens/s (best {:.0f} tokens/s)\n",
                   model.architecture(), model.sizeJson().dump(), model.params().numel(), task->name(), o.batch,
                   task->sequenceLength(),
                   pool.threads(), steps, median * 1e3, tokens / median, tokens / best);
    }
}

void addModelOptions(CLI::App* cmd, TrainCliOptions& o)
{
    cmd->add_option("--arch", o.arch, "Architecture: mamba | llama | mixtral | jamba")->capture_default_str();
    cmd->add_option("--d-model", o.dModel, "Model width")->capture_default_str();
    cmd->add_option("--layers", o.layers, "Number of layers")->capture_default_str();
    cmd->add_option("--d-state", o.dState, "mamba, jamba: SSM state size N")->capture_default_str();
    cmd->add_option("--expand", o.expand, "mamba, jamba: d_inner = expand × d_model")->capture_default_str();
    cmd->add_option("--heads", o.heads, "llama, mixtral, jamba: attention heads")->capture_default_str();
    cmd->add_option("--kv-heads", o.kvHeads, "Key/value heads (grouped-query attention; 0: --heads)")
        ->capture_default_str();
    cmd->add_option("--intermediate", o.intermediate, "SwiGLU / expert width (0: 8/3 × d_model, rounded up to 8)")
        ->capture_default_str();
    cmd->add_option("--experts", o.experts, "mixtral, jamba: experts per MoE layer")->capture_default_str();
    cmd->add_option("--top-k", o.topK, "mixtral, jamba: experts per token")->capture_default_str();
    cmd->add_option("--aux-loss-coef", o.auxLossCoef, "mixtral, jamba: router_aux_loss_coef (load balancing)")
        ->capture_default_str();
    cmd->add_option("--attn-period", o.attnPeriod, "jamba: attention at layer i when i % period == offset")
        ->capture_default_str();
    cmd->add_option("--attn-offset", o.attnOffset, "jamba: see --attn-period")->capture_default_str();
    cmd->add_option("--expert-period", o.expertPeriod, "jamba: MoE at layer i when i % period == offset")
        ->capture_default_str();
    cmd->add_option("--expert-offset", o.expertOffset, "jamba: see --expert-period")->capture_default_str();
    cmd->add_option("--length", o.length, "Task: positions before the marker / random symbols")->capture_default_str();
    cmd->add_option("--data-tokens", o.dataTokens, "selective-copy: symbols to copy")->capture_default_str();
    cmd->add_option("--symbols", o.symbols, "Task: distinct symbols")->capture_default_str();
    cmd->add_option("--batch", o.batch, "Sequences per step")->capture_default_str();
    cmd->add_option("--seed", o.seed, "Seed of the initialisation and the data")->capture_default_str();
    cmd->add_option("--threads", o.threads, "CPU threads (0: every CPU)")->capture_default_str();
}

} // namespace

void addTrainCommands(CLI::App& app)
{
    auto o = std::make_shared<TrainCliOptions>();
    auto* cmd = app.add_subcommand("train", "Train a model from scratch on a synthetic task or a text file");
    cmd->add_option("--task", o->task, "selective-copy | induction | text")->capture_default_str();
    cmd->add_option("--data", o->data,
                    "--task text: a text file, or a corpus folder (one subfolder per domain with train.txt and "
                    "heldout.txt, e.g. resources/corpora)");
    cmd->add_option("--context", o->context, "text: tokens per training window")->capture_default_str();
    cmd->add_option("--vocab-size", o->vocabSize, "text: BPE vocabulary trained on --data")->capture_default_str();
    addModelOptions(cmd, *o);
    cmd->add_option("--steps", o->steps, "Optimizer steps")->capture_default_str();
    cmd->add_option("--lr", o->lr, "Peak learning rate (warm-up, then cosine to 10%)")->capture_default_str();
    cmd->add_option("--warmup", o->warmup, "Warm-up steps")->capture_default_str();
    cmd->add_option("--weight-decay", o->weightDecay, "AdamW weight decay (matrices only)")->capture_default_str();
    cmd->add_option("--clip", o->clip, "Gradient clipping: max global norm")->capture_default_str();
    cmd->add_option("--checkpoint-every", o->checkpointEvery, "Steps between checkpoints")->capture_default_str();
    cmd->add_option("--eval-every", o->evalEvery, "Steps between evaluations (0: none)")->capture_default_str();
    cmd->add_option("--eval-samples", o->evalSamples, "Sequences per periodic evaluation")->capture_default_str();
    cmd->add_option("--final-eval-samples", o->finalEvalSamples, "Sequences in the final evaluation (model card)")
        ->capture_default_str();
    cmd->add_option("--target-accuracy", o->targetAccuracy,
                    "Stop once a periodic evaluation reaches this exact-sequence accuracy (0: never)")
        ->capture_default_str();
    cmd->add_option("--name", o->name, "Name written into the model card");
    cmd->add_option("--resume", o->resume, "Continue the run whose checkpoint is in DIR");
    cmd->add_option("--out", o->out, "Folder to write (Hugging Face layout + optimizer + trainer state)");
    cmd->callback([o] { runTrain(*o); });

    CLI::App* bench = app.get_subcommand("bench");
    auto bo = std::make_shared<TrainCliOptions>();
    auto steps = std::make_shared<int64_t>(10);
    auto json = std::make_shared<bool>(false);
    auto* bt = bench->add_subcommand("train", "Time training steps (forward, backward, AdamW) in tokens/s");
    addModelOptions(bt, *bo);
    bt->add_option("--task", bo->task, "selective-copy | text (random tokens of --vocab-size, --context long)")
        ->capture_default_str();
    bt->add_option("--context", bo->context, "text: tokens per sequence")->capture_default_str();
    bt->add_option("--vocab-size", bo->vocabSize, "text: vocabulary")->capture_default_str();
    bt->add_option("--steps", *steps, "Timed steps (after 2 warm-up steps)")->capture_default_str();
    bt->add_flag("--json", *json, "Print JSON");
    bt->callback([bo, steps, json] { runBenchTrain(*bo, *steps, *json); });
}

} // namespace archlens::cli
