// The Fine-tune page (the course's Lab 6): LoRA fine-tuning of the loaded Mamba on a text
// file or JSONL of prompt/completion pairs. Rank, alpha, dropout, target modules (only the
// model's own module kinds, with live "covers N of M layers" from resolveTargets and a
// warning for targets PEFT refuses), learning rate, steps, batch, context; Start / Cancel /
// Resume; a live loss curve with tokens/s, step and time left; Save adapter; and, after
// training, the base model's and the adapted model's greedy generations side by side with
// per-layer Δ/B/C statistics before and after. All model work runs on a FinetuneWorker
// thread.
//
// Every run is kept in its own folder under a persistent per-user runs folder
// (AppDataLocation/finetune/<model>-<timestamp>): the trainer's checkpoint with the page's
// settings and the loss history. "Previous runs" lists the current model's runs; Resume
// continues the selected one (after a restart too, the loss curve redrawn from its history),
// Delete removes one after asking. Nothing trained is dropped without asking: a running
// fine-tune stopped by quitting or opening another model leaves its checkpoint.
#pragma once

#include <QPointer>
#include <QThread>
#include <QVector>
#include <QWidget>

#include <functional>
#include <memory>

#include "finetune/finetune_worker.h"

class QCheckBox;
class QDoubleSpinBox;
class QLabel;
class QLineEdit;
class QListWidget;
class QGroupBox;
class QTabWidget;
class QPlainTextEdit;
class QProgressBar;
class QPushButton;
class QSpinBox;
class QTableWidget;
class QLineSeries;
class QChart;
class QValueAxis;

namespace archlens::ui {

class FinetunePage : public QWidget {
    Q_OBJECT
public:
    explicit FinetunePage(QWidget* parent = nullptr);
    ~FinetunePage() override;

    // The model to fine-tune (a Mamba folder); loaded on the worker when the page is shown.
    void setModelDir(const QString& dir);
    QString modelDir() const { return m_modelDir; }
    // A model that is not a Mamba: the page says so (naming what it is) and disables itself.
    void setUnsupportedModel(const QString& dir, const QString& why);
    bool isUnsupported() const { return !m_unsupported.isEmpty(); }
    QString modelMessage() const;

    // Where runs are kept: AppDataLocation/finetune unless set (tests: a temporary folder).
    static QString defaultRunsRoot();
    static void setDefaultRunsRoot(const QString& dir); // for pages created afterwards
    void setRunsRoot(const QString& dir);
    QString runsRoot() const { return m_runsRoot; }
    // The current model's runs as last listed, newest first.
    const QVector<FinetuneRun>& runs() const { return m_runList; }
    // Selects a listed run: its settings fill the form and its loss curve is drawn.
    void selectRun(const QString& dir);
    QString selectedRun() const;
    void deleteRun(const QString& dir);
    void refreshRuns();
    void setDataPath(const QString& path);
    void setComparePrompt(const QString& text);
    void setTargets(const QStringList& targets);
    // Steps, batch, context, learning rate, rank, alpha, dropout.
    void setTraining(int steps, int batch, int context, double lr);
    void setAdapter(int rank, double alpha, double dropout);

    void start();
    void cancel();
    // Continues the selected run (the one just stopped, or one from an earlier session) up to Steps.
    void resume();
    void compare();
    void saveAdapterTo(const QString& dir);
    // True when there is no unsaved adapter, or the student agrees to discard it.
    bool confirmDiscard(const QString& action);
    // Replaces the question dialog (tests).
    void setConfirmHandler(std::function<bool(const QString&)> ask) { m_ask = std::move(ask); }

    bool isReady() const { return m_base != nullptr; }
    bool isTraining() const { return m_training; }
    bool hasUnsavedAdapter() const { return m_unsaved; }
    QString checkpointDir() const { return m_ckptDir; }
    QString coverageText() const;
    QString peftWarningText() const;
    const QLineSeries* lossSeries() const { return m_series; }
    QString baseGeneration() const;
    QString adaptedGeneration() const;
    const QTableWidget* statsTable() const { return m_stats; }

signals:
    void modelPrepared();
    void trainingFinished(const archlens::ui::FinetuneDone& done);
    void comparisonReady();
    void adapterSaved(const QString& dir);
    void failed(const QString& message);
    void runsListed();

protected:
    void showEvent(QShowEvent* e) override;

private:
    void buildUi();
    void requestLoad();
    void updateTargets();
    void updateButtons();
    QStringList checkedTargets() const;
    void onLoaded(const QString& dir, std::shared_ptr<const archlens::train::MambaTrainModel> base);
    void onProgress(const FinetuneProgress& p);
    void onFinished(const FinetuneDone& d);
    void onCompared(const FinetuneComparison& c);
    void onFailed(const QString& what, const QString& message);
    void onRunsListed(const QString& modelDir, const QVector<FinetuneRun>& runs);
    void showHistory(const QVector<QPointF>& points);
    void fillForm(const FinetuneSettings& s);
    QString newRunDir() const;
    void fitStatsRows(int rows);

    QThread m_thread;
    FinetuneWorker* m_worker = nullptr;
    std::function<bool(const QString&)> m_ask;
    QString m_modelDir, m_loadedDir, m_requestedDir;
    std::shared_ptr<const archlens::train::MambaTrainModel> m_base;
    QString m_runsRoot;
    QString m_ckptDir;     // the run in memory (trained or resumed this session)
    QString m_resumingDir; // the run a resume was asked for
    QString m_unsupported; // why the current model cannot be fine-tuned
    QVector<FinetuneRun> m_runList;
    bool m_training = false, m_unsaved = false, m_resumable = false, m_hasAdapter = false;
    qint64 m_doneStep = 0;
    double m_maxLoss = 0, m_minLoss = 0;

    QLabel* m_modelLabel = nullptr;
    QLineEdit* m_data = nullptr;
    QSpinBox* m_rank = nullptr;
    QDoubleSpinBox* m_alpha = nullptr;
    QDoubleSpinBox* m_dropout = nullptr;
    QVector<QCheckBox*> m_targetBoxes;
    QLabel* m_coverage = nullptr;
    QCheckBox* m_forPeft = nullptr;
    QLabel* m_peftWarning = nullptr;
    QDoubleSpinBox* m_lr = nullptr;
    QSpinBox* m_steps = nullptr;
    QSpinBox* m_batch = nullptr;
    QSpinBox* m_context = nullptr;
    QSpinBox* m_seed = nullptr;
    QPushButton* m_start = nullptr;
    QPushButton* m_cancel = nullptr;
    QPushButton* m_resume = nullptr;
    QPushButton* m_save = nullptr;
    QTabWidget* m_leftTabs = nullptr;
    QListWidget* m_runsView = nullptr;
    QPushButton* m_deleteRun = nullptr;
    QWidget* m_setup = nullptr;
    QLabel* m_status = nullptr;
    QProgressBar* m_progress = nullptr;
    QChart* m_chart = nullptr;
    QLineSeries* m_series = nullptr;
    QValueAxis* m_axisX = nullptr;
    QValueAxis* m_axisY = nullptr;
    QLineEdit* m_prompt = nullptr;
    QSpinBox* m_newTokens = nullptr;
    QPushButton* m_compare = nullptr;
    QPlainTextEdit* m_baseText = nullptr;
    QPlainTextEdit* m_adaptedText = nullptr;
    QTableWidget* m_stats = nullptr;
    QGroupBox* m_statsBox = nullptr;
};

} // namespace archlens::ui
