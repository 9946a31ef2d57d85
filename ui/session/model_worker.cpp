#include "session/model_worker.h"

#include <QElapsedTimer>
#include <QFile>
#include <QFileInfo>
#include <QJsonDocument>
#include <QJsonObject>

#include <algorithm>
#include <cmath>

#include "backends/backend_factory.h"
#include "base/error.h"
#include "formats/hf_cache.h"
#include "formats/safetensors.h"
#include "session/session_source.h"
#if ARCHLENS_HAVE_HDF5
#include "runtime/session_trace.h"
#endif

namespace archlens::ui {

ModelWorker::ModelWorker()
{
    qRegisterMetaType<ModelSummary>();
    qRegisterMetaType<GenerationSettings>();
    qRegisterMetaType<WorkDone>();
    qRegisterMetaType<SessionStart>();
    qRegisterMetaType<std::vector<int32_t>>();
    qRegisterMetaType<std::vector<archlens::Segment>>();
    qRegisterMetaType<std::shared_ptr<const archlens::analysis::RoutingData>>();
}

ModelWorker::~ModelWorker() = default;

static QString shapeText(const Shape& s) { return QString::fromStdString(shapeToString(s)); }

namespace {
double secondsOf(const QElapsedTimer& t) { return double(t.nsecsElapsed()) / 1e9; }
#if !ARCHLENS_HAVE_HDF5
[[noreturn]] void noTraces()
{
    throw Error(ErrorCode::Unsupported, "this build has no HDF5 support (configured with ARCHLENS_HDF5=OFF)");
}
#endif
} // namespace

void ModelWorker::load(const QString& path, const QString& backend)
{
    try {
        const std::filesystem::path dir = resolveModelPath(path.toStdString());
        // interactive: the CPU backend leaves the GUI one core (BackendOptions)
        BackendChoice choice = createBackend(backend.toStdString(), BackendOptions{0, true, ""});
        m_session.reset();
        m_routing.reset();
        m_trace.reset();
        m_model.reset(); // one model at a time: the old one goes before the new one loads
        m_model = loadModel(dir, choice.backend);
        m_tokenizer.reset();
        if (std::filesystem::exists(dir / "tokenizer.json"))
            m_tokenizer = Tokenizer::fromFile(dir / "tokenizer.json");

        const ModelInfo& info = m_model->info();
        ModelSummary s;
        s.path = QString::fromStdString(dir.string());
        s.name = QString::fromStdString(dir.filename().string());
        s.revision = QString::fromStdString(cacheRevisionOf(dir));
        if (!s.revision.isEmpty()) // a cache snapshot: name it after the repository
            s.name = QString::fromStdString(dir.parent_path().parent_path().filename().string())
                         .section("--", 1)
                         .replace("--", "/");
        s.architecture = QString::fromStdString(info.architecture);
        s.backend = QString::fromStdString(choice.backend->description());
        if (!choice.notice.empty())
            s.backend += QStringLiteral(" — ") + QString::fromStdString(choice.notice);
        s.weightDType = QString::fromStdString(info.weightDType);
        s.layers = info.layers;
        s.dModel = info.dModel;
        s.vocabRows = info.vocabRows;
        s.parameters = info.parameters;
        s.loadedBytes = qint64(info.loadedBytes);
        s.stateBytes = qint64(info.stateBytesPerSequence);
        s.dInner = info.dInner;
        s.dState = info.dState;
        s.dConv = info.dConv;
        s.dtRank = info.dtRank;
        for (const auto& m : info.layerMixer)
            s.layerMixer << QString::fromStdString(m);
        for (const auto& f : info.layerFfn)
            s.layerFfn << QString::fromStdString(f);
        for (const auto& [k, v] : info.facts)
            s.facts.append({QString::fromStdString(k), QString::fromStdString(v)});
        s.hasTokenizer = m_tokenizer.has_value();
        s.tiedEmbeddings = info.tiedEmbeddings;
        // A model card written by our own tools says whether the weights were trained.
        QFile card(QString::fromStdString((dir / "archlens_card.json").string()));
        if (card.open(QIODevice::ReadOnly)) {
            const QJsonObject o = QJsonDocument::fromJson(card.readAll()).object();
            s.untrained = o.value("trained").isBool() && !o.value("trained").toBool();
            s.label = o.value("label").toString();
            if (o.contains("name"))
                s.name = o.value("name").toString();
        }
        const Checkpoint ckpt = Checkpoint::open(dir);
        for (const auto& n : ckpt.names()) {
            const SafetensorInfo& ti = ckpt.info(n);
            s.tensors.append({QString::fromStdString(n), shapeText(ti.shape),
                              QString::fromUtf8(stDTypeName(ti.dtype).data(), int(stDTypeName(ti.dtype).size()))});
        }
        m_summary = s;
        m_vocab = vocabTexts(m_tokenizer ? &*m_tokenizer : nullptr, info.vocabRows);
        emit loaded(s);
    } catch (const std::exception& e) {
        m_model.reset();
        emit failed(tr("Could not open the model"), QString::fromUtf8(e.what()));
    }
}

QString ModelWorker::tokenText(int32_t id) const { return tokenTextOf(m_vocab, id); }

// Runs one piece of work: a cancel ends it as cancelled, any other error becomes failed().
void ModelWorker::guarded(const QString& kind, const QString& what, const std::function<void()>& work)
{
    try {
        work();
    } catch (const Error& e) {
        if (e.code() == ErrorCode::Cancelled)
            emit finished({kind, 0, 0, true});
        else
            emit failed(what, QString::fromUtf8(e.what()));
    } catch (const std::exception& e) {
        emit failed(what, QString::fromUtf8(e.what()));
    }
}

RunMeta ModelWorker::baseMeta() const
{
    RunMeta m;
    m.modelName = m_summary.name;
    m.modelPath = m_summary.path;
    m.architecture = m_summary.architecture;
    m.revision = m_summary.revision;
    m.backend = QString::fromStdString(m_model->backend().name());
    m.prompt = m_prompt;
    m.seed = m_seedUsed;
    m.dInner = m_summary.dInner;
    m.dState = m_summary.dState;
    m.layers = m_summary.layers;
    m.layerMixer = m_summary.layerMixer;
    m.layerFfn = m_summary.layerFfn;
    m.untrained = m_summary.untrained;
    m.source = QStringLiteral("live");
    return m;
}

SamplingParams ModelWorker::sampling(const GenerationSettings& s) const
{
    SamplingParams p;
    p.temperature = s.temperature;
    p.topK = s.topK;
    p.topP = s.topP;
    return p;
}

// The sampler is seeded at the first sampled token of a run (a seed reproduces the run) and
// follows later changes of temperature, top-k and top-p without reseeding.
void ModelWorker::applySettings(const GenerationSettings& s)
{
    if (!m_seedApplied && s.temperature > 0) {
        m_session->setSampling(sampling(s), uint64_t(s.seed));
        m_seedApplied = true;
        m_seedUsed = s.seed;
        return;
    }
    if (m_seedApplied) {
        const SamplingParams p = sampling(s);
        const SamplingParams& cur = m_session->options().sampling;
        if (p.temperature != cur.temperature || p.topK != cur.topK || p.topP != cur.topP)
            m_session->setSampling(p, uint64_t(s.seed)), m_seedUsed = s.seed;
    }
}

// Sends the tokens the session computed since the last call (ids and text) to the UI.
void ModelWorker::emitTokens(int64_t begin, int64_t end)
{
    if (end <= begin || !m_session)
        return;
    const auto& all = m_session->tokens();
    std::vector<int32_t> ids(all.begin() + begin, all.begin() + end);
    QStringList texts;
    for (int32_t id : ids)
        texts << tokenTextOf(m_vocab, id);
    emit tokens(begin, ids, texts);
    m_announced = end;
    sendRouting(false);
    emit dataReady();
}

void ModelWorker::sendRouting(bool force)
{
    if (!m_routing || m_routing->version() == m_routingSent)
        return;
    // a snapshot copies the attention weights (quadratic): while generating, ~10 a second
    if (!force && m_routingClock.isValid() && m_routingClock.elapsed() < 100)
        return;
    m_routingSent = m_routing->version();
    m_routingClock.start();
    emit routing(std::make_shared<const analysis::RoutingData>(m_routing->snapshot()));
}

void ModelWorker::withModel(const std::function<void(Model*, const Tokenizer*)>& fn)
{
    fn(m_model.get(), m_tokenizer ? &*m_tokenizer : nullptr);
}

void ModelWorker::afterWork()
{
    emitTokens(m_announced, m_session->computedEnd());
    sendRouting(true);
    emit segments(m_session->segments());
    emit promptLeft(int(std::max<int64_t>(0, m_session->promptLength() - m_session->computedEnd())));
    emit dataReady();
}

void ModelWorker::start(const QString& prompt, bool feedAll, const GenerationSettings& settings)
{
    if (!m_model) {
        emit failed(tr("No model"), tr("Open a model first."));
        return;
    }
    try {
        cancel = false;
        QElapsedTimer timer;
        timer.start();
        std::vector<int32_t> ids;
        if (m_tokenizer) {
            ids = m_tokenizer->encode(prompt.toStdString(), true);
        } else {
            for (const QString& part : prompt.split(',', Qt::SkipEmptyParts))
                ids.push_back(part.trimmed().toInt());
        }
        for (int32_t id : ids)
            if (id < 0 || id >= m_model->info().vocabRows)
                throw makeError(ErrorCode::InvalidArgument, "token id {} is outside the vocabulary (0..{})", id,
                                m_model->info().vocabRows - 1);
        if (ids.empty()) {
            emit failed(tr("Nothing to run"), tr("The prompt encodes to no tokens."));
            return;
        }
        m_prompt = prompt;
        m_seedUsed = -1;
        m_seedApplied = false;
        m_trace.reset();
        SessionOptions o;
        o.prefillChunk = std::max(1, prefillChunk.load());
        o.checkpointInterval = std::max<int64_t>(1, checkpointInterval.load());
        o.memoryCapBytes = capBytes.load();
        o.stopTokenId = m_summary.untrained ? -1 : m_model->info().eosTokenId;
        o.frames.probes.probes.insert(Probe::SsmState); // h of every token, while the cap allows
        // a fresh session (and store) per run: the UI may still be drawing the previous one
        m_session.reset();
        m_routing.reset();
        m_session = std::make_unique<RunSession>(*m_model, o);
        m_session->setPrompt(ids);
        applySettings(settings);
        m_announced = 0;
        emit started({baseMeta(), m_session->sharedStore(), m_vocab});
        // routers and attention weights ride on the same forward passes (RunSession's tap)
        const ModelInfo& info = m_model->info();
        const int64_t attnLayers = std::count(info.layerMixer.begin(), info.layerMixer.end(), "attention");
        if (attnLayers > 0 || std::count(info.layerFfn.begin(), info.layerFfn.end(), "moe") > 0) {
            m_routing = std::make_unique<analysis::RoutingRecorder>(true);
            m_routing->reset(info.layerMixer, info.layerFfn, int64_t(ids.size()));
            // attention weights are H·T² floats per attention layer: keep about 256 MiB at most
            if (attnLayers > 0 && info.heads > 0)
                m_routing->setAttentionTokenCap(std::clamp<int64_t>(
                    int64_t(std::sqrt(double(256ull << 20) / (4.0 * double(info.heads * attnLayers)))), 64, 4096));
            analysis::RoutingRecorder* rec = m_routing.get();
            m_session->setTap(rec, [rec](int64_t end) { rec->dropTokens(end); });
            m_routingSent = 0;
            m_routingClock.invalidate();
            sendRouting(true);
        }
        const int64_t total = feedAll ? int64_t(ids.size()) : 1;
        const RunOutcome out = m_session->prefill(
            [&](RunProgress p) {
                emitTokens(m_announced, p.done);
                emit progress(int(p.done), int(total));
            },
            &cancel, total);
        afterWork();
        emit finished({QStringLiteral("prefill"), int(m_session->computedEnd()), secondsOf(timer), out.cancelled});
    } catch (const std::exception& e) {
        emit failed(tr("The run failed"), QString::fromUtf8(e.what()));
    }
}

void ModelWorker::stepOne(const GenerationSettings& settings)
{
    if (!m_model || !m_session) {
        emit failed(tr("Nothing to step"), tr("Run a prompt first."));
        return;
    }
    try {
        QElapsedTimer timer;
        timer.start();
        applySettings(settings);
        // keep the token being computed and the one before it (the stepper's h_{t-1})
        const int64_t t = m_session->computedEnd();
        m_session->store().setPinned({std::max<int64_t>(t - 1, 0), t + 1});
        m_session->step();
        afterWork();
        emit finished({QStringLiteral("step"), 1, secondsOf(timer), false});
    } catch (const std::exception& e) {
        emit failed(tr("The step failed"), QString::fromUtf8(e.what()));
    }
}

void ModelWorker::generate(const GenerationSettings& settings)
{
    if (!m_model || !m_session) {
        emit failed(tr("Nothing to continue"), tr("Run a prompt first."));
        return;
    }
    try {
        cancel = false;
        QElapsedTimer timer;
        timer.start();
        applySettings(settings);
        int made = 0;
        const RunOutcome out = m_session->generate(
            settings.maxTokens,
            [&](int64_t t, int32_t) {
                emitTokens(m_announced, t + 1);
                emit progress(++made, settings.maxTokens);
                return true;
            },
            &cancel);
        afterWork();
        emit finished({QStringLiteral("generate"), int(out.tokens), secondsOf(timer), out.cancelled});
    } catch (const std::exception& e) {
        emit failed(tr("Generation failed"), QString::fromUtf8(e.what()));
    }
}

void ModelWorker::jump()
{
    const int64_t t = jumpTarget.load();
    guarded(QStringLiteral("jump"), tr("Could not rebuild the state"), [&] {
        cancel = false;
        QElapsedTimer timer;
        timer.start();
        emit progress(0, 0); // busy: replaying from the nearest checkpoint
        if (m_session && t >= 0 && t < int64_t(m_session->tokens().size())) {
            m_session->jumpTo(t, &cancel);
            afterWork();
        }
#if ARCHLENS_HAVE_HDF5
        else if (m_trace && t >= 0 && t < int64_t(m_trace->tokens().size())) {
            m_trace->jumpTo(t);
            emit dataReady();
        }
#endif
        emit jumped(t);
        emit finished({QStringLiteral("jump"), 0, secondsOf(timer), false});
    });
}

void ModelWorker::openTrace(const QString& path)
{
    guarded(QStringLiteral("trace"), tr("Could not open the trace"), [&] {
#if ARCHLENS_HAVE_HDF5
        cancel = false;
        QElapsedTimer timer;
        timer.start();
        auto trace = std::make_unique<TraceSession>(path.toStdString(), capBytes.load());
        const RunMeta meta = traceRunMeta(*trace, path);
        const VocabTexts vocab = traceVocab(*trace);
        m_session.reset();
        m_routing.reset();
        m_trace = std::move(trace);
        emit started({meta, m_trace->sharedStore(), vocab});
        const auto& ids = m_trace->tokens();
        const int64_t T = int64_t(ids.size());
        emit tokens(0, ids, traceTokenTexts(*m_trace));
        emit segments(m_trace->segments());
        constexpr int64_t kBlock = 256;
        for (int64_t b = 0; b < T; b += kBlock) {
            if (cancel)
                throw Error(ErrorCode::Cancelled, "opening the trace was cancelled");
            m_trace->load({b, std::min(T, b + kBlock)}, /*states=*/true);
            emit dataReady();
            emit progress(int(std::min(T, b + kBlock)), int(T));
        }
        if (T > 0)
            m_trace->jumpTo(T - 1);
        emit dataReady();
        emit finished({QStringLiteral("trace"), int(T), secondsOf(timer), false});
#else
        (void)path;
        noTraces();
#endif
    });
}

void ModelWorker::saveTrace(const QString& path)
{
    guarded(QStringLiteral("save"), tr("Could not save the trace"), [&] {
#if ARCHLENS_HAVE_HDF5
        if (!m_session)
            throw Error(ErrorCode::InvalidArgument, "there is no live run to save",
                        "", "run a prompt first (a replayed trace is already a file)");
        cancel = false;
        QElapsedTimer timer;
        timer.start();
        SessionTraceOptions o;
        o.meta.prompt = m_prompt.toStdString();
        o.meta.modelPath = m_summary.path.toStdString();
        o.meta.revision = m_summary.revision.toStdString();
        o.meta.seed = m_seedUsed;
        for (int32_t id : m_session->tokens())
            o.tokenText.push_back(tokenText(id).toStdString());
        o.tokenText.resize(size_t(m_session->computedEnd()));
        saveSessionTrace(
            *m_session, path.toStdString(), o,
            [this](RunProgress p) { emit progress(int(p.done), int(p.total)); }, &cancel);
        emit finished({QStringLiteral("save"), int(m_session->computedEnd()), secondsOf(timer), false});
#else
        (void)path;
        noTraces();
#endif
    });
}

} // namespace archlens::ui
