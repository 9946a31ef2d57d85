#include "views/heatmap_figures.h"

#include <QFontMetricsF>
#include <QPainter>
#include <QPaintDevice>

#include <cmath>

namespace archlens::ui {

namespace {
QString csvText(const QString& s)
{
    QString v = visibleTokenText(s);
    if (v.contains(',') || v.contains('"'))
        v = '"' + QString(v).replace('"', QStringLiteral("\"\"")) + '"';
    return v;
}
qreal dprOf(QPainter& p) { return p.device() ? p.device()->devicePixelRatioF() : 1.0; }
} // namespace

// ---- shared --------------------------------------------------------------------------

std::pair<int64_t, int64_t> HeatmapFigureBase::xWindow() const
{
    const int64_t n = xCount();
    if (m_xAll || n <= 0)
        return {0, std::max<int64_t>(n, 0)};
    const int64_t w = std::clamp<int64_t>(m_x1 - m_x0, 1, n);
    const int64_t a = std::clamp<int64_t>(m_x0, 0, n - w);
    return {a, a + w};
}

std::pair<int64_t, int64_t> HeatmapFigureBase::rowWindow(int64_t rows) const
{
    if (m_yAll || rows <= 0)
        return {0, std::max<int64_t>(rows, 0)};
    const int64_t w = std::clamp<int64_t>(m_r1 - m_r0, 1, rows);
    const int64_t a = std::clamp<int64_t>(m_r0, 0, rows - w);
    return {a, a + w};
}

ValueScale HeatmapFigureBase::scaleFor(bool isSigned, const SeriesStats& s) const
{
    if (m_frozen)
        return *m_frozen;
    ValueScale v;
    v.log = m_log && !isSigned;
    if (s.empty())
        return v;
    if (isSigned) {
        const float m = std::max(s.maxAbs, 1e-12f);
        v.lo = -m;
        v.hi = m;
    } else if (v.log && std::isfinite(s.minPositive)) {
        v.lo = s.minPositive;
        v.hi = std::max(s.max, s.minPositive * 10.f);
    } else {
        v.log = false;
        v.lo = s.min;
        v.hi = s.max > s.min ? s.max : s.min + 1e-6f;
    }
    return v;
}

HeatmapRequest HeatmapFigureBase::request(const QRectF& plot, qreal dpr) const
{
    HeatmapRequest q = baseRequest();
    const auto [x0, x1] = xWindow();
    q.x0 = x0;
    q.x1 = x1;
    const std::vector<int64_t> rows = channelRows(rowCount());
    const auto [r0, r1] = rowWindow(int64_t(rows.size()));
    q.rows.assign(rows.begin() + r0, rows.begin() + r1);
    q.pixels = QSize(int(std::ceil(plot.width() * dpr)), int(std::ceil(plot.height() * dpr)));
    q.key = q.computeKey();
    return q;
}

void HeatmapFigureBase::zoomAt(QPointF pos, double factor, Qt::Orientation o)
{
    if (o == Qt::Horizontal) {
        const int64_t n = xCount();
        auto [a, b] = xWindow();
        if (n <= 1)
            return;
        const double f = m_plot.width() > 0 ? std::clamp((pos.x() - m_plot.left()) / m_plot.width(), 0.0, 1.0) : 0.5;
        const double pivot = a + f * double(b - a);
        const double w = std::clamp(double(b - a) / factor, 4.0, double(n));
        const int64_t wi = std::min<int64_t>(n, int64_t(std::ceil(w)));
        m_xAll = wi >= n;
        m_x0 = std::clamp<int64_t>(int64_t(std::floor(pivot - f * w)), 0, n - wi);
        m_x1 = m_x0 + wi;
    } else {
        const int64_t n = int64_t(channelRows(rowCount()).size());
        auto [a, b] = rowWindow(n);
        if (n <= 1)
            return;
        const double f = m_plot.height() > 0 ? std::clamp((pos.y() - m_plot.top()) / m_plot.height(), 0.0, 1.0) : 0.5;
        const double pivot = a + f * double(b - a);
        const double w = std::clamp(double(b - a) / factor, 2.0, double(n));
        m_r0 = std::clamp<int64_t>(int64_t(std::floor(pivot - f * w)), 0, n - int64_t(std::ceil(w)));
        m_r1 = m_r0 + int64_t(std::ceil(w));
        m_yAll = m_r1 - m_r0 >= n;
    }
}

void HeatmapFigureBase::panBy(QPointF px)
{
    if (!m_xAll && m_plot.width() > 0) {
        auto [a, b] = xWindow();
        const int64_t d = int64_t(std::lround(-px.x() / m_plot.width() * double(b - a)));
        const int64_t n = xCount();
        m_x0 = std::clamp<int64_t>(a + d, 0, n - (b - a));
        m_x1 = m_x0 + (b - a);
    }
    if (!m_yAll && m_plot.height() > 0) {
        const int64_t n = int64_t(channelRows(rowCount()).size());
        auto [a, b] = rowWindow(n);
        const int64_t d = int64_t(std::lround(-px.y() / m_plot.height() * double(b - a)));
        m_r0 = std::clamp<int64_t>(a + d, 0, n - (b - a));
        m_r1 = m_r0 + (b - a);
    }
}

void HeatmapFigureBase::resetZoom()
{
    m_xAll = m_yAll = true;
}

void HeatmapFigureBase::drawRowAxis(QPainter& p, const QRectF& plot, const Theme& t, const std::vector<int64_t>& rows,
                                    int64_t highlight, const QString& label) const
{
    const QFontMetricsF fm(t.font, p.device());
    const qreal rowH = plot.height() / qreal(std::max<size_t>(rows.size(), 1));
    const int step = std::max(1, int(std::ceil(fm.height() * 1.2 / std::max(rowH, 1e-6))));
    int nice = 1;
    for (int s : {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096})
        if (s >= step) {
            nice = s;
            break;
        }
    p.setFont(t.font);
    p.setPen(t.text);
    const qreal tick = fm.height() * 0.25;
    const qreal labelW = fm.horizontalAdvance(QStringLiteral("00000"));
    for (size_t i = 0; i < rows.size(); i += size_t(nice)) {
        const qreal y = plot.top() + (qreal(i) + 0.5) * rowH;
        p.drawLine(QPointF(plot.left() - tick, y), QPointF(plot.left(), y));
        p.drawText(QRectF(plot.left() - tick - labelW - 2, y - fm.height() / 2, labelW, fm.height()),
                   Qt::AlignRight | Qt::AlignVCenter, QString::number(rows[i]));
    }
    // the highlighted row's number, in the highlight colour, over the regular ticks
    for (size_t i = 0; i < rows.size(); ++i)
        if (rows[i] == highlight) {
            const qreal y = plot.top() + (qreal(i) + 0.5) * rowH;
            const QRectF box(plot.left() - tick - labelW - 2, y - fm.height() / 2, labelW + 2, fm.height());
            p.fillRect(box, t.background);
            p.setPen(t.highlight);
            p.drawText(box, Qt::AlignRight | Qt::AlignVCenter, QStringLiteral("▶%1").arg(highlight));
            p.setPen(t.text);
        }
    p.save();
    p.translate(plot.left() - tick - labelW - fm.height() * 0.4, plot.center().y());
    p.rotate(-90);
    p.drawText(QRectF(-plot.height() / 2, -fm.height(), plot.height(), fm.height()), Qt::AlignCenter,
               fm.elidedText(label, Qt::ElideRight, plot.height()));
    p.restore();
}

void HeatmapFigureBase::drawOutlines(QPainter& p, const QRectF& plot, const Theme& t, int64_t cursorX,
                                     int64_t highlightRow) const
{
    const int64_t nx = std::max<int64_t>(m_shownX1 - m_shownX0, 1);
    const qreal colW = plot.width() / qreal(nx);
    const qreal lw = std::max<qreal>(1.5, QFontMetricsF(t.font, p.device()).height() * 0.12);
    p.setBrush(Qt::NoBrush);
    p.setRenderHint(QPainter::Antialiasing, false);
    for (size_t i = 0; i < m_shownRows.size(); ++i)
        if (m_shownRows[i] == highlightRow) {
            const qreal rowH = plot.height() / qreal(m_shownRows.size());
            p.setPen(QPen(t.highlight, lw, Qt::DashLine));
            p.drawRect(QRectF(plot.left(), plot.top() + qreal(i) * rowH, plot.width(), std::max(rowH, 1.0)));
        }
    if (cursorX >= m_shownX0 && cursorX < m_shownX1) {
        const qreal x = plot.left() + qreal(cursorX - m_shownX0) * colW;
        p.setPen(QPen(t.cursor, lw));
        if (colW >= 4)
            p.drawRect(QRectF(x, plot.top(), colW, plot.height()));
        else
            p.drawLine(QPointF(x + colW / 2, plot.top()), QPointF(x + colW / 2, plot.bottom()));
    }
    p.setPen(QPen(t.axis, 0));
    p.drawRect(plot);
}

qreal tokenAxisHeight(QPainter& p, const Theme& t)
{
    const QFontMetricsF fm(t.font, p.device());
    return fm.horizontalAdvance(QStringLiteral("000 ␣abcdef")) + fm.height() * 1.5;
}

void drawTokenAxis(QPainter& p, const QRectF& area, const Theme& t, const TraceModel& m, int64_t x0, int64_t x1,
                   int64_t cursor)
{
    const QFontMetricsF fm(t.font, p.device());
    const int64_t n = std::max<int64_t>(x1 - x0, 1);
    const qreal colW = area.width() / qreal(n);
    int64_t step = 1;
    while (colW * qreal(step) < fm.height() * 1.15)
        step = step < 5 ? step + (step == 1 ? 1 : 3) : step * 2; // 1, 2, 5, 10, 20 ...
    const qreal textLen = area.height() - fm.height() * 1.4;
    p.setFont(t.font);
    auto label = [&](int64_t tok, bool isCursor) {
        const qreal x = area.left() + (qreal(tok - x0) + 0.5) * colW;
        p.setPen(isCursor ? t.cursor : t.text);
        p.drawLine(QPointF(x, area.top()), QPointF(x, area.top() + fm.height() * 0.25));
        QString text = visibleTokenText(m.texts().value(int(tok)));
        text = step > 1 || colW < fm.height() * 0.9 ? QStringLiteral("%1 %2").arg(tok).arg(text) : text;
        p.save();
        p.translate(x, area.top() + fm.height() * 0.35);
        p.rotate(-90);
        const QRectF box(-textLen, -fm.height() / 2, textLen, fm.height());
        if (isCursor) {
            QFont bold = t.font;
            bold.setBold(true);
            p.setFont(bold);
            p.fillRect(box, t.background);
        }
        p.drawText(box, Qt::AlignRight | Qt::AlignVCenter, fm.elidedText(text, Qt::ElideRight, textLen));
        p.restore();
    };
    for (int64_t tok = x0 + ((step - x0 % step) % step); tok < x1; tok += step)
        if (tok != cursor)
            label(tok, false);
    if (cursor >= x0 && cursor < x1)
        label(cursor, true);
    p.setPen(t.muted);
    p.drawText(QRectF(area.left(), area.bottom() - fm.height(), area.width(), fm.height()), Qt::AlignCenter,
               step == 1 ? QObject::tr("token (position and text)") : QObject::tr("token (labels every %1 tokens)").arg(step));
}

// ---- tokens × channels ---------------------------------------------------------------

TokenHeatmapFigure::TokenHeatmapFigure(const TraceModel* model, const Selection* sel, Quantity q)
    : HeatmapFigureBase(model, sel)
    , m_q(q)
{
    m_map = quantityInfo(q).isSigned ? Colormap::Diverging : q == Quantity::StateNorm ? Colormap::Magma : Colormap::Viridis;
}

int64_t TokenHeatmapFigure::rowCount() const { return perStateDim() ? m_model->dState() : m_model->dInner(); }

QString TokenHeatmapFigure::unavailableReason() const
{
    const QString r = Figure::unavailableReason();
    if (!r.isEmpty())
        return r;
    if (!dataSeries())
        return QObject::tr("Layer %1 recorded no %2.").arg(layer()).arg(quantity());
    return {};
}

ValueScale TokenHeatmapFigure::currentScale() const
{
    const ProbeSeries* s = dataSeries();
    return scaleFor(quantityInfo(m_q).isSigned, s ? s->stats() : SeriesStats{});
}

HeatmapRequest TokenHeatmapFigure::baseRequest() const
{
    HeatmapRequest q;
    if (const ProbeSeries* s = dataSeries())
        q.series = s->view();
    q.tokenAxis = true;
    q.map = m_map;
    q.scale = currentScale();
    return q;
}

float TokenHeatmapFigure::valueAt(int64_t token, int64_t row) const
{
    const ProbeSeries* s = dataSeries();
    return s && row >= 0 && row < s->width() ? s->at(token, row) : std::numeric_limits<float>::quiet_NaN();
}

void TokenHeatmapFigure::ensureVisible(int64_t token)
{
    if (m_xAll)
        return;
    const int64_t w = m_x1 - m_x0;
    if (token < m_x0)
        m_x0 = token;
    else if (token >= m_x1)
        m_x0 = token - w + 1;
    m_x1 = m_x0 + w;
}

void TokenHeatmapFigure::paint(QPainter& p, const QRectF& r, const Theme& t, const ImageSource& images)
{
    p.fillRect(r, t.background);
    const QString why = unavailableReason();
    if (!why.isEmpty()) {
        m_plot = QRectF();
        paintMessage(p, r, t, why);
        return;
    }
    const int cur = token();
    const auto [x0, x1] = xWindow();
    const QString sub = QObject::tr("tokens %1–%2 of %3 · %4 · cursor: token %5 “%6”")
                            .arg(x0)
                            .arg(x1 - 1)
                            .arg(m_model->tokenCount())
                            .arg(perStateDim() ? QObject::tr("rows: state dimension n") : QObject::tr("rows: channels"))
                            .arg(cur)
                            .arg(visibleTokenText(m_model->texts().value(cur)))
                      + subtitleNote();
    const QRectF rest = paint::drawTitle(p, r, t, title(), sub);
    const QFontMetricsF fm(t.font, p.device());
    const qreal left = fm.height() * 1.5 + fm.horizontalAdvance(QStringLiteral("00000")) + fm.height() * 0.4;
    // In a short panel the rotated token labels give up room first, so the heatmap stays visible.
    const qreal bottom = std::min(tokenAxisHeight(p, t), std::max(fm.height() * 2.0, rest.height() * 0.4));
    const qreal right = paint::colorbarWidth(p, t) + fm.height() * 0.6;
    const QRectF plot(rest.left() + left, rest.top() + fm.height() * 0.2, rest.width() - left - right,
                      rest.height() - bottom - fm.height() * 0.2);
    if (plot.width() < 10 || plot.height() < 10) {
        m_plot = QRectF();
        paintMessage(p, rest, t, QObject::tr("This panel is too small to draw the heatmap: make it larger."));
        return;
    }
    const HeatmapRequest req = request(plot, dprOf(p));
    m_plot = plot;
    m_shownRows = req.rows;
    m_shownX0 = req.x0;
    m_shownX1 = req.x1;
    const QImage img = images(req);
    p.setRenderHint(QPainter::SmoothPixmapTransform, false);
    if (!img.isNull())
        p.drawImage(plot, img);
    const int64_t highlight = perStateDim() ? (m_sel ? m_sel->stateDim() : -1) : (m_sel ? m_sel->channel() : -1);
    drawOutlines(p, plot, t, cur, highlight);
    drawRowAxis(p, plot, t, req.rows, highlight,
                perStateDim() ? QObject::tr("state dim n") : QObject::tr("channel"));
    drawTokenAxis(p, QRectF(plot.left(), plot.bottom(), plot.width(), bottom), t, *m_model, req.x0, req.x1, cur);
    const QRectF bar(plot.right() + fm.height() * 0.6, plot.top(), fm.height() * 0.9, plot.height());
    paint::drawColorbar(p, bar, t, m_map, req.scale, barLabel());
}

FigureHit TokenHeatmapFigure::hitAt(QPointF pos) const
{
    FigureHit h;
    if (!m_plot.contains(pos) || m_shownRows.empty())
        return h;
    const int64_t nx = m_shownX1 - m_shownX0;
    h.token = int(m_shownX0 + std::min<int64_t>(nx - 1, int64_t((pos.x() - m_plot.left()) / m_plot.width() * double(nx))));
    const size_t i = std::min(m_shownRows.size() - 1,
                              size_t((pos.y() - m_plot.top()) / m_plot.height() * double(m_shownRows.size())));
    (perStateDim() ? h.stateDim : h.channel) = int(m_shownRows[i]);
    return h;
}

QString TokenHeatmapFigure::toolTipAt(QPointF pos) const
{
    const FigureHit h = hitAt(pos);
    if (h.token < 0)
        return {};
    const int64_t row = perStateDim() ? h.stateDim : h.channel;
    const QString rowName = perStateDim() ? QObject::tr("state dim n=%1").arg(row) : QObject::tr("channel %1").arg(row);
    QString tip = QObject::tr("<b>%1 = %2</b><br>token %3 “%4”, %5<br>layer %6")
                      .arg(symbol())
                      .arg(QString::number(double(valueAt(h.token, row)), 'g', 7))
                      .arg(h.token)
                      .arg(visibleTokenText(m_model->texts().value(h.token)).toHtmlEscaped())
                      .arg(rowName)
                      .arg(layer());
    const double perPixel = double(m_shownX1 - m_shownX0) / std::max(1.0, m_plot.width());
    if (perPixel > 1.0)
        tip += QObject::tr("<br><i>zoomed out: each pixel shows the value of largest magnitude of ~%1 tokens; "
                           "scroll to zoom in</i>")
                   .arg(perPixel, 0, 'f', 1);
    return tip;
}

QString TokenHeatmapFigure::csv() const
{
    QString out;
    const ProbeSeries* s = dataSeries();
    if (!s)
        return out;
    const std::vector<int64_t> rows = channelRows(rowCount());
    const auto [x0, x1] = xWindow();
    out += QStringLiteral("token,text");
    for (int64_t r : rows)
        out += (perStateDim() ? QStringLiteral(",n%1") : QStringLiteral(",ch%1")).arg(r);
    out += '\n';
    for (int64_t t = x0; t < x1; ++t) {
        out += QString::number(t) + ',' + csvText(m_model->texts().value(int(t)));
        for (int64_t r : rows)
            out += ',' + QString::number(double(s->at(t, r)), 'g', 9);
        out += '\n';
    }
    return out;
}

// ---- state h at one token ------------------------------------------------------------

StateFigure::StateFigure(const TraceModel* model, const Selection* sel)
    : HeatmapFigureBase(model, sel)
{
    m_map = Colormap::Diverging;
}

QString StateFigure::quantity() const { return QObject::tr("state h at token %1").arg(token()); }

QString StateFigure::unavailableReason() const
{
    const QString r = Figure::unavailableReason();
    if (!r.isEmpty())
        return r;
    const ProbeSeries* s = series();
    if (!s)
        return QObject::tr("Layer %1 recorded no state h.").arg(layer());
    if (!s->row(token()))
        return QObject::tr("The memory cap dropped the state at token %1: it is being recomputed from the nearest "
                           "checkpoint…")
            .arg(token());
    return {};
}

ValueScale StateFigure::currentScale() const
{
    if (m_frozen)
        return *m_frozen;
    const ProbeSeries* s = series();
    if (!s)
        return {};
    if (m_range == Range::AllTokens)
        return scaleFor(true, s->stats());
    SeriesStats st;
    if (const float* row = s->row(token()))
        for (int64_t i = 0; i < s->width(); ++i)
            st.maxAbs = std::max(st.maxAbs, std::fabs(row[i])), st.min = 0, st.max = 1;
    return scaleFor(true, st);
}

HeatmapRequest StateFigure::baseRequest() const
{
    HeatmapRequest q;
    if (const ProbeSeries* s = series())
        q.series = s->view();
    q.tokenAxis = false;
    q.token = token();
    q.matCols = m_model->dState();
    q.map = m_map;
    q.scale = currentScale();
    return q;
}

float StateFigure::valueAt(int64_t n, int64_t channel) const
{
    const ProbeSeries* s = series();
    const int64_t N = m_model->dState();
    if (!s || n < 0 || n >= N || channel < 0 || channel >= m_model->dInner())
        return std::numeric_limits<float>::quiet_NaN();
    return s->at(token(), channel * N + n);
}

void StateFigure::paint(QPainter& p, const QRectF& r, const Theme& t, const ImageSource& images)
{
    p.fillRect(r, t.background);
    const QString why = unavailableReason();
    if (!why.isEmpty()) {
        m_plot = QRectF();
        paintMessage(p, r, t, why);
        return;
    }
    const int cur = token();
    const QString rangeText = frozen() ? QObject::tr("colour range frozen")
                              : m_range == Range::AllTokens ? QObject::tr("colour range: all tokens")
                                                            : QObject::tr("colour range: this token");
    const QString sub = QObject::tr("after token %1 “%2” · %3")
                            .arg(cur)
                            .arg(visibleTokenText(m_model->texts().value(cur)))
                            .arg(rangeText);
    const QRectF rest = paint::drawTitle(p, r, t, title(), sub);
    const QFontMetricsF fm(t.font, p.device());
    const qreal left = fm.height() * 1.5 + fm.horizontalAdvance(QStringLiteral("00000")) + fm.height() * 0.4;
    const qreal bottom = fm.height() * 2.6;
    const qreal right = paint::colorbarWidth(p, t) + fm.height() * 0.6;
    QRectF plot(rest.left() + left, rest.top() + fm.height() * 0.2, rest.width() - left - right,
                rest.height() - bottom - fm.height() * 0.2);
    // cells no wider than tall times four: a 16-column state should not stretch across a wide export
    const std::vector<int64_t> rows = channelRows(rowCount());
    const qreal maxW = plot.height() / qreal(std::max<size_t>(rows.size(), 1)) * qreal(xCount()) * 4 + 1;
    if (plot.width() > maxW && maxW > fm.height() * 8)
        plot.setWidth(maxW);
    if (plot.width() < 10 || plot.height() < 10) {
        m_plot = QRectF();
        paintMessage(p, rest, t, QObject::tr("This panel is too small to draw the state: make it larger."));
        return;
    }
    const HeatmapRequest req = request(plot, dprOf(p));
    m_plot = plot;
    m_shownRows = req.rows;
    m_shownX0 = req.x0;
    m_shownX1 = req.x1;
    const QImage img = images(req);
    p.setRenderHint(QPainter::SmoothPixmapTransform, false);
    if (!img.isNull())
        p.drawImage(plot, img);
    drawOutlines(p, plot, t, m_sel ? m_sel->stateDim() : -1, m_sel ? m_sel->channel() : -1);
    drawRowAxis(p, plot, t, req.rows, m_sel ? m_sel->channel() : -1, QObject::tr("channel"));
    // state-dimension axis
    p.setPen(t.text);
    const qreal colW = plot.width() / qreal(std::max<int64_t>(req.x1 - req.x0, 1));
    const int every = colW < fm.horizontalAdvance(QStringLiteral("00")) * 1.3 ? 4 : 1;
    for (int64_t n = req.x0; n < req.x1; ++n)
        if (n % every == 0)
            p.drawText(QRectF(plot.left() + qreal(n - req.x0) * colW - colW, plot.bottom() + 2, colW * 3, fm.height()),
                       Qt::AlignCenter, QString::number(n));
    p.drawText(QRectF(plot.left(), plot.bottom() + fm.height() * 1.3, plot.width(), fm.height()), Qt::AlignCenter,
               QObject::tr("state dim n"));
    const QRectF bar(plot.right() + fm.height() * 0.6, plot.top(), fm.height() * 0.9, plot.height());
    paint::drawColorbar(p, bar, t, m_map, req.scale, QObject::tr("state h"));
}

FigureHit StateFigure::hitAt(QPointF pos) const
{
    FigureHit h;
    if (!m_plot.contains(pos) || m_shownRows.empty())
        return h;
    const int64_t nx = m_shownX1 - m_shownX0;
    h.stateDim = int(m_shownX0 + std::min<int64_t>(nx - 1, int64_t((pos.x() - m_plot.left()) / m_plot.width() * double(nx))));
    const size_t i = std::min(m_shownRows.size() - 1,
                              size_t((pos.y() - m_plot.top()) / m_plot.height() * double(m_shownRows.size())));
    h.channel = int(m_shownRows[i]);
    return h;
}

QString StateFigure::toolTipAt(QPointF pos) const
{
    const FigureHit h = hitAt(pos);
    if (h.channel < 0)
        return {};
    return QObject::tr("<b>h = %1</b><br>channel %2, state dim n=%3<br>after token %4, layer %5")
        .arg(QString::number(double(valueAt(h.stateDim, h.channel)), 'g', 7))
        .arg(h.channel)
        .arg(h.stateDim)
        .arg(token())
        .arg(layer());
}

QString StateFigure::csv() const
{
    QString out;
    const ProbeSeries* s = series();
    if (!s)
        return out;
    const int64_t N = m_model->dState();
    out += QStringLiteral("channel");
    for (int64_t n = 0; n < N; ++n)
        out += QStringLiteral(",n%1").arg(n);
    out += '\n';
    for (int64_t c : channelRows(rowCount())) {
        out += QString::number(c);
        for (int64_t n = 0; n < N; ++n)
            out += ',' + QString::number(double(valueAt(n, c)), 'g', 9);
        out += '\n';
    }
    return out;
}

} // namespace archlens::ui
