// The ArchLens main window: a model's structure and facts in docks, the prompt with its
// token strip and the model's next-token predictions in the centre. Model work happens
// on the ModelWorker's thread; this class only wires signals and draws.
#pragma once

#include <QMainWindow>
#include <QThread>

#include "model_worker.h"

class QLabel;
class QLineEdit;
class QProgressBar;
class QPushButton;
class QTableWidget;
class QTreeWidget;

namespace archlens::ui {

class TokenStrip;

class MainWindow : public QMainWindow {
    Q_OBJECT
public:
    explicit MainWindow(QWidget* parent = nullptr);
    ~MainWindow() override;

    // Loads a model folder on the worker thread.
    void openModel(const QString& path);
    void setPrompt(const QString& text);
    void runPrompt();
    bool isBusy() const { return m_busy; }
    const ModelSummary& summary() const { return m_summary; }
    const RunResult& lastRun() const { return m_result; }
    QString lastError() const { return m_lastError; }

signals:
    void modelReady();
    void runFinished();
    void failed(const QString& message);
    void requestLoad(const QString& path, const QString& backend);
    void requestRun(const QString& prompt);

protected:
    void closeEvent(QCloseEvent* e) override;
    void dragEnterEvent(QDragEnterEvent* e) override;
    void dropEvent(QDropEvent* e) override;

private:
    void buildUi();
    void setBusy(bool busy, const QString& what = {});
    void onLoaded(const ModelSummary& s);
    void onRan(const RunResult& r);
    void onFailed(const QString& what, const QString& message);
    void showPredictions(int token);
    void chooseModelFolder();

    QThread m_thread;
    ModelWorker* m_worker = nullptr;
    bool m_busy = false;
    ModelSummary m_summary;
    RunResult m_result;
    QString m_lastError;

    QLabel* m_title = nullptr;
    QLabel* m_badge = nullptr;
    QLineEdit* m_prompt = nullptr;
    QPushButton* m_run = nullptr;
    QPushButton* m_cancel = nullptr;
    TokenStrip* m_strip = nullptr;
    QLabel* m_predTitle = nullptr;
    QTableWidget* m_predictions = nullptr;
    QTreeWidget* m_structure = nullptr;
    QTableWidget* m_facts = nullptr;
    QLabel* m_statusBackend = nullptr;
    QLabel* m_statusMemory = nullptr;
    QLabel* m_statusSpeed = nullptr;
    QProgressBar* m_progress = nullptr;
};

} // namespace archlens::ui
