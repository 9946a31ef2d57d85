// FinetuneWorker lives on its own QThread and runs a LoRA fine-tune of a Mamba
// (core/training): loading the base model, training with progress and a cancel flag (a
// cancelled run leaves a resumable checkpoint), resuming, saving the adapter, and the
// before/after comparison (greedy generations and Δ/B/C statistics of the base model and of
// the adapted one on the same prompt). Results come back as signals carrying plain data.
//
// Every run lives in its own folder under the page's runs folder (persistent, per user): the
// trainer's checkpoint (adapter, optimizer, trainer_state.json with the page's settings under
// options.extra.gui and the loss of every step in history), so a run stopped in one session
// resumes in a later one. listRuns / deleteRun read and remove those folders off the UI thread.
#pragma once

#include <QDateTime>
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
    QString checkpointDir; // the run's folder: where the trainer checkpoints (and a stopped run resumes)
    QString modelDir;      // the base model (absolute), recorded with the run
};

// The page's settings as recorded in trainer_state.json (options.extra.gui), and back
// (Error(Format) naming the field for a missing or mistyped one).
nlohmann::ordered_json settingsToJson(const FinetuneSettings& s);
FinetuneSettings settingsFromJson(const nlohmann::json& j);

// A run folder as listed on the page.
struct FinetuneRun {
    QString dir, name;
    QDateTime saved;           // when its checkpoint was written
    qint64 step = 0, steps = 0, bytes = 0;
    double lastLoss = 0, elapsedSeconds = 0;
    FinetuneSettings settings;
    QVector<QPointF> history;  // (step, loss) from trainer_state.json
    bool resumable = false;    // a complete checkpoint with the page's settings
    QString problem;           // why not (an interrupted checkpoint, a run from the CLI ...)
};

struct FinetuneProgress {
    QVector<QPointF> points; // (step, loss) of every step since the last report
    qint64 step = 0, steps = 0;
    double loss = 0, tokensPerSecond = 0, etaSeconds = 0, elapsedSeconds = 0;
};

struct FinetuneDone {
    qint64 step = 0, steps = 0;
    bool cancelled = false;
    bool openedOnly = false; // a finished run opened (no steps trained)
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
    // Continues the run in `runDir` from its checkpoint up to `steps`: the run in memory when it
    // is that one, else loaded from the folder (base model + adapter + optimizer + the recorded
    // dataset). steps equal to the checkpoint's step loads the run without training.
    void resume(const QString& runDir, int steps);
    // The run folders under `root` whose base model is `modelDir`, newest first.
    void listRuns(const QString& root, const QString& modelDir);
    // Removes a run folder (only a direct child of `root`).
    void deleteRun(const QString& root, const QString& runDir);
    void compare(const QString& prompt, int newTokens);
    void saveAdapter(const QString& dir);

signals:
    // The base model, read-only, so the page can validate target modules as they are ticked.
    void loaded(const QString& modelDir, std::shared_ptr<const archlens::train::MambaTrainModel> base);
    void progress(const archlens::ui::FinetuneProgress& p);
    void finished(const archlens::ui::FinetuneDone& done);
    void compared(const archlens::ui::FinetuneComparison& c);
    void saved(const QString& dir);
    void runsListed(const QString& modelDir, const QVector<archlens::ui::FinetuneRun>& runs);
    void runDeleted(const QString& runDir);
    void failed(const QString& what, const QString& message);

private:
    bool guarded(const QString& what, const std::function<void()>& work);
    void train(bool resuming);
    void loadRun(const QString& runDir);

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
Q_DECLARE_METATYPE(archlens::ui::FinetuneRun)
Q_DECLARE_METATYPE(std::shared_ptr<const archlens::train::MambaTrainModel>)
