#include "session/session_controller.h"

namespace archlens::ui {

namespace {
constexpr double kFlushBudgetMs = 6; // per coalescing tick: the rest waits for the next one
}

SessionController::SessionController(const QString& name, QObject* parent)
    : QObject(parent)
    , m_name(name)
{
    m_worker = new ModelWorker;
    m_worker->moveToThread(&m_thread);
    connect(&m_thread, &QThread::finished, m_worker, &QObject::deleteLater);
    m_coalesce.setSingleShot(true);
    m_coalesce.setInterval(16);
    connect(&m_coalesce, &QTimer::timeout, this, &SessionController::tick);
    connect(m_worker, &ModelWorker::dataReady, this, [this] {
        if (!m_coalesce.isActive())
            m_coalesce.start();
    });
    connect(m_worker, &ModelWorker::started, this, [this](const SessionStart& s) {
        m_coalesce.stop();
        m_tokens = {};
        m_model.reset(s.meta, s.store, s.vocab);
    });
    // tokens are merged like frames: one TraceModel::grew per tick, not one per token
    connect(m_worker, &ModelWorker::tokens, this,
            [this](qint64 begin, const std::vector<int32_t>& ids, const QStringList& texts) {
                if (m_tokens.ids.empty())
                    m_tokens.begin = begin;
                if (begin != m_tokens.begin + qint64(m_tokens.ids.size())) { // not a continuation
                    applyTokens();
                    m_tokens.begin = begin;
                }
                m_tokens.ids.insert(m_tokens.ids.end(), ids.begin(), ids.end());
                m_tokens.texts += texts;
                if (!m_coalesce.isActive())
                    m_coalesce.start();
            });
    connect(m_worker, &ModelWorker::segments, this,
            [this](const std::vector<Segment>& segments) { m_model.setSegments(segments); });
    connect(m_worker, &ModelWorker::jumped, this, [this](qint64 t) {
        flush();
        m_model.refreshStates({std::max<qint64>(t - 1, 0), t + 1});
        emit updated();
        emit recomputed(int(t));
    });
    connect(m_worker, &ModelWorker::loaded, this, [this](const ModelSummary& s) {
        m_summary = s;
        m_hasModel = true;
        setBusy(false);
        emit modelLoaded(s);
    });
    connect(m_worker, &ModelWorker::finished, this, [this](const WorkDone& d) {
        m_coalesce.stop();
        tick(); // what is left after the budget follows on the timer
        if (d.seconds > 0 && d.tokens > 0 && d.kind != QLatin1String("save") && d.kind != QLatin1String("jump"))
            m_tokensPerSecond = double(d.tokens) / d.seconds;
        setBusy(false);
        emit workFinished(d);
        takeWantedToken();
    });
    connect(m_worker, &ModelWorker::failed, this, [this](const QString& what, const QString& message) {
        flush();
        m_lastError = what + ": " + message;
        setBusy(false);
        emit failed(what, message);
    });
    connect(m_worker, &ModelWorker::progress, this, &SessionController::progress);
    connect(m_worker, &ModelWorker::promptLeft, this, [this](int n) { m_promptLeft = n; });
    connect(m_worker, &ModelWorker::routing, this,
            [this](std::shared_ptr<const analysis::RoutingData> d) { m_model.setRouting(std::move(d)); });
    m_thread.setObjectName("archlens-session-" + name);
    m_thread.start();
}

void SessionController::withModel(std::function<void(Model*, const Tokenizer*)> fn)
{
    ModelWorker* w = m_worker;
    QMetaObject::invokeMethod(w, [w, fn = std::move(fn)] { w->withModel(fn); });
}

SessionController::~SessionController()
{
    m_worker->cancel = true;
    m_thread.quit();
    m_thread.wait();
}

void SessionController::setBusy(bool busy, const QString& what, const QString& kind)
{
    m_busy = busy;
    m_busyKind = busy ? kind : QString();
    emit busyChanged(busy, what);
}

void SessionController::openModel(const QString& path, const QString& backend)
{
    setBusy(true, tr("Loading %1…").arg(path), QStringLiteral("load"));
    QMetaObject::invokeMethod(m_worker, [w = m_worker, path, backend] { w->load(path, backend); });
}

void SessionController::run(const QString& prompt, bool feedAll, const GenerationSettings& settings)
{
    if (m_busy || !m_hasModel)
        return;
    m_wantToken = -1;
    setBusy(true, feedAll ? tr("Running the prompt…") : tr("Feeding the first token…"), QStringLiteral("prefill"));
    QMetaObject::invokeMethod(m_worker, [w = m_worker, prompt, feedAll, settings] { w->start(prompt, feedAll, settings); });
}

void SessionController::step(const GenerationSettings& settings)
{
    if (m_busy || !m_hasModel || !isLive() || m_model.tokenCount() == 0)
        return;
    setBusy(true, m_promptLeft > 0 ? tr("Feeding the next prompt token…") : tr("Generating one token…"),
            QStringLiteral("step"));
    QMetaObject::invokeMethod(m_worker, [w = m_worker, settings] { w->stepOne(settings); });
}

void SessionController::generate(const GenerationSettings& settings)
{
    if (m_busy || !m_hasModel || !isLive() || m_model.tokenCount() == 0)
        return;
    setBusy(true, tr("Generating…"), QStringLiteral("generate"));
    QMetaObject::invokeMethod(m_worker, [w = m_worker, settings] { w->generate(settings); });
}

void SessionController::openTrace(const QString& path)
{
    if (m_busy)
        return;
    m_wantToken = -1;
    setBusy(true, tr("Opening trace %1…").arg(path), QStringLiteral("trace"));
    QMetaObject::invokeMethod(m_worker, [w = m_worker, path] { w->openTrace(path); });
}

void SessionController::saveTrace(const QString& path)
{
    if (m_busy)
        return;
    setBusy(true, tr("Saving trace %1…").arg(path), QStringLiteral("save"));
    QMetaObject::invokeMethod(m_worker, [w = m_worker, path] { w->saveTrace(path); });
}

void SessionController::cancel() { m_worker->cancel = true; }

void SessionController::setCapBytes(uint64_t bytes)
{
    m_worker->capBytes = bytes;
    if (FrameStore* s = m_model.store())
        s->setCapBytes(bytes); // evicts at once when lowered
    m_model.sync();            // and this side lets go of what it dropped
    emit updated();
}

void SessionController::ensureToken(int t)
{
    if (!m_tokens.ids.empty()) { // the UI is behind: decide after the next tick
        m_wantToken = t;
        return;
    }
    if (t < 0 || t >= m_model.tokenCount() || !m_model.store())
        return;
    if (m_busy || m_model.hasPending()) { // decided when the worker is idle and the UI has caught up
        m_wantToken = t;
        return;
    }
    if (m_model.hasToken(t))
        return;
    // the store may already hold its states again (republished while the UI was behind)
    m_model.refreshStates({std::max(t - 1, 0), t + 1});
    if (m_model.hasToken(t))
        return;
    m_worker->jumpTarget = t;
    setBusy(true, tr("Recomputing token %1 from the nearest checkpoint…").arg(t), QStringLiteral("jump"));
    QMetaObject::invokeMethod(m_worker, [w = m_worker] { w->jump(); });
}

void SessionController::takeWantedToken()
{
    if (m_wantToken < 0 || m_busy || m_model.hasPending())
        return;
    const int t = m_wantToken;
    m_wantToken = -1;
    ensureToken(t);
}

void SessionController::applyTokens()
{
    if (m_tokens.ids.empty())
        return;
    PendingTokens t = std::move(m_tokens);
    m_tokens = {};
    m_model.addTokens(t.begin, t.ids, t.texts);
}

void SessionController::tick()
{
    QElapsedTimer timer;
    timer.start();
    applyTokens();
    const bool done = m_model.sync(kFlushBudgetMs);
    emit updated();
    if (!done)
        m_coalesce.start(); // more frames wait: the next tick places them
    else
        takeWantedToken();
    if (qEnvironmentVariableIsSet("ARCHLENS_DEBUG_PAINT"))
        qInfo("flush: %.2f ms%s", double(timer.nsecsElapsed()) / 1e6, done ? "" : " (more pending)");
}

void SessionController::flush()
{
    m_coalesce.stop();
    applyTokens();
    m_model.sync();
    emit updated();
}

} // namespace archlens::ui
