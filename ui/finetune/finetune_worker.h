// FinetuneWorker lives on its own QThread and runs a LoRA fine-tune of a Mamba
// (core/training): loading the base model, training with progress and a cancel flag (a
// cancelled run leaves a resumable checkpoint), resuming, saving the adapter, and the
// before/after comparison (greedy generations and Δ/B/C statistics of the base model and of
// the adapted one on the same prompt). Results come back as signals carrying plain data.
#pragma once

#include <QObject>
#include <QPointF>
#include <QString>
#include <QStringList>
#include <QVector>

#include <atomic>
#include <functional>
#include <memory>
#include <optional>

#include "tokenizer/tokenizer.h"
#include "training/finetune.h"
#include "training/trainer.h"

namespace archlens::ui {

struct FinetuneSettings {
    QString dataPath;
    int rank = 8;
    double alpha = 16, dropout = 0, lr = 1e-3;
    QStringList targets;
    int steps = 200, batch = 8, context = 64;
    quint64 seed = 1;
    QString checkpointDir; // where the trainer checkpoints (and a cancelled run can resume)
};

struct FinetuneProgress {
    QVector<QPointF> points; // (step, loss) of every step since the last report
    qint64 step = 0, steps = 0;
    double loss = 0, tokensPerSecond = 0, etaSeconds = 0, elapsedSeconds = 0;
};

struct FinetuneDone {
    qint64 step = 0, steps = 0;
    bool cancelled = false;
    double seconds = 0, lastLoss = 0;
    QString checkpointDir;
};

struct FinetuneComparison {
    QString prompt, baseText, adaptedText;
    QVector<archlens::train::ScanLayerStats> before, after;
};

class FinetuneWorker : public QObject {
    Q_OBJECT
public:
    FinetuneWorker();
    ~FinetuneWorker() override;
    std::atomic<bool> cancel{false};

public slots:
    // Loads the base model (config.json + model.safetensors + tokenizer.json).
    void load(const QString& modelDir);
    // A fresh adapter, trained from step 0.
    void start(const archlens::ui::FinetuneSettings& settings);
    // Continues the last (cancelled) run from its checkpoint up to `steps`.
    void resume(int steps);
    void compare(const QString& prompt, int newTokens);
    void saveAdapter(const QString& dir);

signals:
    // The base model, read-only, so the page can validate target modules as they are ticked.
    void loaded(const QString& modelDir, std::shared_ptr<const archlens::train::MambaTrainModel> base);
    void progress(const archlens::ui::FinetuneProgress& p);
    void finished(const archlens::ui::FinetuneDone& done);
    void compared(const archlens::ui::FinetuneComparison& c);
    void saved(const QString& dir);
    void failed(const QString& what, const QString& message);

private:
    bool guarded(const QString& what, const std::function<void()>& work);
    void train(bool resuming);

    QString m_modelDir;
    std::shared_ptr<const archlens::train::MambaTrainModel> m_base;
    std::optional<Tokenizer> m_tokenizer;
    std::unique_ptr<archlens::train::MambaTrainModel> m_model; // base + adapter
    std::unique_ptr<archlens::train::Task> m_task;
    archlens::train::TrainOptions m_opts;
    QString m_checkpointDir;
    std::unique_ptr<ThreadPool> m_pool;
};

} // namespace archlens::ui

Q_DECLARE_METATYPE(archlens::ui::FinetuneSettings)
Q_DECLARE_METATYPE(archlens::ui::FinetuneProgress)
Q_DECLARE_METATYPE(archlens::ui::FinetuneDone)
Q_DECLARE_METATYPE(archlens::ui::FinetuneComparison)
Q_DECLARE_METATYPE(std::shared_ptr<const archlens::train::MambaTrainModel>)
