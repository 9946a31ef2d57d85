// ChannelChartsFigure: line charts (QtCharts) of chosen channels over tokens: the state
// h[c, n], the step size Δ[c], and the decay exp(Δ·A[c, n]) that multiplies the old state,
// with the current token marked. The charts live in a QGraphicsScene that is rendered into
// whatever painter the figure gets, so screen, PNG, SVG and PDF share this code.
#pragma once

#include <QElapsedTimer>

#include <memory>

#include "views/figure.h"

class QChart;
class QLineSeries;
class QValueAxis;
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
    int repaintAfterMs() const override { return m_refreshIn; }

private:
    void rebuild(const Theme& t);
    void placeCursor();
    void buildStructure(const Theme& t, const std::vector<int64_t>& chans, const std::vector<int64_t>& dims);
    void fillData();
    struct Line {
        int chart;
        int64_t channel, dim;
        QLineSeries* series;
    };
    std::vector<Line> m_lines;
    std::pair<QValueAxis*, QValueAxis*> m_axes[3];
    quint64 m_dataVersion = ~quint64(0);
    static constexpr int64_t kMaxBuckets = 300;
    static constexpr qint64 kStreamRefreshMs = 250;
    QElapsedTimer m_fillClock;
    int m_filledTokens = 0;
    int m_refreshIn = 0;
    QLineSeries* m_cursor[3] = {nullptr, nullptr, nullptr};
    std::pair<double, double> m_cursorY[3];
    int m_cursorToken = -2;
    std::unique_ptr<QGraphicsScene> m_scene;
    QChart* m_charts[3] = {nullptr, nullptr, nullptr};
    std::vector<int64_t> m_dims;
    quint64 m_builtKey = 0;
    QRectF m_area; // charts area in the last paint
};

} // namespace archlens::ui
