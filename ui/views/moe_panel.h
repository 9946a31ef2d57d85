// MoePanel: the mixture-of-experts and attention views in one dock, with a small controller.
// It follows the window's session: when the TraceModel is cleared (new run, new model, trace
// opened) it resets; a live run's routing and attention weights come from the session itself
// (ModelWorker records them with a RoutingRecorder on the RunSession's tap, from the same
// forward passes as every other view, and the TraceModel hands the snapshots over), so every
// view updates live and follows the shared Selection (token, layer) with one model in memory.
// A trace's moe/ and attn/ datasets are read on the panel's thread. Hidden attention reads the
// session's own Δ, B, C, A and is computed on the HiddenAttentionWorker. Corpora (a file or
// folder, or the bundled sample corpora) are routed through the session's model on its worker
// (SessionController::withModel) in 512-token chunks with progress and cancel.
#pragma once

#include <QPointer>
#include <QWidget>

#include <atomic>
#include <memory>

#include "views/moe_source.h"

class QComboBox;
class QLabel;
class QProgressBar;
class QPushButton;
class QSpinBox;
class QTabWidget;
class QThread;

namespace archlens::ui {

class FigureWidget;
class Selection;
class TraceModel;
class MoeWorker;
class SessionController;

class MoePanel : public QWidget {
    Q_OBJECT
public:
    MoePanel(TraceModel* model, Selection* sel, QWidget* parent = nullptr);
    ~MoePanel() override;
    // Brings a view's tab to the front: router, router-overview, expert-load, expert-path,
    // coactivation, attention, attention-overview, hidden-attention, layer-map.
    bool showView(const QString& key);
    FigureWidget* view(const QString& key) const;
    const MoeSource& source() const { return m_src; }
    void setCorpus(int slot, const QString& path); // routes it (0 or 1); '' clears
    void setSampleCorporaDir(const QString& dir) { m_samples = dir; }
    // The session whose model routes corpora (the window's session A).
    void setSession(SessionController* session) { m_session = session; }
    bool isBusy() const;

signals:
    void updated();        // the source changed (tests wait on it)
    void corpusFinished(int slot);

protected:
    bool eventFilter(QObject* o, QEvent* e) override; // clicks on a layer open its view

private:
    void onCleared();
    void onLayerClicked(int layer);
    void applySnapshot(const analysis::RoutingData& d);
    void refresh();
    void chooseCorpus(int slot);
    TraceModel* m_model;
    Selection* m_sel;
    MoeSource m_src;
    QTabWidget* m_tabs = nullptr;
    QSpinBox* m_head = nullptr;
    QComboBox* m_channels = nullptr;
    QLabel* m_status = nullptr;
    QProgressBar* m_progress = nullptr;
    QPushButton* m_cancel = nullptr;
    QString m_samples;
    QThread* m_thread = nullptr;
    MoeWorker* m_worker = nullptr;
    SessionController* m_session = nullptr;
    std::shared_ptr<std::atomic<bool>> m_cancelFlags[2]; // per corpus slot
    quint64 m_generation = 0; // bumps on every reset; stale results are dropped
    int m_pending = 0;
    int m_corporaRunning = 0;
};

} // namespace archlens::ui
