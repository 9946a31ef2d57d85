#include "finetune/finetune_worker.h"

#include <QDir>
#include <QFileInfo>

#include <chrono>
#include <thread>

#include <fmt/format.h>

#include "base/error.h"

namespace archlens::ui {

namespace fs = std::filesystem;
using namespace archlens::train;

FinetuneWorker::FinetuneWorker()
{
    qRegisterMetaType<FinetuneSettings>();
    qRegisterMetaType<FinetuneProgress>();
    qRegisterMetaType<FinetuneDone>();
    qRegisterMetaType<FinetuneComparison>();
    qRegisterMetaType<std::shared_ptr<const MambaTrainModel>>();
}

FinetuneWorker::~FinetuneWorker() = default;

bool FinetuneWorker::guarded(const QString& what, const std::function<void()>& work)
{
    try {
        work();
        return true;
    } catch (const Error& e) {
        emit failed(what, QString::fromStdString(e.what()));
    } catch (const std::exception& e) {
        emit failed(what, QString::fromStdString(e.what()));
    }
    return false;
}

void FinetuneWorker::load(const QString& modelDir)
{
    guarded(tr("Could not prepare the model for fine-tuning"), [&] {
        const fs::path dir = modelDir.toStdString();
        auto base = std::make_shared<MambaTrainModel>(MambaTrainModel::load(dir));
        m_tokenizer = Tokenizer::fromFile(dir);
        m_base = base;
        m_modelDir = modelDir;
        m_model.reset();
        m_task.reset();
        emit loaded(modelDir, m_base);
    });
}

void FinetuneWorker::start(const FinetuneSettings& s)
{
    if (guarded(tr("Could not start the fine-tune"), [&] {
        if (!m_base || !m_tokenizer)
            throw Error(ErrorCode::InvalidArgument, "no Mamba model is loaded for fine-tuning");
        if (s.dataPath.isEmpty())
            throw Error(ErrorCode::InvalidArgument, "choose a dataset (a text file, or JSONL of prompt/completion)");
        auto model = std::make_unique<MambaTrainModel>(*m_base);
        LoraOptions lo;
        lo.r = s.rank;
        lo.alpha = s.alpha;
        lo.dropout = s.dropout;
        lo.seed = s.seed;
        for (const QString& t : s.targets)
            lo.targets.push_back(t.toStdString());
        model->addLora(lo);
        m_task = loadFinetuneData(s.dataPath.toStdString(), *m_tokenizer, model->config().V, s.context);
        TrainOptions to;
        to.steps = s.steps;
        to.batch = s.batch;
        to.warmup = std::min<int64_t>(10, s.steps);
        to.lr = s.lr;
        to.adam.weightDecay = 0.0;
        to.seed = s.seed;
        to.checkpointEvery = 0; // at the end and on cancel
        to.evalEvery = 0;
        to.adapter = true;
        to.baseModel = fs::absolute(m_modelDir.toStdString()).string();
        to.extra = {{"source", "archlens GUI fine-tune"}};
        m_opts = to;
        m_model = std::move(model);
        m_checkpointDir = s.checkpointDir;
    }))
        train(false);
}

void FinetuneWorker::resume(int steps)
{
    if (guarded(tr("Could not resume the fine-tune"), [&] {
        if (!m_model || !m_task)
            throw Error(ErrorCode::InvalidArgument, "there is no fine-tune to resume");
        const nlohmann::json st = readTrainerState(m_checkpointDir.toStdString());
        const int64_t at = st.at("step").get<int64_t>();
        if (steps <= at)
            throw Error(ErrorCode::InvalidArgument,
                        fmt::format("the checkpoint is at step {}: ask for more steps to continue", at));
        m_opts.steps = steps;
    }))
        train(true);
}

void FinetuneWorker::train(bool resuming)
{
    guarded(tr("Fine-tuning failed"), [&] {
        cancel.store(false);
        if (!m_pool) // every CPU, once a fine-tune is asked for
            m_pool = std::make_unique<ThreadPool>(std::max(1, int(std::thread::hardware_concurrency())));
        Trainer trainer(*m_model, *m_task, m_opts, m_checkpointDir.toStdString(), m_pool.get());
        if (resuming)
            trainer.resume(m_checkpointDir.toStdString());
        using Clock = std::chrono::steady_clock;
        auto lastEmit = Clock::now() - std::chrono::seconds(1);
        QVector<QPointF> points;
        const TrainResult r = trainer.run(
            [&](const TrainProgress& p) {
                // every step's loss reaches the curve, in at most ~30 reports a second
                points.append(QPointF(double(p.step), p.loss));
                const auto now = Clock::now();
                if (p.step != p.steps && now - lastEmit < std::chrono::milliseconds(33) && !cancel.load())
                    return;
                lastEmit = now;
                FinetuneProgress fp;
                fp.points = std::move(points);
                points.clear();
                fp.step = p.step;
                fp.steps = p.steps;
                fp.loss = p.loss;
                fp.tokensPerSecond = p.tokensPerSecond;
                fp.etaSeconds = p.etaSeconds;
                fp.elapsedSeconds = p.elapsedSeconds;
                emit progress(fp);
            },
            &cancel);
        if (!points.isEmpty()) { // the steps after the last report (a cancel stops between reports)
            FinetuneProgress fp;
            fp.points = std::move(points);
            fp.step = r.step;
            fp.steps = m_opts.steps;
            fp.loss = r.lastLoss;
            fp.tokensPerSecond = r.tokensPerSecond;
            emit progress(fp);
        }
        FinetuneDone d;
        d.step = r.step;
        d.steps = m_opts.steps;
        d.cancelled = r.cancelled;
        d.seconds = r.seconds;
        d.lastLoss = r.lastLoss;
        d.checkpointDir = m_checkpointDir;
        emit finished(d);
    });
}

void FinetuneWorker::compare(const QString& prompt, int newTokens)
{
    guarded(tr("Could not compare the base and adapted models"), [&] {
        if (!m_base || !m_model || !m_tokenizer)
            throw Error(ErrorCode::InvalidArgument, "fine-tune first: there is no adapter to compare");
        std::vector<int32_t> ids = m_tokenizer->encode(prompt.toStdString(), false);
        if (ids.empty())
            throw Error(ErrorCode::InvalidArgument, "the comparison prompt is empty");
        for (int32_t id : ids)
            if (id >= m_base->config().V)
                throw Error(ErrorCode::InvalidArgument,
                            fmt::format("the prompt has token id {}, outside the model's {} embedding rows", id,
                                        m_base->config().V));
        FinetuneComparison c;
        c.prompt = prompt;
        auto text = [&](const std::vector<int32_t>& t) { return QString::fromStdString(m_tokenizer->decode(t)); };
        c.baseText = text(greedyGenerate(*m_base, ids, newTokens));
        c.adaptedText = text(greedyGenerate(*m_model, ids, newTokens));
        for (const auto& s : scanStatistics(*m_base, ids))
            c.before.append(s);
        for (const auto& s : scanStatistics(*m_model, ids))
            c.after.append(s);
        emit compared(c);
    });
}

void FinetuneWorker::saveAdapter(const QString& dir)
{
    guarded(tr("Could not save the adapter"), [&] {
        if (!m_model || !m_model->hasLora())
            throw Error(ErrorCode::InvalidArgument, "there is no adapter to save");
        m_model->saveAdapter(dir.toStdString(), fs::absolute(m_modelDir.toStdString()).string(),
                             {{"archlens_source", "GUI fine-tune"}});
        emit saved(dir);
    });
}

} // namespace archlens::ui
