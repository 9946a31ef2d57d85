#include "finetune/finetune_worker.h"

#include <QDir>
#include <QDirIterator>
#include <QFileInfo>

#include <algorithm>
#include <chrono>
#include <thread>

#include <fmt/format.h>

#include "base/error.h"

namespace archlens::ui {

namespace fs = std::filesystem;
using namespace archlens::train;

nlohmann::ordered_json settingsToJson(const FinetuneSettings& s)
{
    nlohmann::ordered_json targets = nlohmann::ordered_json::array();
    for (const QString& t : s.targets)
        targets.push_back(t.toStdString());
    return {{"data", s.dataPath.toStdString()},
            {"model_dir", s.modelDir.toStdString()},
            {"rank", s.rank},
            {"alpha", s.alpha},
            {"dropout", s.dropout},
            {"targets", targets},
            {"lr", s.lr},
            {"steps", s.steps},
            {"batch", s.batch},
            {"context", s.context},
            {"seed", s.seed}};
}

FinetuneSettings settingsFromJson(const nlohmann::json& j)
{
    auto field = [&](const char* key, nlohmann::json::value_t type) -> const nlohmann::json& {
        if (!j.is_object() || !j.contains(key))
            throw Error(ErrorCode::Format, fmt::format("options.extra.gui lacks '{}'", key));
        const nlohmann::json& v = j.at(key);
        const bool ok = type == nlohmann::json::value_t::number_float ? v.is_number()
                        : type == nlohmann::json::value_t::number_integer ? v.is_number_integer()
                                                                          : v.type() == type;
        if (!ok)
            throw Error(ErrorCode::Format, fmt::format("options.extra.gui.{} has the wrong type ({})", key, v.dump()));
        return v;
    };
    using T = nlohmann::json::value_t;
    FinetuneSettings s;
    s.dataPath = QString::fromStdString(field("data", T::string).get<std::string>());
    s.modelDir = QString::fromStdString(field("model_dir", T::string).get<std::string>());
    s.rank = field("rank", T::number_integer).get<int>();
    s.alpha = field("alpha", T::number_float).get<double>();
    s.dropout = field("dropout", T::number_float).get<double>();
    for (const auto& t : field("targets", T::array)) {
        if (!t.is_string())
            throw Error(ErrorCode::Format, fmt::format("options.extra.gui.targets holds {}, not a string", t.dump()));
        s.targets << QString::fromStdString(t.get<std::string>());
    }
    s.lr = field("lr", T::number_float).get<double>();
    s.steps = field("steps", T::number_integer).get<int>();
    s.batch = field("batch", T::number_integer).get<int>();
    s.context = field("context", T::number_integer).get<int>();
    s.seed = field("seed", T::number_integer).get<quint64>();
    return s;
}

namespace {

// The same folder, however it is spelt (a symlinked home, a trailing slash).
QString samePath(const QString& p)
{
    const QFileInfo fi(p);
    const QString c = fi.canonicalFilePath();
    return c.isEmpty() ? QDir::cleanPath(fi.absoluteFilePath()) : c;
}

} // namespace

FinetuneWorker::FinetuneWorker()
{
    qRegisterMetaType<FinetuneSettings>();
    qRegisterMetaType<FinetuneProgress>();
    qRegisterMetaType<FinetuneDone>();
    qRegisterMetaType<FinetuneComparison>();
    qRegisterMetaType<FinetuneRun>();
    qRegisterMetaType<QVector<FinetuneRun>>();
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
        to.checkpointEvery = 50; // and at the end and on cancel: a crash loses at most 50 steps
        to.evalEvery = 0;
        to.historyEvery = 1; // the page redraws the whole loss curve from a resumed run
        to.adapter = true;
        to.baseModel = fs::absolute(m_modelDir.toStdString()).string();
        FinetuneSettings recorded = s;
        recorded.modelDir = QString::fromStdString(to.baseModel);
        recorded.dataPath = QFileInfo(s.dataPath).absoluteFilePath();
        to.extra = {{"source", "archlens GUI fine-tune"}, {"gui", settingsToJson(recorded)}};
        m_opts = to;
        m_model = std::move(model);
        m_checkpointDir = s.checkpointDir;
    }))
        train(false);
}

void FinetuneWorker::loadRun(const QString& runDir)
{
    if (!m_base || !m_tokenizer)
        throw Error(ErrorCode::InvalidArgument, "no Mamba model is loaded for fine-tuning");
    const fs::path dir = runDir.toStdString();
    const nlohmann::json st = readTrainerState(dir);
    const fs::path statePath = dir / "trainer_state.json";
    if (!st.contains("options") || !st["options"].contains("extra") || !st["options"]["extra"].contains("gui"))
        throw Error(ErrorCode::Format, "not a run of the Fine-tune page (options.extra.gui is missing)",
                    statePath.string());
    FinetuneSettings s;
    try {
        s = settingsFromJson(st["options"]["extra"]["gui"]);
    } catch (const Error& e) {
        throw Error(ErrorCode::Format, e.what(), statePath.string());
    }
    if (samePath(s.modelDir) != samePath(m_modelDir))
        throw Error(ErrorCode::InvalidArgument,
                    fmt::format("this run fine-tunes {}, not the loaded model {}", s.modelDir.toStdString(),
                                m_modelDir.toStdString()),
                    statePath.string());
    auto model = std::make_unique<MambaTrainModel>(*m_base);
    // The adapter as the run created it (targets, rank, the dropout seed), then its trained
    // values from the checkpoint, parameter by parameter.
    LoraOptions lo;
    lo.r = s.rank;
    lo.alpha = s.alpha;
    lo.dropout = s.dropout;
    lo.seed = s.seed;
    for (const QString& t : s.targets)
        lo.targets.push_back(t.toStdString());
    model->addLora(lo);
    MambaTrainModel saved(*m_base);
    saved.loadAdapter(dir);
    ParamStore& to = model->params();
    for (int i = 0; i < to.count(); ++i) {
        const ParamInfo& p = to.info(i);
        if (p.name.find(".lora_") == std::string::npos)
            continue;
        const int j = saved.params().find(p.name);
        if (j < 0 || saved.params().info(j).numel != p.numel)
            throw Error(ErrorCode::Format, fmt::format("the adapter lacks '{}' (or has another shape)", p.name),
                        (dir / "adapter_model.safetensors").string());
        std::copy(saved.params().data(j), saved.params().data(j) + p.numel, to.data(i));
    }
    m_task = loadFinetuneData(s.dataPath.toStdString(), *m_tokenizer, model->config().V, s.context);
    m_opts = TrainOptions::fromJson(st["options"]);
    m_model = std::move(model);
    m_checkpointDir = runDir;
}

void FinetuneWorker::resume(const QString& runDir, int steps)
{
    bool nothingToDo = false;
    nlohmann::json st;
    if (guarded(tr("Could not resume the fine-tune"), [&] {
        const bool inMemory = m_model && m_task && samePath(runDir) == samePath(m_checkpointDir);
        if (!inMemory)
            loadRun(runDir); // replaces the run in memory only once the whole run has loaded
        st = readTrainerState(m_checkpointDir.toStdString());
        const int64_t at = st.at("step").get<int64_t>();
        if (steps < at || (inMemory && steps == at))
            throw Error(ErrorCode::InvalidArgument,
                        fmt::format("the checkpoint is at step {}: ask for more steps to continue", at));
        nothingToDo = steps == at; // a finished run, opened to compare or save its adapter
        m_opts.steps = steps;
    })) {
        if (!nothingToDo) {
            train(true);
            return;
        }
        FinetuneDone d;
        d.step = d.steps = steps;
        d.openedOnly = true;
        d.checkpointDir = m_checkpointDir;
        if (st.contains("history"))
            for (const auto& h : st["history"])
                if (h.contains("loss"))
                    d.lastLoss = h["loss"].get<double>();
        emit finished(d);
    }
}

void FinetuneWorker::listRuns(const QString& root, const QString& modelDir)
{
    QVector<FinetuneRun> runs;
    const QString model = samePath(modelDir);
    const QFileInfoList dirs = QDir(root).entryInfoList(QDir::Dirs | QDir::NoDotAndDotDot, QDir::Name);
    for (const QFileInfo& d : dirs) {
        FinetuneRun r;
        r.dir = d.absoluteFilePath();
        r.name = d.fileName();
        QDirIterator it(r.dir, QDir::Files, QDirIterator::Subdirectories);
        while (it.hasNext()) {
            it.next();
            r.bytes += it.fileInfo().size();
        }
        const QFileInfo stateFile(r.dir + QStringLiteral("/trainer_state.json"));
        r.saved = stateFile.exists() ? stateFile.lastModified() : d.lastModified();
        try {
            const nlohmann::json st = readTrainerState(r.dir.toStdString());
            const nlohmann::json& opts = st.at("options");
            if (!opts.contains("extra") || !opts["extra"].contains("gui")) {
                if (samePath(QString::fromStdString(opts.value("base_model", std::string()))) != model)
                    continue;
                throw Error(ErrorCode::Format, "not a run of the Fine-tune page (no recorded settings)");
            }
            r.settings = settingsFromJson(opts["extra"]["gui"]);
            if (samePath(r.settings.modelDir) != model)
                continue; // another model's run
            r.step = st.at("step").get<qint64>();
            r.steps = st.value("steps", qint64(r.settings.steps));
            r.elapsedSeconds = st.value("elapsed_seconds", 0.0);
            if (st.contains("history"))
                for (const auto& h : st["history"])
                    if (h.contains("loss") && h.contains("step")) {
                        r.history.append(QPointF(h["step"].get<double>(), h["loss"].get<double>()));
                        r.lastLoss = h["loss"].get<double>();
                    }
            r.resumable = true;
        } catch (const std::exception& e) {
            // a folder whose checkpoint was interrupted, or not ours: listed (to delete), not resumable
            const bool namedForModel = r.name.startsWith(QFileInfo(modelDir).fileName() + QLatin1Char('-'));
            if (!namedForModel)
                continue;
            r.problem = QString::fromStdString(e.what());
        }
        runs.append(r);
    }
    std::sort(runs.begin(), runs.end(), [](const FinetuneRun& a, const FinetuneRun& b) { return a.saved > b.saved; });
    emit runsListed(modelDir, runs);
}

void FinetuneWorker::deleteRun(const QString& root, const QString& runDir)
{
    guarded(tr("Could not delete the run"), [&] {
        const QFileInfo run(runDir);
        if (samePath(run.absolutePath()) != samePath(root) || run.fileName().isEmpty())
            throw Error(ErrorCode::InvalidArgument, "not a folder of the fine-tune runs", runDir.toStdString());
        if (!QDir(runDir).removeRecursively())
            throw Error(ErrorCode::Io, "could not remove every file of the run", runDir.toStdString());
        if (samePath(runDir) == samePath(m_checkpointDir))
            m_checkpointDir.clear(); // the adapter in memory stays (Save adapter); it cannot resume
        emit runDeleted(runDir);
    });
}

void FinetuneWorker::train(bool resuming)
{
    guarded(tr("Fine-tuning failed"), [&] {
        // cancel is reset by the page when it asks for the work: a Cancel pressed before the
        // worker got here still stops the run (at once, with its checkpoint)
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
