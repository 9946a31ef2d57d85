// ChannelChartsFigure: line charts (QtCharts) of chosen channels over tokens: the state
// h[c, n], the step size Δ[c], and the decay exp(Δ·A[c, n]) that multiplies the old state,
// with the current token marked. The charts live in a QGraphicsScene that is rendered into
// whatever painter the figure gets, so screen, PNG, SVG and PDF share this code.
#pragma once

#include <memory>

#include "views/figure.h"

class QChart;
class QGraphicsScene;

namespace archlens::ui {

class ChannelChartsFigure : public Figure {
public:
    ChannelChartsFigure(const TraceModel* model, const Selection* sel);
    ~ChannelChartsFigure() override;
    QString key() const override { return QStringLiteral("channels"); }
    QString quantity() const override;
    void paint(QPainter& p, const QRectF& r, const Theme& t, const ImageSource& images) override;
    QString csv() const override;
    QSize preferredSize() const override { return {1000, 760}; }
    QString toolTipAt(QPointF pos) const override;
    FigureHit hitAt(QPointF pos) const override;
    void setStateDims(std::vector<int64_t> dims) { m_dims = std::move(dims); }
    std::vector<int64_t> chartChannels() const; // at most 4
    std::vector<int64_t> chartDims() const;     // at most 4
    // Points of the h chart's first line, for tests: (token, value).
    QList<QPointF> statePoints() const;

private:
    void rebuild(const Theme& t);
    std::unique_ptr<QGraphicsScene> m_scene;
    QChart* m_charts[3] = {nullptr, nullptr, nullptr};
    std::vector<int64_t> m_dims;
    quint64 m_builtKey = 0;
    QRectF m_area; // charts area in the last paint
};

} // namespace archlens::ui
