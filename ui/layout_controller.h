// LayoutController: which docks are in front for the model in the window, and View > Reset
// layout. The arrangement built in code is kept as the default before a saved one is restored.
// When a model of another kind comes in, the views that have something to show come forward,
// once per model (a student may rearrange afterwards):
//   * pure Mamba: the scan views (B and the docks tabbed with it), hidden attention in the panel;
//   * Transformer (attention, no experts): the Routing and attention dock, tall, on Attention;
//   * mixture of experts without Mamba layers (Mixtral, OLMoE, Qwen2-MoE): that dock on Router;
//     for both the State h dock and the centre's Δ panel go out of the way (they come back for
//     the next Mamba model);
//   * hybrid (Jamba): the scan views stay in front, the panel opens on its layer map.
// Reset layout restores the default arrangement at once (no restart), gives the centre's Δ panel
// a usable height again and applies the model's arrangement.
#pragma once

#include <QByteArray>
#include <QObject>
#include <QString>

class QMainWindow;

namespace archlens::ui {

class MoePanel;
class TraceModel;
struct RunMeta;

enum class ModelKind { None, Mamba, Transformer, MixtureOfExperts, Hybrid };
ModelKind modelKindOf(const RunMeta& meta);

class LayoutController : public QObject {
    Q_OBJECT
public:
    LayoutController(QMainWindow* window, TraceModel* model, MoePanel* panel);
    // The arrangement built in code: call after every dock exists, before restoreState.
    void captureDefault();
    void resetLayout();
    // Brings the views for the model's kind forward (force: even when already done for it).
    void arrangeFor(const RunMeta& meta, bool force);
    // When a restored layout left the centre (tokens and Δ) shorter than this share of the
    // window, the bottom docks give the difference back.
    void ensureCentreHeight(double share = 0.38);

private:
    void setHidState(bool hid);
    QMainWindow* m_win;
    TraceModel* m_model;
    MoePanel* m_panel;
    QByteArray m_default;
    QString m_arrangedFor; // the model the docks were last arranged for
    bool m_hidState = false;    // the state h dock was put away for a model without Mamba layers
    bool m_foldedDelta = false; // and the centre's Δ panel folded
};

} // namespace archlens::ui
