// archlens-cli eval: a trained model (optionally with a LoRA adapter) on fresh data of its
// task, drawn from --seed: exact-sequence accuracy for the synthetic tasks, loss and
// perplexity for text. The task's parameters come from the model's archlens_task.json.
#include <cstdio>
#include <thread>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "common.h"
#include "training/trainer.h"

namespace archlens::cli {

namespace fs = std::filesystem;
using namespace archlens::train;

void addEvalCommand(CLI::App& app)
{
    struct Opts {
        std::string model, adapter, task, data;
        uint64_t seed = 0;
        int64_t samples = 1000, length = 64, dataTokens = 8, symbols = 8, context = 128;
        int threads = 0;
        bool json = false;
    };
    auto o = std::make_shared<Opts>();
    auto* cmd = app.add_subcommand("eval", "Evaluate a trained model on fresh data of its task");
    cmd->add_option("--model", o->model, "Model folder (Hugging Face layout)")->required();
    cmd->add_option("--adapter", o->adapter, "PEFT LoRA adapter folder to apply");
    cmd->add_option("--task", o->task,
                    "selective-copy | induction | text (default and parameters: the model's archlens_task.json)");
    cmd->add_option("--data", o->data, "text: the file or corpus folder to evaluate on (default: the one recorded)");
    cmd->add_option("--seed", o->seed, "Seed of the evaluation data")->capture_default_str();
    cmd->add_option("--samples", o->samples, "Sequences to evaluate")->capture_default_str();
    cmd->add_option("--length", o->length, "Without archlens_task.json: task length")->capture_default_str();
    cmd->add_option("--data-tokens", o->dataTokens, "Without archlens_task.json: selective-copy data tokens")
        ->capture_default_str();
    cmd->add_option("--symbols", o->symbols, "Without archlens_task.json: symbols")->capture_default_str();
    cmd->add_option("--context", o->context, "Without archlens_task.json: text context")->capture_default_str();
    cmd->add_option("--threads", o->threads, "CPU threads (0: every CPU)")->capture_default_str();
    cmd->add_flag("--json", o->json, "Print the result as JSON");
    cmd->callback([o] {
        const fs::path dir(o->model);
        if (o->samples <= 0)
            throw Error(ErrorCode::InvalidArgument, "--samples must be positive");
        std::unique_ptr<TrainModel> modelPtr = loadTrainModel(dir); // by config.json's architectures
        TrainModel& model = *modelPtr;
        if (!o->adapter.empty()) {
            auto* mamba = dynamic_cast<MambaTrainModel*>(modelPtr.get());
            if (!mamba)
                throw Error(ErrorCode::Unsupported,
                            fmt::format("LoRA adapters apply to Mamba models only, not {}", model.architecture()),
                            o->adapter);
            mamba->loadAdapter(o->adapter);
        }
        std::unique_ptr<Task> task;
        if (fs::exists(dir / "archlens_task.json")) {
            task = loadTask(dir, o->data);
            if (!o->task.empty() && o->task != task->name())
                throw Error(ErrorCode::InvalidArgument,
                            fmt::format("the model was trained on '{}', not '{}'", task->name(), o->task),
                            (dir / "archlens_task.json").string());
        } else if (o->task == "selective-copy") {
            task = makeSelectiveCopyTask({o->length, o->dataTokens, o->symbols});
        } else if (o->task == "induction") {
            task = makeInductionTask({o->length, o->symbols});
        } else if (o->task == "text") {
            if (o->data.empty())
                throw Error(ErrorCode::InvalidArgument, "--task text needs --data FILE");
            const Tokenizer tok = Tokenizer::fromFile(dir);
            if (isCorpusFolder(o->data)) {
                task = makeCorpusTask(tokenizeCorpus(readCorpusFolder(o->data), tok), model.vocabSize(), o->context,
                                      o->data);
            } else
                task = makeTextTask(tok.encode(readFileBytes(o->data), false), model.vocabSize(), o->context, o->data);
        } else {
            throw Error(ErrorCode::InvalidArgument,
                        o->task.empty() ? "the model has no archlens_task.json: name the task with --task"
                                        : fmt::format("unknown task '{}'", o->task),
                        {}, "expected selective-copy, induction or text");
        }
        if (task->vocabSize() > model.vocabSize())
            throw Error(ErrorCode::InvalidArgument,
                        fmt::format("the task uses {} token ids but the model has {} embedding rows",
                                    task->vocabSize(), model.vocabSize()));
        ThreadPool pool(o->threads > 0 ? o->threads : std::max(1, int(std::thread::hardware_concurrency())));
        const EvalResult r = evaluate(model, *task, o->seed, o->samples, &pool);
        nlohmann::ordered_json perDomain = nlohmann::ordered_json::object();
        const auto domainNames = task->domains();
        for (size_t d = 0; d < domainNames.size(); ++d) {
            const EvalResult de = evaluate(model, *task->domainTask(d), o->seed, o->samples, &pool);
            perDomain[domainNames[d]] = {{"loss", de.loss}, {"perplexity", de.perplexity}, {"windows", de.samples}};
        }
        if (o->json) {
            nlohmann::ordered_json j = {{"model", o->model}, {"adapter", o->adapter}, {"task", task->name()},
                                        {"seed", o->seed}, {"samples", r.samples}};
            if (task->reportsAccuracy()) {
                j["accuracy"] = r.accuracy;
                j["token_accuracy"] = r.tokenAccuracy;
            }
            j["loss"] = r.loss;
            j["perplexity"] = r.perplexity;
            if (!perDomain.empty())
                j["by_domain"] = perDomain;
            fmt::print("{}\n", j.dump(2));
        } else if (task->reportsAccuracy()) {
            fmt::print("{}: {:.2f}% of {} sequences exact ({} correct), token accuracy {:.2f}%, loss {:.4f}\n",
                       task->name(), 100 * r.accuracy, r.samples, int64_t(std::llround(r.accuracy * double(r.samples))),
                       100 * r.tokenAccuracy, r.loss);
        } else {
            fmt::print("{}: loss {:.4f} nats/token, perplexity {:.3f} over {} windows\n", task->name(), r.loss,
                       r.perplexity, r.samples);
            for (const auto& [name, v] : perDomain.items())
                fmt::print("  {:<12} loss {:.4f}, perplexity {:.3f} over {} windows\n", name, v["loss"].get<double>(),
                           v["perplexity"].get<double>(), v["windows"].get<int64_t>());
        }
    });
}

} // namespace archlens::cli
