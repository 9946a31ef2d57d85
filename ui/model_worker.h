// ModelWorker lives on its own QThread and owns the loaded model: loading and running
// happen there, results come back to the UI thread as signals carrying plain data.
#pragma once

#include <QObject>
#include <QString>
#include <QStringList>
#include <QVector>

#include <atomic>
#include <memory>
#include <optional>

#include "models/model.h"
#include "tokenizer/tokenizer.h"

namespace archlens::ui {

// What the window shows about a loaded model (copied out of core types).
struct ModelSummary {
    QString path, name, architecture, backend, weightDType, label;
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

struct Prediction {
    int id = 0;
    QString text;
    float probability = 0.f;
};

struct RunResult {
    QVector<int> ids;
    QStringList texts;
    QVector<QVector<Prediction>> top5; // per token: the model's top-5 next-token predictions
    double seconds = 0;
};

class ModelWorker : public QObject {
    Q_OBJECT
public:
    ModelWorker();
    ~ModelWorker() override;
    std::atomic<bool> cancel{false};

public slots:
    void load(const QString& path, const QString& backend);
    void run(const QString& prompt);

signals:
    void loaded(const archlens::ui::ModelSummary& summary);
    void ran(const archlens::ui::RunResult& result);
    void failed(const QString& what, const QString& message);
    void progress(int done, int total);

private:
    std::unique_ptr<Model> m_model;
    std::optional<Tokenizer> m_tokenizer;
};

} // namespace archlens::ui

Q_DECLARE_METATYPE(archlens::ui::ModelSummary)
Q_DECLARE_METATYPE(archlens::ui::RunResult)
