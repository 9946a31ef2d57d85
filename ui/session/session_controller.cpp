#include "session/session_controller.h"

namespace archlens::ui {

SessionController::SessionController(const QString& name, QObject* parent)
    : QObject(parent)
    , m_name(name)
    , m_sink(std::make_shared<LiveSink>())
{
    m_worker = new ModelWorker(m_sink);
    m_worker->moveToThread(&m_thread);
    connect(&m_thread, &QThread::finished, m_worker, &QObject::deleteLater);
    m_coalesce.setSingleShot(true);
    m_coalesce.setInterval(16);
    connect(&m_coalesce, &QTimer::timeout, this, &SessionController::flush);
    connect(m_worker, &ModelWorker::dataReady, this, [this] {
        if (!m_coalesce.isActive())
            m_coalesce.start();
    });
    connect(m_worker, &ModelWorker::loaded, this, [this](const ModelSummary& s) {
        m_summary = s;
        m_hasModel = true;
        setBusy(false);
        emit modelLoaded(s);
    });
    connect(m_worker, &ModelWorker::finished, this, [this](const WorkDone& d) {
        flush();
        if (d.seconds > 0 && d.tokens > 0)
            m_tokensPerSecond = double(d.tokens) / d.seconds;
        setBusy(false);
        emit workFinished(d);
    });
    connect(m_worker, &ModelWorker::failed, this, [this](const QString& what, const QString& message) {
        flush();
        m_lastError = what + ": " + message;
        setBusy(false);
        emit failed(what, message);
    });
    connect(m_worker, &ModelWorker::progress, this, &SessionController::progress);
    connect(m_worker, &ModelWorker::promptLeft, this, [this](int n) { m_promptLeft = n; });
    m_thread.setObjectName("archlens-session-" + name);
    m_thread.start();
}

SessionController::~SessionController()
{
    m_worker->cancel = true;
    m_thread.quit();
    m_thread.wait();
}

void SessionController::setBusy(bool busy, const QString& what)
{
    m_busy = busy;
    emit busyChanged(busy, what);
}

void SessionController::openModel(const QString& path, const QString& backend)
{
    setBusy(true, tr("Loading %1…").arg(path));
    QMetaObject::invokeMethod(m_worker, [w = m_worker, path, backend] { w->load(path, backend); });
}

void SessionController::run(const QString& prompt, bool feedAll, const GenerationSettings& settings)
{
    if (m_busy || !m_hasModel)
        return;
    setBusy(true, feedAll ? tr("Running the prompt…") : tr("Feeding the first token…"));
    QMetaObject::invokeMethod(m_worker, [w = m_worker, prompt, feedAll, settings] { w->start(prompt, feedAll, settings); });
}

void SessionController::step(const GenerationSettings& settings)
{
    if (m_busy || !m_hasModel || m_model.meta().source != QLatin1String("live"))
        return;
    setBusy(true, m_promptLeft > 0 ? tr("Feeding the next prompt token…") : tr("Generating one token…"));
    QMetaObject::invokeMethod(m_worker, [w = m_worker, settings] { w->stepOne(settings); });
}

void SessionController::generate(const GenerationSettings& settings)
{
    if (m_busy || !m_hasModel || m_model.meta().source != QLatin1String("live"))
        return;
    setBusy(true, tr("Generating…"));
    QMetaObject::invokeMethod(m_worker, [w = m_worker, settings] { w->generate(settings); });
}

void SessionController::openTrace(const QString& path)
{
    if (m_busy)
        return;
    setBusy(true, tr("Opening trace %1…").arg(path));
    QMetaObject::invokeMethod(m_worker, [w = m_worker, path] { w->openTrace(path); });
}

void SessionController::saveTrace(const QString& path)
{
    if (m_busy)
        return;
    flush();
    setBusy(true, tr("Saving trace %1…").arg(path));
    TraceSnapshot snap = snapshotOf(m_model);
    QMetaObject::invokeMethod(m_worker, [w = m_worker, path, snap = std::move(snap)] { w->saveTrace(path, snap); });
}

void SessionController::cancel() { m_worker->cancel = true; }

void SessionController::flush()
{
    m_coalesce.stop();
    FrameBatch batch = m_sink->take(); // the sink's lock is held only for this swap
    if (batch.empty())
        return;
    QElapsedTimer timer;
    timer.start();
    const size_t frames = batch.frames.size();
    m_model.apply(std::move(batch));
    const double applyMs = double(timer.nsecsElapsed()) / 1e6;
    emit updated();
    if (qEnvironmentVariableIsSet("ARCHLENS_DEBUG_PAINT"))
        qInfo("flush: %zu frames, apply %.2f ms, total %.2f ms", frames, applyMs, double(timer.nsecsElapsed()) / 1e6);
}

} // namespace archlens::ui
