// SessionController: one model session on the UI side. It owns the worker thread (model,
// RunSession or TraceSession) and the TraceModel the views draw from. Worker bursts are merged
// by a single-shot coalescing timer (~60 Hz): it moves the new frames out of the session's
// FrameStore under the store's short lock, then places them in the TraceModel, within a time
// budget per tick so a long prefill never stalls the event loop. Moving the cursor onto a
// token whose frames or states the store dropped asks the worker to recompute them from the
// nearest checkpoint (RunSession::jumpTo). Two controllers side by side are how two models
// are compared on the same prompt.
#pragma once

#include <QElapsedTimer>
#include <QObject>
#include <QThread>
#include <QTimer>

#include <memory>

#include "session/model_worker.h"
#include "session/trace_model.h"

namespace archlens::ui {

class SessionController : public QObject {
    Q_OBJECT
public:
    explicit SessionController(const QString& name, QObject* parent = nullptr);
    ~SessionController() override;

    QString name() const { return m_name; }
    TraceModel* model() { return &m_model; }
    const TraceModel* model() const { return &m_model; }
    const ModelSummary& summary() const { return m_summary; }
    bool hasModel() const { return m_hasModel; }
    bool isBusy() const { return m_busy; }
    int promptLeft() const { return m_promptLeft; }
    double tokensPerSecond() const { return m_tokensPerSecond; }
    QString lastError() const { return m_lastError; }

    void openModel(const QString& path, const QString& backend = QStringLiteral("auto"));
    void run(const QString& prompt, bool feedAll, const GenerationSettings& settings);
    void step(const GenerationSettings& settings);
    void generate(const GenerationSettings& settings);
    void openTrace(const QString& path);
    void saveTrace(const QString& path);
    void cancel();
    // Makes sure token t's frames and states are shown: recomputed on the worker when the
    // store dropped them (at most one recompute in flight; the newest token wins).
    void ensureToken(int t);
    bool isRecomputing() const { return m_busy && m_busyKind == QLatin1String("jump"); }
    // Moves whatever is new in the store into the model now (no time budget).
    void flush();
    void setCoalesceInterval(int ms) { m_coalesce.setInterval(ms); }
    void setPrefillChunk(int tokens) { m_worker->prefillChunk = tokens; }
    void setCheckpointInterval(int tokens) { m_worker->checkpointInterval = tokens; }
    int checkpointInterval() const { return int(m_worker->checkpointInterval); }
    // The memory cap of this session's store (frames, states and checkpoints), now and for later runs.
    void setCapBytes(uint64_t bytes);
    uint64_t capBytes() const { return m_worker->capBytes; }
    bool isLive() const { return m_model.meta().source == QLatin1String("live"); }
    // Runs fn on the session's worker thread with its model and tokenizer (null when none is
    // loaded), queued after the work already asked for: the session's one model copy serves
    // other readers too (the routing panel's corpora). fn must not touch UI objects.
    void withModel(std::function<void(Model*, const Tokenizer*)> fn);

signals:
    void modelLoaded(const archlens::ui::ModelSummary& summary);
    void workFinished(const archlens::ui::WorkDone& done);
    void failed(const QString& what, const QString& message);
    void busyChanged(bool busy, const QString& what);
    void progress(int done, int total);
    void updated(); // a batch of frames was applied
    void recomputed(int token); // a scrub's recompute finished

private:
    void setBusy(bool busy, const QString& what = {}, const QString& kind = {});
    void tick(); // the coalescing timer
    void takeWantedToken();
    void applyTokens();
    struct PendingTokens {
        qint64 begin = 0;
        std::vector<int32_t> ids;
        QStringList texts;
    };
    PendingTokens m_tokens; // from the worker, applied on the next tick
    QString m_name;
    QThread m_thread;
    ModelWorker* m_worker = nullptr;
    QString m_busyKind;
    int m_wantToken = -1; // a scrub target waiting for the worker
    TraceModel m_model;
    ModelSummary m_summary;
    QTimer m_coalesce;
    bool m_hasModel = false;
    bool m_busy = false;
    int m_promptLeft = 0;
    double m_tokensPerSecond = 0;
    QString m_lastError;
};

} // namespace archlens::ui
