#include "layout_controller.h"

#include <QDockWidget>
#include <QMainWindow>
#include <QSettings>
#include <QSplitter>
#include <QTimer>

#include <algorithm>

#include "session/trace_model.h"
#include "views/moe_panel.h"

namespace archlens::ui {

ModelKind modelKindOf(const RunMeta& meta)
{
    if (meta.layers <= 0)
        return ModelKind::None;
    const bool mamba = meta.layerMixer.isEmpty() || meta.layerMixer.contains(QStringLiteral("mamba"));
    const bool attention = meta.layerMixer.contains(QStringLiteral("attention"));
    if (mamba && attention)
        return ModelKind::Hybrid;
    if (mamba)
        return ModelKind::Mamba;
    return meta.layerFfn.contains(QStringLiteral("moe")) ? ModelKind::MixtureOfExperts : ModelKind::Transformer;
}

LayoutController::LayoutController(QMainWindow* window, TraceModel* model, MoePanel* panel)
    : QObject(window)
    , m_win(window)
    , m_model(model)
    , m_panel(panel)
{
    m_hidState = QSettings().value(QStringLiteral("layout/stateHidden"), false).toBool();
    connect(model, &TraceModel::cleared, this, [this] { arrangeFor(m_model->meta(), false); });
}

void LayoutController::setHidState(bool hid)
{
    m_hidState = hid;
    QSettings().setValue(QStringLiteral("layout/stateHidden"), hid);
}

void LayoutController::captureDefault() { m_default = m_win->saveState(); }

void LayoutController::arrangeFor(const RunMeta& meta, bool force)
{
    const ModelKind kind = modelKindOf(meta);
    if (kind == ModelKind::None || (!force && m_arrangedFor == meta.modelPath))
        return;
    m_arrangedFor = meta.modelPath;
    auto* moe = m_win->findChild<QDockWidget*>(QStringLiteral("dock.moe"));
    auto* scan = m_win->findChild<QDockWidget*>(QStringLiteral("dock.B"));
    auto* state = m_win->findChild<QDockWidget*>(QStringLiteral("dock.state"));
    const bool hasScan = kind == ModelKind::Mamba || kind == ModelKind::Hybrid;
    // the state h dock has nothing to show without Mamba layers: out of the way, back for a Mamba model
    // (remembered across runs: a saved layout from a Transformer session must not lose it for good)
    if (state && !hasScan && state->isVisible()) {
        state->hide();
        setHidState(true);
    } else if (state && hasScan && m_hidState) {
        state->show();
        setHidState(false);
    }
    // the centre's Δ panel likewise: folded away (the token strip stays), unfolded for Mamba
    if (auto* split = m_win->findChild<QSplitter*>(QStringLiteral("splitter.center")); split && split->count() > 1) {
        const QList<int> sizes = split->sizes();
        QWidget* delta = split->widget(1);
        if (!hasScan && (sizes.value(1) > 0 || delta->minimumHeight() > 0)) {
            // A collapsed splitter child still counts its minimum height in the centre's minimum,
            // which kept the routing dock from growing: drop it while folded, restore it after.
            if (delta->minimumHeight() > 0)
                delta->setProperty("archlens.unfoldedMinimumHeight", delta->minimumHeight());
            delta->setMinimumHeight(0);
            split->setSizes({sizes.value(0) + sizes.value(1), 0});
            m_foldedDelta = true;
        } else if (hasScan && m_foldedDelta) {
            delta->setMinimumHeight(delta->property("archlens.unfoldedMinimumHeight").toInt());
            split->setSizes({170, 430});
            m_foldedDelta = false;
        }
    }
    switch (kind) {
    case ModelKind::Transformer:
    case ModelKind::MixtureOfExperts:
        // nothing for the scan views: the attention and routing views come forward, tall
        if (moe) {
            moe->show();
            moe->raise();
            m_win->resizeDocks({moe}, {int(m_win->height() * 0.62)}, Qt::Vertical);
            // again once the folded Δ panel's smaller minimum has reached the main window's layout
            // (a posted layout request), so the dock can take the room
            QTimer::singleShot(0, moe, [moe, win = m_win] {
                QTimer::singleShot(0, moe, [moe, win] {
                    win->resizeDocks({moe}, {int(win->height() * 0.62)}, Qt::Vertical);
                });
            });
        }
        if (m_panel)
            m_panel->showView(kind == ModelKind::Transformer ? QStringLiteral("attention") : QStringLiteral("router"));
        break;
    case ModelKind::Mamba:
        // even when a saved layout left the routing panel in front from an MoE model
        if (scan)
            scan->raise();
        if (m_panel)
            m_panel->showView(QStringLiteral("hidden-attention"));
        break;
    case ModelKind::Hybrid:
        if (scan)
            scan->raise();
        if (m_panel)
            m_panel->showView(QStringLiteral("layer-map"));
        break;
    case ModelKind::None:
        break;
    }
}

void LayoutController::ensureCentreHeight(double share)
{
    QWidget* centre = m_win->centralWidget();
    if (!centre || !m_win->isVisible())
        return;
    const int want = int(m_win->height() * share);
    if (centre->height() >= want)
        return;
    QList<QDockWidget*> bottom;
    QList<int> sizes;
    for (QDockWidget* d : m_win->findChildren<QDockWidget*>())
        if (m_win->dockWidgetArea(d) == Qt::BottomDockWidgetArea && d->isVisible() && !d->isFloating()) {
            bottom << d;
            sizes << std::max(120, d->height() - (want - centre->height()));
        }
    if (!bottom.isEmpty())
        m_win->resizeDocks(bottom, sizes, Qt::Vertical);
}

void LayoutController::resetLayout()
{
    if (!m_default.isEmpty())
        m_win->restoreState(m_default);
    setHidState(false); // the default shows both
    m_foldedDelta = false;
    QSettings().remove(QStringLiteral("window/state"));
    if (auto* split = m_win->findChild<QSplitter*>(QStringLiteral("splitter.center"))) {
        if (QWidget* delta = split->widget(1); delta && delta->property("archlens.unfoldedMinimumHeight").isValid())
            delta->setMinimumHeight(delta->property("archlens.unfoldedMinimumHeight").toInt());
        split->setSizes({170, 430});
    }
    // the centre holds the tokens and Δ: about half the window, the bottom docks the rest
    QList<QDockWidget*> bottom;
    QList<int> sizes;
    for (QDockWidget* d : m_win->findChildren<QDockWidget*>())
        if (m_win->dockWidgetArea(d) == Qt::BottomDockWidgetArea && !d->isHidden()) {
            bottom << d;
            sizes << int(m_win->height() * 0.36);
        }
    if (!bottom.isEmpty())
        m_win->resizeDocks(bottom, sizes, Qt::Vertical);
    arrangeFor(m_model->meta(), true);
}

} // namespace archlens::ui
