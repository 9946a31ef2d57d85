// FigureWidget: shows one Figure on screen. It repaints when the session's data grows or the
// selection moves (Qt merges the update() calls into one paint per frame), maps clicks to the
// shared Selection, wheel to zoom (Ctrl or Shift: the other axis), drag to pan, double-click
// to reset, and hover to exact-value tooltips. Large heatmaps are colour-mapped on the render
// worker; until the new image arrives the previous one stays on screen.
#pragma once

#include <QImage>
#include <QWidget>

#include <memory>

#include "views/figure.h"

namespace archlens::ui {

class FigureWidget : public QWidget {
    Q_OBJECT
public:
    FigureWidget(std::unique_ptr<Figure> figure, TraceModel* model, Selection* selection, QWidget* parent = nullptr);
    ~FigureWidget() override;
    Figure* figure() const { return m_figure.get(); }
    void setFigure(std::unique_ptr<Figure> figure);
    QSize sizeHint() const override;
    // Images of at most this many cells are mapped inline (cheaper than a round trip).
    static constexpr int64_t kInlineCells = 16384;
    quint64 paints() const { return m_paints; }

signals:
    void exportRequested(archlens::ui::Figure* figure);

protected:
    void paintEvent(QPaintEvent*) override;
    void mousePressEvent(QMouseEvent* e) override;
    void mouseMoveEvent(QMouseEvent* e) override;
    void mouseReleaseEvent(QMouseEvent* e) override;
    void mouseDoubleClickEvent(QMouseEvent* e) override;
    void wheelEvent(QWheelEvent* e) override;
    bool event(QEvent* e) override;
    void contextMenuEvent(QContextMenuEvent* e) override;

private:
    QImage image(const HeatmapRequest& req);
    std::unique_ptr<Figure> m_figure;
    Selection* m_sel;
    QImage m_image;
    quint64 m_imageKey = 0, m_pendingKey = 0;
    QPointF m_pressPos, m_lastPos;
    bool m_dragging = false;
    quint64 m_paints = 0;
};

} // namespace archlens::ui
