// The training loop: batches from a Task (seeded per step, so a resumed run sees exactly the
// batches an uninterrupted one would), mean cross-entropy, global-norm clipping, AdamW with
// warm-up + cosine schedule, periodic evaluation and checkpoints.
//
// A checkpoint folder holds config.json + model.safetensors (or, for LoRA, adapter_config.json
// + adapter_model.safetensors), optimizer.safetensors and trainer_state.json, each written
// atomically; trainer_state.json is written last and every safetensors file carries the step
// in its metadata, so a resume refuses a folder whose files come from different steps.
#pragma once

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>

#include <nlohmann/json.hpp>

#include "base/thread_pool.h"
#include "training/decoder_train_model.h"
#include "training/mamba_train_model.h"
#include "training/train_model.h"
#include "training/optimizer.h"
#include "training/tasks.h"

namespace archlens::train {

struct TrainOptions {
    int64_t steps = 2000, batch = 32, warmup = 100;
    double lr = 2e-3, minLrRatio = 0.1, clip = 1.0;
    AdamWOptions adam;
    uint64_t seed = 1;
    int64_t checkpointEvery = 200; // 0: only at the end (and on cancel)
    int64_t evalEvery = 200;       // 0: never during training
    int64_t evalSamples = 256;
    int64_t historyEvery = 10;     // the loss goes into trainer_state.json's history every N steps
    double targetAccuracy = 0;     // > 0: stop once a periodic evaluation reaches it
    bool adapter = false;          // save the LoRA adapter instead of the whole model
    std::string baseModel;         // adapter_config.json's base_model_name_or_path
    nlohmann::ordered_json extra;  // stored in trainer_state.json (the command line ...)
    nlohmann::ordered_json toJson() const;
    static TrainOptions fromJson(const nlohmann::json& j);
};

struct TrainProgress {
    int64_t step = 0, steps = 0;   // steps done, total
    double loss = 0, lr = 0, gradNorm = 0;
    double tokensPerSecond = 0, elapsedSeconds = 0, etaSeconds = 0;
    bool evaluated = false;
    double evalAccuracy = 0, evalLoss = 0;
    double auxLoss = 0; // MoE: the batch's load-balancing loss (unscaled; 0 for other models)
};

struct EvalResult {
    int64_t samples = 0;
    double accuracy = 0; // fraction of sequences exactly right (synthetic tasks)
    double tokenAccuracy = 0;
    double loss = 0, perplexity = 0;
};

// `samples` fresh sequences drawn from `seed` (held-out split for text).
EvalResult evaluate(const TrainModel& model, const Task& task, uint64_t seed, int64_t samples, ThreadPool* pool);

struct TrainResult {
    int64_t step = 0;
    bool cancelled = false, reachedTarget = false;
    double seconds = 0, tokensPerSecond = 0, lastLoss = 0;
    EvalResult lastEval;
};

class Trainer {
public:
    Trainer(TrainModel& model, const Task& task, TrainOptions opts, std::filesystem::path outDir,
            ThreadPool* pool);
    // Loads optimizer.safetensors and trainer_state.json from dir (the model itself must have
    // been loaded from the same folder); returns the step to continue from.
    int64_t resume(const std::filesystem::path& dir);
    // Runs to opts.steps; stops early (with a checkpoint) when *cancel becomes true.
    TrainResult run(const std::function<void(const TrainProgress&)>& progress, const std::atomic<bool>* cancel);
    void saveCheckpoint(const std::filesystem::path& dir) const;
    int64_t step() const { return m_step; }
    const TrainOptions& options() const { return m_opts; }

private:
    TrainModel& m_model;
    const Task& m_task;
    TrainOptions m_opts;
    std::filesystem::path m_out;
    ThreadPool* m_pool;
    AdamW m_adam;
    int64_t m_step = 0;
    double m_elapsedBefore = 0; // seconds spent before a resume
    nlohmann::ordered_json m_history = nlohmann::ordered_json::array();
};

// Reads trainer_state.json (Error(Io/Format) naming the file).
nlohmann::json readTrainerState(const std::filesystem::path& dir);

} // namespace archlens::train
