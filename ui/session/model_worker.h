// ModelWorker lives on its own QThread and drives one session of the engine: a RunSession
// (core/runtime/run_session.h) on a loaded model, or a TraceSession replaying an HDF5 trace
// without the model. Prefill (with progress and cancel), single steps, streaming generation,
// scrubbing (jumpTo: recomputes dropped states from the nearest checkpoint) and trace save all
// run here; the session's FrameStore is what the UI reads (TraceModel::sync on the UI
// thread's coalescing timer). Everything else comes back as signals carrying plain data.
#pragma once

#include <QElapsedTimer>
#include <QObject>
#include <QString>
#include <QStringList>
#include <QVector>

#include <atomic>
#include <functional>
#include <memory>
#include <optional>

#include "analysis/moe_analysis.h"
#include "models/model.h"
#include "runtime/run_session.h"
#include "session/trace_model.h"
#include "tokenizer/tokenizer.h"

namespace archlens {
class TraceSession;
}

namespace archlens::ui {

// What the window shows about a loaded model (copied out of core types).
struct ModelSummary {
    QString path, name, architecture, backend, weightDType, label, revision;
    bool untrained = false;
    qint64 layers = 0, dModel = 0, vocabRows = 0, parameters = 0, loadedBytes = 0, stateBytes = 0;
    qint64 dInner = 0, dState = 0, dConv = 0, dtRank = 0;
    QStringList layerMixer;
    QStringList layerFfn;
    QVector<QPair<QString, QString>> facts;
    // per-tensor rows for the structure tree: (name, shape, dtype)
    QVector<QStringList> tensors;
    bool hasTokenizer = false;
    bool tiedEmbeddings = false;
};

struct GenerationSettings {
    float temperature = 0.f; // 0: greedy
    int topK = 0;
    float topP = 1.f;
    qint64 seed = 0;
    int maxTokens = 32;
};

// How a piece of work ended.
struct WorkDone {
    QString kind; // "prefill", "step", "generate", "trace", "save", "jump"
    int tokens = 0;       // tokens this work added
    double seconds = 0;
    bool cancelled = false;
};

// A new run (or trace) began: the UI drops what it shows and reads `store` from now on.
struct SessionStart {
    RunMeta meta;
    std::shared_ptr<FrameStore> store;
    VocabTexts vocab;
};

class ModelWorker : public QObject {
    Q_OBJECT
public:
    ModelWorker();
    ~ModelWorker() override;
    std::atomic<bool> cancel{false};
    std::atomic<int> prefillChunk{32};  // tokens per chunk-path call: progress and cancel between
    std::atomic<uint64_t> capBytes{FrameStore::kDefaultCapBytes}; // for the next session's store
    std::atomic<int64_t> checkpointInterval{256};
    std::atomic<int64_t> jumpTarget{-1}; // the newest scrub request (older queued ones are skipped)

public slots:
    void load(const QString& path, const QString& backend);
    // Encodes the prompt and starts a new RunSession. feedAll: prefill every prompt token; else
    // feed only the first and leave the rest for stepOne().
    void start(const QString& prompt, bool feedAll, const archlens::ui::GenerationSettings& settings);
    // One token through the recurrent step: the next prompt token if any is left, else a
    // generated one.
    void stepOne(const archlens::ui::GenerationSettings& settings);
    // Streams up to settings.maxTokens generated tokens (after any prompt tokens left).
    void generate(const archlens::ui::GenerationSettings& settings);
    // Makes jumpTarget the views' token: rebuilds its states (and h_{t-1}) from the nearest
    // checkpoint when the store dropped them.
    void jump();
    // Opens a trace as a read-only session (no model needed).
    void openTrace(const QString& path);
    // Replays the live session from token 0 into an HDF5 trace with its checkpoints.
    void saveTrace(const QString& path);

public:
    // Runs fn on this thread with the loaded model and tokenizer (either may be null), e.g. to
    // route a corpus through the session's own model with a fresh state; the live session is
    // untouched. Call it through QMetaObject::invokeMethod on this worker
    // (SessionController::withModel).
    void withModel(const std::function<void(Model*, const Tokenizer*)>& fn);

signals:
    void loaded(const archlens::ui::ModelSummary& summary);
    void started(const archlens::ui::SessionStart& start);
    void tokens(qint64 begin, const std::vector<int32_t>& ids, const QStringList& texts);
    void segments(const std::vector<archlens::Segment>& segments);
    void jumped(qint64 token);
    void finished(const archlens::ui::WorkDone& done);
    void failed(const QString& what, const QString& message);
    void progress(int done, int total);
    void dataReady(); // the store has new frames
    void promptLeft(int tokens);
    // The live run's routing and attention weights so far (a RoutingRecorder on the session's
    // tap: the same forward passes the views' frames come from, no second model). Sent for
    // models with routers or attention layers: empty when a run starts, then at most every
    // ~100 ms while tokens arrive and after every piece of work.
    void routing(std::shared_ptr<const archlens::analysis::RoutingData> data);

private:
    void guarded(const QString& kind, const QString& what, const std::function<void()>& work);
    RunMeta baseMeta() const;
    QString tokenText(int32_t id) const;
    SamplingParams sampling(const GenerationSettings& s) const;
    void applySettings(const GenerationSettings& s);
    void emitTokens(int64_t begin, int64_t end);
    void afterWork();
    void sendRouting(bool force);

    std::unique_ptr<Model> m_model;
    std::optional<Tokenizer> m_tokenizer;
    ModelSummary m_summary;
    VocabTexts m_vocab;
    std::unique_ptr<RunSession> m_session;
    std::unique_ptr<TraceSession> m_trace;
    std::unique_ptr<analysis::RoutingRecorder> m_routing; // the session's tap (null: nothing to route)
    uint64_t m_routingSent = 0;
    QElapsedTimer m_routingClock;
    int64_t m_announced = 0; // tokens already sent to the UI
    qint64 m_seed = 0;
    bool m_seedApplied = false;
    qint64 m_seedUsed = -1;
    QString m_prompt;
};

} // namespace archlens::ui

Q_DECLARE_METATYPE(archlens::ui::ModelSummary)
Q_DECLARE_METATYPE(archlens::ui::GenerationSettings)
Q_DECLARE_METATYPE(archlens::ui::WorkDone)
Q_DECLARE_METATYPE(archlens::ui::SessionStart)
Q_DECLARE_METATYPE(std::shared_ptr<const archlens::analysis::RoutingData>)
