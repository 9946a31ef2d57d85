#include "training/trainer.h"

#include <chrono>
#include <cmath>
#include <fstream>

#include <fmt/format.h>

#include "base/error.h"
#include "formats/atomic_file.h"
#include "formats/safetensors.h"

namespace archlens::train {

namespace fs = std::filesystem;

nlohmann::ordered_json TrainOptions::toJson() const
{
    return {{"steps", steps},
            {"batch", batch},
            {"warmup", warmup},
            {"lr", lr},
            {"min_lr_ratio", minLrRatio},
            {"clip", clip},
            {"beta1", adam.beta1},
            {"beta2", adam.beta2},
            {"adam_eps", adam.eps},
            {"weight_decay", adam.weightDecay},
            {"seed", seed},
            {"checkpoint_every", checkpointEvery},
            {"eval_every", evalEvery},
            {"eval_samples", evalSamples},
            {"history_every", historyEvery},
            {"target_accuracy", targetAccuracy},
            {"adapter", adapter},
            {"base_model", baseModel},
            {"extra", extra}};
}

TrainOptions TrainOptions::fromJson(const nlohmann::json& j)
{
    TrainOptions o;
    o.steps = j.value("steps", o.steps);
    o.batch = j.value("batch", o.batch);
    o.warmup = j.value("warmup", o.warmup);
    o.lr = j.value("lr", o.lr);
    o.minLrRatio = j.value("min_lr_ratio", o.minLrRatio);
    o.clip = j.value("clip", o.clip);
    o.adam.beta1 = j.value("beta1", o.adam.beta1);
    o.adam.beta2 = j.value("beta2", o.adam.beta2);
    o.adam.eps = j.value("adam_eps", o.adam.eps);
    o.adam.weightDecay = j.value("weight_decay", o.adam.weightDecay);
    o.seed = j.value("seed", o.seed);
    o.checkpointEvery = j.value("checkpoint_every", o.checkpointEvery);
    o.evalEvery = j.value("eval_every", o.evalEvery);
    o.evalSamples = j.value("eval_samples", o.evalSamples);
    o.historyEvery = j.value("history_every", o.historyEvery);
    o.targetAccuracy = j.value("target_accuracy", o.targetAccuracy);
    o.adapter = j.value("adapter", o.adapter);
    o.baseModel = j.value("base_model", o.baseModel);
    if (j.contains("extra"))
        o.extra = j["extra"];
    return o;
}

EvalResult evaluate(const TrainModel& model, const Task& task, uint64_t seed, int64_t samples, ThreadPool* pool)
{
    EvalResult r;
    BatchStats total;
    const int64_t chunk = 64;
    for (int64_t i = 0, bi = 0; i < samples; i += chunk, ++bi) {
        const int64_t n = std::min(chunk, samples - i);
        const Batch b = task.batch(evalSeed(seed, bi), n, true);
        total += model.lossAndGrad(b.ids.data(), b.targets.data(), b.B, b.T, nullptr, pool);
    }
    r.samples = total.sequences;
    r.accuracy = total.sequences ? double(total.exactSequences) / double(total.sequences) : 0;
    r.tokenAccuracy = total.counted ? double(total.correct) / double(total.counted) : 0;
    r.loss = total.meanLoss();
    r.perplexity = std::exp(r.loss);
    return r;
}

Trainer::Trainer(TrainModel& model, const Task& task, TrainOptions opts, fs::path outDir, ThreadPool* pool)
    : m_model(model)
    , m_task(task)
    , m_opts(std::move(opts))
    , m_out(std::move(outDir))
    , m_pool(pool)
    , m_adam(model.params(), m_opts.adam)
{
    if (m_opts.steps <= 0 || m_opts.batch <= 0)
        throw Error(ErrorCode::InvalidArgument, "steps and batch must be positive");
    if (m_opts.historyEvery <= 0)
        throw Error(ErrorCode::InvalidArgument, fmt::format("history_every must be positive, not {}", m_opts.historyEvery));
    if (task.vocabSize() > model.vocabSize())
        throw Error(ErrorCode::InvalidArgument,
                    fmt::format("the task uses {} token ids but the model has only {} embedding rows",
                                task.vocabSize(), model.vocabSize()));
}

nlohmann::json readTrainerState(const fs::path& dir)
{
    const fs::path p = dir / "trainer_state.json";
    std::ifstream f(p);
    if (!f)
        throw Error(ErrorCode::Io, "no trainer_state.json: not a resumable checkpoint", dir.string());
    try {
        return nlohmann::json::parse(f);
    } catch (const nlohmann::json::exception& e) {
        throw Error(ErrorCode::Format, fmt::format("invalid JSON: {}", e.what()), p.string());
    }
}

int64_t Trainer::resume(const fs::path& dir)
{
    const nlohmann::json st = readTrainerState(dir);
    const int64_t step = st.at("step").get<int64_t>();
    const auto meta = m_adam.load(dir / "optimizer.safetensors", m_model.params());
    auto checkStep = [&](const fs::path& file, const std::map<std::string, std::string>& md) {
        auto it = md.find("archlens_step");
        if (it == md.end() || std::stoll(it->second) != step)
            throw Error(ErrorCode::Format,
                        fmt::format("saved at step {}, but trainer_state.json says step {}",
                                    it == md.end() ? std::string("?") : it->second, step),
                        file.string(), "the checkpoint was interrupted while being written; train again from scratch");
    };
    checkStep(dir / "optimizer.safetensors", meta);
    const fs::path weights = dir / (m_opts.adapter ? "adapter_model.safetensors" : "model.safetensors");
    checkStep(weights, SafetensorsFile::open(weights)->metadata());
    m_step = step;
    m_elapsedBefore = st.value("elapsed_seconds", 0.0);
    if (st.contains("history"))
        m_history = st["history"];
    return step;
}

void Trainer::saveCheckpoint(const fs::path& dir) const
{
    std::error_code ec;
    fs::create_directories(dir, ec);
    const std::map<std::string, std::string> meta = {{"archlens_step", std::to_string(m_step)}};
    if (m_opts.adapter) {
        m_model.saveAdapter(dir, m_opts.baseModel, meta);
    } else {
        m_model.save(dir, meta);
    }
    m_adam.save(dir / "optimizer.safetensors", m_model.params(), meta);
    writeFileAtomic(dir / "archlens_task.json", m_task.toJson().dump(2) + "\n");
    nlohmann::ordered_json st = {{"step", m_step},
                                 {"steps", m_opts.steps},
                                 {"task", m_task.name()},
                                 {"options", m_opts.toJson()},
                                 {"elapsed_seconds", m_elapsedBefore},
                                 {"history", m_history}};
    writeFileAtomic(dir / "trainer_state.json", st.dump(2) + "\n");
}

TrainResult Trainer::run(const std::function<void(const TrainProgress&)>& progress, const std::atomic<bool>* cancel)
{
    using Clock = std::chrono::steady_clock;
    const auto t0 = Clock::now();
    const double elapsedAtStart = m_elapsedBefore;
    const int64_t startStep = m_step;
    ParamStore& params = m_model.params();
    std::vector<float> grads(size_t(params.numel()));
    TrainResult res;
    int64_t tokens = 0;
    double lastLoss = 0;
    auto secondsNow = [&] { return std::chrono::duration<double>(Clock::now() - t0).count(); };
    while (m_step < m_opts.steps) {
        if (cancel && cancel->load()) {
            res.cancelled = true;
            break;
        }
        const Batch b = m_task.batch(stepSeed(m_opts.seed, m_step), m_opts.batch, false);
        std::fill(grads.begin(), grads.end(), 0.f);
        const BatchStats st = m_model.lossAndGrad(b.ids.data(), b.targets.data(), b.B, b.T, grads.data(), m_pool);
        const double norm = clipGradNorm(grads.data(), int64_t(grads.size()), m_opts.clip);
        const double lr = scheduleLr(m_step, m_opts.steps, m_opts.warmup, m_opts.lr, m_opts.lr * m_opts.minLrRatio);
        m_adam.step(params, grads.data(), lr);
        ++m_step;
        tokens += b.B * b.T;
        lastLoss = st.meanLoss();
        const double secs = secondsNow();
        m_elapsedBefore = elapsedAtStart + secs;
        TrainProgress pr;
        pr.step = m_step;
        pr.steps = m_opts.steps;
        pr.loss = lastLoss;
        pr.lr = lr;
        pr.gradNorm = norm;
        pr.auxLoss = st.auxLoss;
        pr.elapsedSeconds = m_elapsedBefore;
        pr.tokensPerSecond = secs > 0 ? double(tokens) / secs : 0;
        const double perStep = secs / double(m_step - startStep);
        pr.etaSeconds = perStep * double(m_opts.steps - m_step);
        if (m_step % m_opts.historyEvery == 0 || m_step == m_opts.steps) {
            m_history.push_back({{"step", m_step}, {"loss", lastLoss}, {"lr", lr}});
            if (st.auxLoss > 0) // MoE: the load-balancing loss (X·Σ f·P; top-k when perfectly balanced)
                m_history.back()["aux_loss"] = st.auxLoss;
        }
        const bool doEval = m_opts.evalEvery > 0 && (m_step % m_opts.evalEvery == 0 || m_step == m_opts.steps);
        if (doEval) {
            res.lastEval = evaluate(m_model, m_task, m_opts.seed + 1000003, m_opts.evalSamples, m_pool);
            pr.evaluated = true;
            pr.evalAccuracy = res.lastEval.accuracy;
            pr.evalLoss = res.lastEval.loss;
            m_history.push_back({{"step", m_step},
                                 {"eval_accuracy", res.lastEval.accuracy},
                                 {"eval_loss", res.lastEval.loss}});
        }
        if (progress)
            progress(pr);
        const bool reached = doEval && m_opts.targetAccuracy > 0 && m_task.reportsAccuracy()
                             && res.lastEval.accuracy >= m_opts.targetAccuracy;
        if (reached) {
            res.reachedTarget = true;
            break;
        }
        if (m_opts.checkpointEvery > 0 && m_step % m_opts.checkpointEvery == 0 && m_step < m_opts.steps)
            saveCheckpoint(m_out);
    }
    saveCheckpoint(m_out);
    res.step = m_step;
    res.seconds = secondsNow();
    res.tokensPerSecond = res.seconds > 0 ? double(tokens) / res.seconds : 0;
    res.lastLoss = lastLoss;
    return res;
}

} // namespace archlens::train
