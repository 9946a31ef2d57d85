// The ArchLens main window: the selective-scan explorer. The prompt, run/generate controls,
// token strip, top-5 predictions and playback sit in the centre; every view (Δ, B, C, gate,
// state-norm, state h, scan stepper, channel charts), the model's structure and facts, the
// memory panel and the second (comparison) session are dock widgets with unique object
// names, so the layout is restored. Model work runs on the sessions' worker threads; this
// class wires signals and draws. The views are built in main_window_views.cpp.
#pragma once

#include <QMainWindow>
#include <QMap>

#include "session/model_worker.h"
#include "session/selection.h"
#include "session/session_controller.h"

class QAction;
class QCheckBox;
class QComboBox;
class QDoubleSpinBox;
class QLabel;
class QLineEdit;
class QMenu;
class QProgressBar;
class QPushButton;
class QScrollArea;
class QSlider;
class QSpinBox;
class QTableWidget;
class QTreeWidget;

namespace archlens::ui {

class FinetunePage;
class Figure;
class CompareDock;
class FigureWidget;
class LayoutController;
struct MoeSource;
class PlaybackController;
class TokenStrip;

class MainWindow : public QMainWindow {
    Q_OBJECT
public:
    explicit MainWindow(QWidget* parent = nullptr);
    ~MainWindow() override;

    void openModel(const QString& path);
    void openTrace(const QString& path);
    void saveTrace(const QString& path);
    void setPrompt(const QString& text);
    void runPrompt();
    void stepIn();
    void generate();
    void setBundledModelsDir(const QString& dir);
    void setDarkMode(bool on);
    void setMaxNewTokens(int n);

    bool isBusy() const { return m_session->isBusy(); }
    const ModelSummary& summary() const { return m_session->summary(); }
    QString lastError() const { return m_lastError; }
    SessionController* session() const { return m_session; }
    SessionController* compareSession() const { return m_compare; }
    CompareDock* compareDock() const { return m_compareDock; }
    Selection* selection() { return &m_sel; }
    PlaybackController* playback() const { return m_playback; }
    LayoutController* layout() const { return m_layout; }
    GenerationSettings generationSettings() const;
    // The figure widgets by key ("delta", "B", "C", "gate", "state-norm", "state", "stepper", "channels").
    FigureWidget* view(const QString& key) const { return m_views.value(key); }
    QList<FigureWidget*> views() const { return m_views.values(); }
    FinetunePage* finetunePage() const { return m_finetune; }
    void showFinetune(); // finetune/main_window_finetune.cpp

signals:
    void modelReady();
    void runFinished();
    void workFinished(const archlens::ui::WorkDone& done);
    void failed(const QString& message);

protected:
    void closeEvent(QCloseEvent* e) override;
    bool eventFilter(QObject* o, QEvent* e) override;
    void dragEnterEvent(QDragEnterEvent* e) override;
    void dropEvent(QDropEvent* e) override;

private:
    void buildUi();
    void buildMenus();
    void buildViews();            // main_window_views.cpp
    void buildMemoryDock();       // main_window_views.cpp
    void buildCompareDock(const MoeSource* srcA); // main_window_views.cpp
    void buildFinetuneDock();     // finetune/main_window_finetune.cpp
    bool confirmCloseFinetune();  // finetune/main_window_finetune.cpp
    void exportFigures(const QVector<Figure*>& figures); // main_window_views.cpp
    void setBusy(bool busy, const QString& what = {});
    void onLoaded(const ModelSummary& s);
    void onWorkFinished(const WorkDone& d);
    void onFailed(const QString& what, const QString& message);
    void onTokenChanged(int token);
    void onModelCleared();
    void onModelGrew(int oldCount, int newCount);
    void showPredictions(int token);
    void updateLayerChoices();
    void updateStatus();
    void chooseModelFolder();
    void chooseCachedModel();
    void rememberRecent(const QString& path);
    void rebuildRecentMenu();
    void handleKeyStep(int key);

    Selection m_sel;
    SessionController* m_session = nullptr;
    SessionController* m_compare = nullptr;
    PlaybackController* m_playback = nullptr;
    LayoutController* m_layout = nullptr;
    QString m_lastError;
    QString m_bundledDir;
    QMap<QString, FigureWidget*> m_views;
    CompareDock* m_compareDock = nullptr;
    FigureWidget* m_lastFocusedView = nullptr;
    FinetunePage* m_finetune = nullptr;

    QLabel* m_title = nullptr;
    QLabel* m_badge = nullptr;
    QLineEdit* m_prompt = nullptr;
    QPushButton* m_run = nullptr;
    QPushButton* m_stepIn = nullptr;
    QPushButton* m_generate = nullptr;
    QPushButton* m_cancel = nullptr;
    QComboBox* m_backend = nullptr;
    QDoubleSpinBox* m_temperature = nullptr;
    QSpinBox* m_topK = nullptr;
    QDoubleSpinBox* m_topP = nullptr;
    QSpinBox* m_seed = nullptr;
    QSpinBox* m_maxTokens = nullptr;
    QComboBox* m_layer = nullptr;
    QPushButton* m_play = nullptr;
    QDoubleSpinBox* m_speed = nullptr;
    QSlider* m_scrub = nullptr;
    QLabel* m_position = nullptr;
    QSpinBox* m_channel = nullptr;
    TokenStrip* m_strip = nullptr;
    QScrollArea* m_stripScroll = nullptr;
    QLabel* m_predTitle = nullptr;
    QTableWidget* m_predictions = nullptr;
    QTreeWidget* m_structure = nullptr;
    QTableWidget* m_facts = nullptr;
    QLabel* m_statusBackend = nullptr;
    QLabel* m_statusMemory = nullptr;
    QLabel* m_statusSpeed = nullptr;
    QProgressBar* m_progress = nullptr;
    QLabel* m_memoryText = nullptr;
    QSpinBox* m_memoryCap = nullptr;
    QMenu* m_recentMenu = nullptr;
    QMenu* m_bundledMenu = nullptr;
    QMenu* m_viewMenu = nullptr;
    QAction* m_darkAction = nullptr;
    QAction* m_logDelta = nullptr;
    QAction* m_freezeState = nullptr;
    QAction* m_stateAllTokens = nullptr;
};

} // namespace archlens::ui
