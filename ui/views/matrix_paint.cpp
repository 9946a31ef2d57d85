#include "views/matrix_paint.h"

#include <QFontMetricsF>
#include <QPaintDevice>
#include <QPainter>

#include <cmath>

#include "views/heatmap_figures.h"

namespace archlens::ui {

QImage matrixImage(const MatrixSpec& m, QSize maxPixels, QRgb missing)
{
    const int64_t outW = std::clamp<int64_t>(std::min<int64_t>(m.cols, maxPixels.width()), 1, 1 << 14);
    const int64_t outH = std::clamp<int64_t>(std::min<int64_t>(m.rows, maxPixels.height()), 1, 1 << 14);
    QImage img(int(outW), int(outH), QImage::Format_ARGB32);
    const auto& lut = colormapLut(m.map);
    for (int64_t oy = 0; oy < outH; ++oy) {
        const int64_t r0 = oy * m.rows / outH, r1 = std::max(r0 + 1, (oy + 1) * m.rows / outH);
        auto* line = reinterpret_cast<QRgb*>(img.scanLine(int(oy)));
        for (int64_t ox = 0; ox < outW; ++ox) {
            const int64_t c0 = ox * m.cols / outW, c1 = std::max(c0 + 1, (ox + 1) * m.cols / outW);
            float best = std::numeric_limits<float>::quiet_NaN();
            for (int64_t r = r0; r < r1; ++r)
                for (int64_t c = c0; c < c1; ++c) {
                    const float v = m.value(r, c);
                    if (!std::isnan(v) && (std::isnan(best) || std::fabs(v) > std::fabs(best)))
                        best = v;
                }
            if (std::isnan(best)) {
                line[ox] = missing;
                continue;
            }
            const double f = m.scale.normalise(best);
            line[ox] = lut[size_t(std::clamp(int(f * 255.0 + 0.5), 0, 255))];
        }
    }
    return img;
}

ValueScale autoScale(const MatrixSpec& m, bool symmetric)
{
    float lo = std::numeric_limits<float>::infinity(), hi = -lo, amax = 0;
    for (int64_t r = 0; r < m.rows; ++r)
        for (int64_t c = 0; c < m.cols; ++c) {
            const float v = m.value(r, c);
            if (std::isnan(v))
                continue;
            lo = std::min(lo, v);
            hi = std::max(hi, v);
            amax = std::max(amax, std::fabs(v));
        }
    ValueScale s;
    if (!(hi >= lo))
        return s;
    if (symmetric) {
        s.lo = -std::max(amax, 1e-12f);
        s.hi = std::max(amax, 1e-12f);
    } else {
        s.lo = std::min(lo, 0.f);
        s.hi = hi > s.lo ? hi : s.lo + 1e-6f;
    }
    return s;
}

QString csvField(const QString& s)
{
    QString v = visibleTokenText(s);
    if (v.contains(',') || v.contains('"'))
        v = '"' + QString(v).replace('"', QStringLiteral("\"\"")) + '"';
    return v;
}

void drawPromptBoundary(QPainter& p, const QRectF& plot, const Theme& t, int64_t at, int64_t tokens)
{
    if (at <= 0 || at >= tokens)
        return;
    const qreal x = plot.left() + plot.width() * qreal(at) / qreal(tokens);
    p.save();
    p.setPen(QPen(t.highlight, 2, Qt::DashLine));
    p.drawLine(QPointF(x, plot.top()), QPointF(x, plot.bottom()));
    const QFontMetricsF fm(t.font, p.device());
    p.setPen(t.highlight);
    p.setFont(t.font);
    const QString label = QObject::tr("generated →");
    p.drawText(QRectF(x + 3, plot.top() - fm.height() * 1.05, fm.horizontalAdvance(label) + 4, fm.height()),
               Qt::AlignLeft | Qt::AlignVCenter, label);
    p.restore();
}

QString csvName(const QString& s)
{
    if (s.contains(',') || s.contains('"') || s.contains('\n'))
        return '"' + QString(s).replace('"', QStringLiteral("\"\"")) + '"';
    return s;
}

QRectF paintWarning(QPainter& p, const QRectF& area, const Theme& t, const QString& text)
{
    if (text.isEmpty())
        return area;
    const QFontMetricsF fm(t.font, p.device());
    const QRectF band(area.left() + fm.height() * 0.3, area.top(), area.width() - fm.height() * 0.6, fm.height() * 1.3);
    p.fillRect(band, t.paper ? QColor(255, 235, 200) : QColor(180, 90, 0, 90));
    p.setPen(t.paper ? QColor(150, 60, 0) : t.text);
    p.setFont(t.font);
    p.drawText(band.adjusted(fm.height() * 0.3, 0, -fm.height() * 0.3, 0), Qt::AlignLeft | Qt::AlignVCenter,
               fm.elidedText(QStringLiteral("⚠ ") + text, Qt::ElideRight, band.width() - fm.height() * 0.6));
    return QRectF(area.left(), band.bottom() + fm.height() * 0.2, area.width(), area.bottom() - band.bottom() - fm.height() * 0.2);
}

MatrixGeometry paintMatrix(QPainter& p, const QRectF& area, const Theme& t, const MatrixSpec& m, const TraceModel* tokens,
                           int64_t cursorCol)
{
    const QFontMetricsF fm(t.font, p.device());
    const qreal barW = m.colorbar ? paint::colorbarWidth(p, t) : 0;
    qreal leftW = fm.height() * 1.4;
    for (int64_t r = 0; r < m.rows; r += std::max<int64_t>(1, m.rows / 64))
        leftW = std::max(leftW, fm.horizontalAdvance(m.rowName ? m.rowName(r) : QString::number(r)) + fm.height() * 1.6);
    leftW = std::min(leftW, area.width() * 0.3);
    const qreal bottomH = m.colsAreTokens && tokens ? tokenAxisHeight(p, t) : fm.height() * 2.6;
    MatrixGeometry g;
    g.rows = m.rows;
    g.cols = m.cols;
    g.plot = QRectF(area.left() + leftW, area.top() + fm.height() * 0.3, area.width() - leftW - barW - fm.height() * 0.6,
                    area.height() - bottomH - fm.height() * 0.3);
    if (g.plot.width() < 4 || g.plot.height() < 4 || m.rows <= 0 || m.cols <= 0)
        return g;
    if (m.square) {
        // cells at most 2.5 times wider than tall: close enough to square to read a diagonal,
        // without shrinking to a stamp in a short dock
        const qreal cellH = g.plot.height() / qreal(m.rows);
        g.plot.setWidth(std::min(g.plot.width(), cellH * 2.5 * qreal(m.cols)));
        const qreal cellW = g.plot.width() / qreal(m.cols);
        g.plot.setHeight(std::min(g.plot.height(), cellW * qreal(m.rows)));
    }
    const qreal dpr = p.device() ? p.device()->devicePixelRatioF() : 1.0;
    const QImage img = matrixImage(m, QSize(int(std::ceil(g.plot.width() * dpr)), int(std::ceil(g.plot.height() * dpr))),
                                   t.background.rgba());
    p.save();
    p.setRenderHint(QPainter::SmoothPixmapTransform, false);
    p.drawImage(g.plot, img);
    p.restore();
    p.setPen(QPen(t.axis, 0));
    p.setBrush(Qt::NoBrush);
    p.drawRect(g.plot);
    // row ticks
    p.setFont(t.font);
    p.setPen(t.text);
    const qreal rowH = g.plot.height() / qreal(m.rows);
    int64_t step = 1;
    while (rowH * qreal(step) < fm.height() * 1.1)
        step *= 2;
    for (int64_t r = 0; r < m.rows; r += step) {
        const qreal y = g.plot.top() + (qreal(r) + 0.5) * rowH;
        const QString text = m.rowName ? m.rowName(r) : QString::number(r + m.rowOffset);
        p.drawText(QRectF(area.left(), y - fm.height() / 2, leftW - fm.height() * 0.3, fm.height()),
                   Qt::AlignRight | Qt::AlignVCenter, fm.elidedText(text, Qt::ElideRight, leftW - fm.height() * 1.3));
    }
    p.save();
    p.translate(area.left() + fm.height() * 0.5, g.plot.center().y());
    p.rotate(-90);
    p.setPen(t.muted);
    p.drawText(QRectF(-g.plot.height() / 2, -fm.height() / 2, g.plot.height(), fm.height()), Qt::AlignCenter,
               fm.elidedText(m.rowLabel, Qt::ElideRight, g.plot.height()));
    p.restore();
    // column axis
    const QRectF below(g.plot.left(), g.plot.bottom(), g.plot.width(), bottomH);
    if (m.colsAreTokens && tokens) {
        drawTokenAxis(p, below, t, *tokens, m.colOffset, m.colOffset + m.cols, cursorCol);
    } else {
        const qreal colW = g.plot.width() / qreal(m.cols);
        int64_t cstep = 1;
        while (colW * qreal(cstep) < fm.horizontalAdvance(QStringLiteral("000")) * 1.3)
            cstep *= 2;
        p.setPen(t.text);
        for (int64_t c = 0; c < m.cols; c += cstep) {
            const qreal x = g.plot.left() + (qreal(c) + 0.5) * colW;
            const QString text = m.colName ? m.colName(c) : QString::number(c);
            p.drawText(QRectF(x - colW * cstep / 2, below.top() + fm.height() * 0.1, colW * cstep, fm.height()),
                       Qt::AlignCenter, fm.elidedText(text, Qt::ElideRight, colW * cstep));
        }
        p.setPen(t.muted);
        p.drawText(QRectF(below.left(), below.top() + fm.height() * 1.2, below.width(), fm.height()), Qt::AlignCenter,
                   m.colLabel);
    }
    if (m.colorbar) {
        const QRectF bar(g.plot.right() + fm.height() * 0.6, g.plot.top(), fm.height() * 0.9, g.plot.height());
        paint::drawColorbar(p, bar, t, m.map, m.scale, m.barLabel);
    }
    return g;
}

} // namespace archlens::ui
