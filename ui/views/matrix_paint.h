// Painting a dense matrix (router probabilities, co-activation, attention, hidden attention)
// for the MoE and attention views: one colour-mapped QImage drawn scaled without smoothing, so
// the screen, PNG, SVG and PDF share it; when a matrix has more cells than pixels each pixel
// keeps the value of largest magnitude in its bucket (sign included), as the scan heatmaps do.
// Axes: the token axis of the scan views (token text) for token columns, numbered ticks else.
#pragma once

#include <QImage>
#include <QRectF>
#include <QString>

#include <cstdint>
#include <functional>

#include "views/figure.h"

namespace archlens::ui {

struct MatrixSpec {
    int64_t rows = 0, cols = 0;
    std::function<float(int64_t row, int64_t col)> value; // NaN: nothing there (drawn as background)
    Colormap map = Colormap::Viridis;
    ValueScale scale;
    QString barLabel, rowLabel, colLabel;
    bool colsAreTokens = false;                 // x axis labelled with token text (columns = tokens 0..)
    int64_t colOffset = 0, rowOffset = 0;       // first token of a windowed matrix
    std::function<QString(int64_t row)> rowName; // tick text; default: the number
    std::function<QString(int64_t col)> colName; // when !colsAreTokens
    bool colorbar = true;
    bool square = false; // square cells (matrices of like axes: attention, co-activation)
};

// The laid-out plot of the last paint, for hit testing.
struct MatrixGeometry {
    QRectF plot;
    int64_t rows = 0, cols = 0;
    bool contains(QPointF p) const { return plot.contains(p) && rows > 0 && cols > 0; }
    int64_t rowAt(QPointF p) const { return std::clamp<int64_t>(int64_t((p.y() - plot.top()) / plot.height() * rows), 0, rows - 1); }
    int64_t colAt(QPointF p) const { return std::clamp<int64_t>(int64_t((p.x() - plot.left()) / plot.width() * cols), 0, cols - 1); }
    QRectF cell(int64_t r, int64_t c) const
    {
        const qreal w = plot.width() / qreal(std::max<int64_t>(cols, 1)), h = plot.height() / qreal(std::max<int64_t>(rows, 1));
        return QRectF(plot.left() + qreal(c) * w, plot.top() + qreal(r) * h, w, h);
    }
};

QImage matrixImage(const MatrixSpec& m, QSize maxPixels, QRgb missing);
ValueScale autoScale(const MatrixSpec& m, bool symmetric);
// Paints the matrix with axes and colorbar into `area` (below the title); returns the geometry.
MatrixGeometry paintMatrix(QPainter& p, const QRectF& area, const Theme& t, const MatrixSpec& m, const TraceModel* tokens,
                           int64_t cursorCol = -1);
// A one-line warning band (collapse, capping); returns the area below it.
QRectF paintWarning(QPainter& p, const QRectF& area, const Theme& t, const QString& text);
// The prompt/generated boundary: a dashed line before token `at` of a plot whose columns are
// `tokens` tokens, labelled "generated →" (nothing when at is 0 or past the end).
void drawPromptBoundary(QPainter& p, const QRectF& plot, const Theme& t, int64_t at, int64_t tokens);
QString csvField(const QString& s); // token text: spaces and newlines made visible, quoted when needed
QString csvName(const QString& s);  // a label: quoted when needed, otherwise unchanged

} // namespace archlens::ui
