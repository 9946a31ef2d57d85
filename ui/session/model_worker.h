// ModelWorker lives on its own QThread and owns one session's model, tokenizer and
// recurrent state: loading, prefill, single steps, streaming generation and trace replay
// all happen there. Probes and tokens go into the session's LiveSink (moved out by the UI
// thread's coalescing timer); everything else comes back as signals carrying plain data.
#pragma once

#include <QObject>
#include <QString>
#include <QStringList>
#include <QVector>

#include <atomic>
#include <memory>
#include <optional>

#include "models/model.h"
#include "session/live_sink.h"
#include "session/trace_io.h"
#include "tokenizer/tokenizer.h"

namespace archlens::ui {

// What the window shows about a loaded model (copied out of core types).
struct ModelSummary {
    QString path, name, architecture, backend, weightDType, label, revision;
    bool untrained = false;
    qint64 layers = 0, dModel = 0, vocabRows = 0, parameters = 0, loadedBytes = 0, stateBytes = 0;
    qint64 dInner = 0, dState = 0, dConv = 0, dtRank = 0;
    QStringList layerMixer;
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
    QString kind; // "prefill", "step", "generate", "trace"
    int tokens = 0;       // tokens this work added
    double seconds = 0;
    bool cancelled = false;
};

class ModelWorker : public QObject {
    Q_OBJECT
public:
    explicit ModelWorker(std::shared_ptr<LiveSink> sink);
    ~ModelWorker() override;
    std::atomic<bool> cancel{false};
    std::atomic<int> prefillChunk{32}; // tokens per chunk-path call: progress and cancel between

public slots:
    void load(const QString& path, const QString& backend);
    // Encodes the prompt and resets the state. feedAll: prefill every prompt token; else
    // feed only the first and leave the rest for stepOne().
    void start(const QString& prompt, bool feedAll, const archlens::ui::GenerationSettings& settings);
    // One token through the recurrent step: the next prompt token if any is left, else a
    // generated one.
    void stepOne(const archlens::ui::GenerationSettings& settings);
    // Streams up to settings.maxTokens generated tokens (after any prompt tokens left).
    void generate(const archlens::ui::GenerationSettings& settings);
    // Replays a trace file into the sink, without any model.
    void openTrace(const QString& path);
    // Writes the session's frames (a snapshot taken on the UI thread) and the logits kept here.
    void saveTrace(const QString& path, const archlens::ui::TraceSnapshot& snapshot);

signals:
    void loaded(const archlens::ui::ModelSummary& summary);
    void finished(const archlens::ui::WorkDone& done);
    void failed(const QString& what, const QString& message);
    void progress(int done, int total);
    void dataReady(); // something is pending in the sink
    void promptLeft(int tokens);

private:
    RunMeta baseMeta() const;
    QString tokenText(int32_t id) const;
    // Feeds ids (through the chunk path when several) and publishes probes, tokens, top-5.
    void feed(const std::vector<int32_t>& ids, ForwardMode mode);
    int32_t sampleNext(const GenerationSettings& s);

    std::shared_ptr<LiveSink> m_sink;
    std::unique_ptr<Model> m_model;
    std::optional<Tokenizer> m_tokenizer;
    ModelSummary m_summary;
    std::unique_ptr<ModelState> m_state;
    std::vector<int32_t> m_promptLeft;
    Tensor m_lastLogits; // (1, V) after the last token fed
    std::vector<float> m_logits; // (T, V) of this run, for trace saving; dropped past kMaxLogitBytes
    bool m_logitsDropped = false;
    static constexpr size_t kMaxLogitBytes = size_t(256) << 20;
    uint64_t m_rng = 0;
    qint64 m_seedUsed = -1;
    QString m_prompt;
};

} // namespace archlens::ui

Q_DECLARE_METATYPE(archlens::ui::ModelSummary)
Q_DECLARE_METATYPE(archlens::ui::GenerationSettings)
Q_DECLARE_METATYPE(archlens::ui::WorkDone)
Q_DECLARE_METATYPE(archlens::ui::TraceSnapshot)
