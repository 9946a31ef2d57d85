// archlens-cli finetune: LoRA fine-tuning of a Mamba on a text file or on JSONL
// prompt/completion pairs, writing a PEFT adapter (adapter_config.json +
// adapter_model.safetensors). Targets are validated against the model first: a name that
// matches nothing is an error (PEFT would ignore it silently), and targets PEFT refuses for
// Mamba (out_proj) are warned about, since such an adapter loads here but not in PEFT.
#include <cstdio>
#include <csignal>
#include <sstream>
#include <thread>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "base/strings.h"
#include "common.h"
#include "training/finetune.h"
#include "training/trainer.h"

namespace archlens::cli {

namespace fs = std::filesystem;
using namespace archlens::train;

namespace {

std::atomic<bool> g_stop { false };
extern "C" void onFinetuneSigint(int) { g_stop.store(true); }

std::vector<std::string> splitList(const std::string& s)
{
    std::vector<std::string> out;
    std::stringstream ss(s);
    std::string item;
    while (std::getline(ss, item, ','))
        if (!item.empty())
            out.push_back(item);
    return out;
}

} // namespace

void addFinetuneCommand(CLI::App& app)
{
    struct Opts {
        std::string model, data, targets = "in_proj,x_proj", out;
        int64_t rank = 8, steps = 200, batch = 8, context = 64, warmup = 10;
        double alpha = 16, lr = 1e-3, dropout = 0;
        bool rslora = false;
        uint64_t seed = 1;
        int threads = 0;
    };
    auto o = std::make_shared<Opts>();
    auto* cmd = app.add_subcommand("finetune", "LoRA fine-tuning of a Mamba; writes a PEFT adapter");
    cmd->add_option("--model", o->model, "Base model folder (with tokenizer.json)")->required();
    cmd->add_option("--data", o->data, "Text file, or JSONL of {\"prompt\", \"completion\"} objects")->required();
    cmd->add_option("--rank", o->rank, "LoRA rank r")->capture_default_str();
    cmd->add_option("--alpha", o->alpha, "lora_alpha (scaling alpha / r)")->capture_default_str();
    cmd->add_flag("--rslora", o->rslora, "Rank-stabilised scaling alpha / sqrt(r)");
    cmd->add_option("--dropout", o->dropout, "lora_dropout: dropout on the LoRA branch's input while training")
        ->capture_default_str()
        ->check(CLI::Range(0.0, 0.99));
    cmd->add_option("--targets", o->targets,
                    "Comma-separated target modules (in_proj, x_proj, dt_proj, out_proj, embeddings, or full paths)")
        ->capture_default_str();
    cmd->add_option("--steps", o->steps, "Optimizer steps")->capture_default_str();
    cmd->add_option("--lr", o->lr, "Peak learning rate")->capture_default_str();
    cmd->add_option("--batch", o->batch, "Sequences per step")->capture_default_str();
    cmd->add_option("--context", o->context, "Text: tokens per window")->capture_default_str();
    cmd->add_option("--seed", o->seed, "Seed of the adapter initialisation and data order")->capture_default_str();
    cmd->add_option("--threads", o->threads, "CPU threads (0: every CPU)")->capture_default_str();
    cmd->add_option("--out", o->out, "Adapter folder to write")->required();
    cmd->callback([o] {
        const fs::path base(o->model);
        MambaTrainModel model = MambaTrainModel::load(base);
        LoraOptions lo;
        lo.r = o->rank;
        lo.alpha = o->alpha;
        lo.rslora = o->rslora;
        lo.targets = splitList(o->targets);
        lo.seed = o->seed;
        lo.dropout = o->dropout;
        const LoraCoverage cov = model.addLora(lo);
        for (const auto& t : cov.peftRefused)
            std::fprintf(stderr,
                         "warning: PEFT refuses LoRA on '%s' for Mamba models (its fused kernels bypass the module): "
                         "this adapter loads in ArchLens but PEFT will raise an error loading it\n",
                         t.c_str());
        int64_t trainable = 0;
        for (int i = 0; i < model.params().count(); ++i)
            if (model.params().info(i).trainable)
                trainable += model.params().info(i).numel;
        std::fprintf(stderr, "LoRA r=%lld alpha=%g (scaling %g, dropout %g) on %zu modules, covering %lld of %lld layers; %lld "
                             "trainable parameters (base frozen: %lld)\n",
                     (long long)lo.r, lo.alpha, model.loraScaling(), lo.dropout, cov.modules.size(), (long long)cov.layersCovered,
                     (long long)cov.layers, (long long)trainable, (long long)(model.params().numel() - trainable));

        const Tokenizer tok = Tokenizer::fromFile(base);
        const std::unique_ptr<Task> task = loadFinetuneData(o->data, tok, model.config().V, o->context);
        TrainOptions to;
        to.steps = o->steps;
        to.batch = o->batch;
        to.warmup = std::min(o->warmup, o->steps);
        to.lr = o->lr;
        to.adam.weightDecay = 0.0;
        to.seed = o->seed;
        to.checkpointEvery = 0;
        to.evalEvery = 0;
        to.adapter = true;
        to.baseModel = fs::absolute(base).string();
        ThreadPool pool(o->threads > 0 ? o->threads : std::max(1, int(std::thread::hardware_concurrency())));
        const EvalResult before = evaluate(model, *task, o->seed + 99, 64, &pool);
        Trainer trainer(model, *task, to, o->out, &pool);
        g_stop.store(false);
        auto previous = std::signal(SIGINT, onFinetuneSigint);
        TrainResult res;
        try {
            res = trainer.run(
                [](const TrainProgress& p) {
                    if (p.step % 10 == 0 || p.step == p.steps)
                        std::fprintf(stderr, "step %lld/%lld  loss %.4f  lr %.2e  %.0f tok/s\n", (long long)p.step,
                                     (long long)p.steps, p.loss, p.lr, p.tokensPerSecond);
                },
                &g_stop);
        } catch (...) {
            std::signal(SIGINT, previous);
            throw;
        }
        std::signal(SIGINT, previous);
        const EvalResult after = evaluate(model, *task, o->seed + 99, 64, &pool);
        if (res.cancelled)
            throw Error(ErrorCode::Cancelled,
                        fmt::format("interrupted at step {}; the adapter so far is in {}", res.step, o->out));
        fmt::print("LoRA adapter written to {} ({} steps): loss {:.4f} -> {:.4f} on held-out {}\n", o->out, res.step,
                   before.loss, after.loss, task->name() == "text" ? "windows" : "examples");
    });
}

} // namespace archlens::cli
