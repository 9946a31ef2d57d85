// MoePanel: the mixture-of-experts and attention views in one dock, with a small controller.
// It follows the window's session: when the TraceModel is cleared (new run, new model, trace
// opened) it resets, and as tokens arrive (prefill, stepping, generation) it feeds them to its
// own RoutingWorker, which runs the same model folder on its own thread into a
// RoutingRecorder (router probabilities, top-k, weights, attention weights), so every view
// updates live and follows the shared Selection (token, layer). Hidden attention reads the
// session's own Δ, B, C, A. A trace is read instead of run. Corpora (a file or folder, or the
// bundled sample corpora) are routed on the worker in 512-token chunks with progress and cancel.
//
// Why its own worker: the session's sink belongs to the scan explorer's engine, which is being
// rewired onto RunSession; once that exposes a probe hook, the recorder moves there
// (analysis::TeeSink) and the second model copy goes away. Pure Mamba models (no router, no
// attention) load no second copy: hidden attention reads the session's own probes.
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
class RoutingWorker;

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
    bool isBusy() const;

signals:
    void updated();        // the source changed (tests wait on it)
    void corpusFinished(int slot);

protected:
    bool eventFilter(QObject* o, QEvent* e) override; // clicks on a layer open its view

private:
    void onCleared();
    void onGrew();
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
    RoutingWorker* m_worker = nullptr;
    std::shared_ptr<std::atomic<bool>> m_cancelFlags[2]; // per corpus slot
    int m_fed = 0;          // tokens handed to the worker
    bool m_routeLive = false; // the worker runs the model (not a trace, not a pure Mamba model)
    quint64 m_generation = 0; // bumps on every reset; stale results are dropped
    int m_pending = 0;
    int m_corporaRunning = 0;
    QString m_raisedFor; // the model the dock was last brought forward for
};

} // namespace archlens::ui
