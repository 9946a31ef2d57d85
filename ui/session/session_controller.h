// SessionController: one model session on the UI side. It owns the worker thread (model,
// state), the LiveSink the worker records into, and the TraceModel the views draw from.
// Worker bursts are merged by a single-shot coalescing timer (~60 Hz): it moves the pending
// frames out of the sink under its short lock, then appends them to the TraceModel. Two
// controllers side by side are how two models are compared on the same prompt.
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
    // Moves whatever is pending in the sink into the model now.
    void flush();
    void setCoalesceInterval(int ms) { m_coalesce.setInterval(ms); }
    void setPrefillChunk(int tokens) { m_worker->prefillChunk = tokens; }

signals:
    void modelLoaded(const archlens::ui::ModelSummary& summary);
    void workFinished(const archlens::ui::WorkDone& done);
    void failed(const QString& what, const QString& message);
    void busyChanged(bool busy, const QString& what);
    void progress(int done, int total);
    void updated(); // a batch of frames was applied

private:
    void setBusy(bool busy, const QString& what = {});
    QString m_name;
    QThread m_thread;
    std::shared_ptr<LiveSink> m_sink;
    ModelWorker* m_worker = nullptr;
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
