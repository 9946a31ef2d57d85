// StepperFigure: one step of the selective scan for the selected channel at the current
// token, with the model's real numbers: for each state dimension n, how much of h_{t-1} the
// decay exp(Δ_t A) kept, what Δ_t B_t x_t wrote, the resulting h_t (and the recorded one),
// and how C_t reads it out into y_t. A bar per row shows how each term moved the state.
#pragma once

#include <optional>

#include "session/scan_step.h"
#include "views/figure.h"

namespace archlens::ui {

class StepperFigure : public Figure {
public:
    using Figure::Figure;
    QString key() const override { return QStringLiteral("stepper"); }
    QString quantity() const override;
    QString title() const override;
    void paint(QPainter& p, const QRectF& r, const Theme& t, const ImageSource& images) override;
    QString csv() const override;
    QSize preferredSize() const override { return {1000, 620}; }
    QString toolTipAt(QPointF pos) const override;
    FigureHit hitAt(QPointF pos) const override;
    QString unavailableReason() const override;
    int channel() const;
    void setFixedChannel(int c) { m_fixedChannel = c; }
    std::optional<ScanStep> step() const { return computeScanStep(*m_model, layer(), token(), channel()); }

private:
    int m_fixedChannel = -1;
    QRectF m_table;
    qreal m_rowH = 0;
    int m_rowsShown = 0;
};

} // namespace archlens::ui
