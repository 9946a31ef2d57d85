// CompareDock: the second session (B) next to the window's session (A) on the same prompt.
// It shows B's Δ or ‖h‖ as a heatmap, or, in the "attention" mode, one figure with both models'
// attention side by side: a Mamba model's hidden attention next to a Transformer's attention
// (or any pairing: each side is its model's attention when it has attention layers, else its
// hidden attention; makeAttentionSide, the CLI's figure --compare-model uses the same). Both
// sides follow the shared token; A's side follows the selected layer where it suits, B's layer is
// picked in the dock. B's routing and attention come from B's own session (its worker's tap),
// A's from the routing panel's source.
#pragma once

#include <QDockWidget>

#include <functional>
#include <memory>

#include "session/model_worker.h"
#include "views/moe_source.h"

class QComboBox;
class QLabel;
class QSpinBox;

namespace archlens::ui {

class FigureWidget;
class Selection;
class SessionController;

class CompareDock : public QDockWidget {
    Q_OBJECT
public:
    CompareDock(SessionController* a, SessionController* b, Selection* sel, const MoeSource* srcA,
                QWidget* parent = nullptr);
    // What the dock needs from the window: the prompt, backend and generation settings for B's run.
    void setProviders(std::function<QString()> prompt, std::function<QString()> backend,
                      std::function<GenerationSettings()> settings);
    // "delta", "state-norm" or "attention" (side by side); false for an unknown mode.
    bool setMode(const QString& mode);
    QString mode() const;
    void setLayerB(int layer); // -1: B's first attention (or Mamba) layer
    FigureWidget* view() const { return m_view; }
    const MoeSource& sourceB() const { return m_srcB; }

private:
    void rebuild();
    SessionController* m_a;
    SessionController* m_b;
    Selection* m_sel;
    const MoeSource* m_srcA;
    MoeSource m_srcB;
    FigureWidget* m_view = nullptr;
    QLabel* m_label = nullptr;
    QComboBox* m_mode = nullptr;
    QSpinBox* m_layerB = nullptr;
    std::function<QString()> m_prompt, m_backend;
    std::function<GenerationSettings()> m_settings;
};

} // namespace archlens::ui
