#include "views/channel_charts.h"

#include <QChart>
#include <QElapsedTimer>
#include <QGraphicsScene>
#include <QLineSeries>
#include <QPainter>
#include <QValueAxis>

#include <cmath>

namespace archlens::ui {

ChannelChartsFigure::ChannelChartsFigure(const TraceModel* model, const Selection* sel)
    : Figure(model, sel)
    , m_scene(std::make_unique<QGraphicsScene>())
{
    for (auto& c : m_charts) {
        c = new QChart;
        c->legend()->setAlignment(Qt::AlignRight);
        c->setMargins(QMargins(2, 0, 2, 0));
        c->setAnimationOptions(QChart::NoAnimation);
        m_scene->addItem(c);
    }
}

ChannelChartsFigure::~ChannelChartsFigure() = default;

std::vector<int64_t> ChannelChartsFigure::chartChannels() const
{
    std::vector<int64_t> cs = m_channels;
    if (cs.empty())
        cs.push_back(m_sel ? m_sel->channel() : 0);
    if (cs.size() > 4)
        cs.resize(4);
    return cs;
}

std::vector<int64_t> ChannelChartsFigure::chartDims() const
{
    std::vector<int64_t> ds = m_dims;
    if (ds.empty()) {
        const int64_t sel = m_sel ? m_sel->stateDim() : 0;
        ds.push_back(sel);
        for (int64_t n = 0; ds.size() < 3 && n < m_model->dState(); ++n)
            if (n != sel)
                ds.push_back(n);
    }
    if (ds.size() > 4)
        ds.resize(4);
    return ds;
}

QString ChannelChartsFigure::quantity() const
{
    QStringList cs;
    for (int64_t c : chartChannels())
        cs << QString::number(c);
    return QObject::tr("h, Δ and decay over tokens, channel %1").arg(cs.join(','));
}

void ChannelChartsFigure::rebuild(const Theme& t)
{
    const int L = layer();
    const auto chans = chartChannels();
    const auto dims = chartDims();
    QByteArray k;
    auto add = [&k](const auto& v) { k.append(reinterpret_cast<const char*>(&v), sizeof(v)); };
    add(L), add(t.paper), add(t.background.rgb()), add(t.font.pointSizeF()), add(m_model->layerCount());
    for (auto c : chans)
        add(c);
    for (auto d : dims)
        add(d);
    const quint64 key = qHash(k);
    if (key != m_builtKey) {
        m_builtKey = key;
        m_dataVersion = ~quint64(0);
        buildStructure(t, chans, dims);
    }
    // QtCharts re-lays out every series on replace(): while tokens stream in, refresh at most
    // a few times a second (FigureWidget repaints once more when asked to), otherwise at once
    m_refreshIn = 0;
    if (m_dataVersion != m_model->version()) {
        const bool streaming = m_fillClock.isValid() && m_fillClock.elapsed() < kStreamRefreshMs &&
                               m_model->tokenCount() != m_filledTokens && m_filledTokens > 0;
        if (streaming) {
            m_refreshIn = int(kStreamRefreshMs - m_fillClock.elapsed()) + 1;
        } else {
            m_dataVersion = m_model->version();
            m_filledTokens = m_model->tokenCount();
            m_fillClock.start();
            fillData();
        }
    }
}

// Charts, axes and series: rebuilt only when the layer, channels, dims or theme change
// (setTheme and new axes are the expensive part of QtCharts).
void ChannelChartsFigure::buildStructure(const Theme& t, const std::vector<int64_t>& chans,
                                         const std::vector<int64_t>& dims)
{
    const bool dark = !t.paper && t.background.lightness() < 128;
    const QString titles[3] = {QObject::tr("state h[c, n]"), QObject::tr("Δ[c] (step size: how much of token t enters)"),
                               QObject::tr("decay exp(Δ·A[c, n]) (1 = remember, 0 = forget) · x: token position")};
    QFont small = t.font;
    small.setPointSizeF(t.font.pointSizeF() * 0.9);
    QFont legendFont = small;
    legendFont.setPointSizeF(small.pointSizeF() * 0.9);
    m_lines.clear();
    for (int i = 0; i < 3; ++i) {
        QChart* c = m_charts[i];
        c->removeAllSeries();
        for (QAbstractAxis* a : c->axes())
            c->removeAxis(a), delete a;
        c->setTheme(dark ? QChart::ChartThemeDark : QChart::ChartThemeLight);
        c->setBackgroundBrush(t.background);
        c->setPlotAreaBackgroundVisible(false);
        c->setTitle(titles[i]);
        c->setTitleFont(small);
        c->setTitleBrush(t.text);
        c->legend()->setFont(legendFont);
        c->legend()->setLabelColor(t.text);
        auto* ax = new QValueAxis;
        auto* ay = new QValueAxis;
        ax->setLabelFormat("%d");
        ay->setLabelFormat("%.3g");
        ay->setTickCount(3);
        ax->setLabelsVisible(i == 2); // the three charts share the token axis
        for (QValueAxis* a : {ax, ay}) {
            a->setLabelsFont(small);
            a->setTitleFont(small);
            a->setLabelsColor(t.text);
            a->setTitleBrush(t.text);
        }
        c->addAxis(ax, Qt::AlignBottom);
        c->addAxis(ay, Qt::AlignLeft);
        m_axes[i] = {ax, ay};
        auto addLine = [&](const QString& name, int64_t ch, int64_t n) {
            auto* s = new QLineSeries;
            s->setName(name);
            c->addSeries(s);
            s->attachAxis(ax);
            s->attachAxis(ay);
            m_lines.push_back({i, ch, n, s});
        };
        for (int64_t ch : chans) {
            if (i == 1) {
                addLine(QObject::tr("Δ c%1").arg(ch), ch, -1);
                continue;
            }
            for (int64_t n : dims)
                addLine(i == 0 ? QObject::tr("h c%1 n%2").arg(ch).arg(n) : QObject::tr("c%1 n%2").arg(ch).arg(n), ch, n);
        }
        auto* cursor = new QLineSeries;
        cursor->setPen(QPen(t.cursor, 1.5, Qt::DashLine));
        c->addSeries(cursor);
        cursor->attachAxis(ax);
        cursor->attachAxis(ay);
        m_cursor[i] = cursor;
    }
}

// Points and ranges for the current data: cheap enough for every coalesced update.
void ChannelChartsFigure::fillData()
{
    const int L = layer();
    const ProbeSeries* hs = m_model->series(L, Probe::SsmState);
    const ProbeSeries* ds = m_model->series(L, Probe::SsmDelta);
    const std::vector<float>& A = m_model->A(L);
    const int64_t N = m_model->dState(), T = m_model->tokenCount();
    double lo[3] = {0, 0, 0}, hi[3] = {0, 0, 1};
    for (const Line& line : m_lines) {
        auto f = [&](int64_t tk) -> float {
            if (line.chart == 1)
                return ds ? ds->at(tk, line.channel) : NAN;
            if (line.chart == 0)
                return hs ? hs->at(tk, line.channel * N + line.dim) : NAN;
            const size_t a = size_t(line.channel * N + line.dim);
            return ds && a < A.size() ? std::exp(ds->at(tk, line.channel) * A[a]) : NAN;
        };
        // long runs: each bucket of tokens keeps its min and max, so peaks survive
        const int64_t buckets = std::min<int64_t>(T, kMaxBuckets);
        QList<QPointF> pts;
        pts.reserve(qsizetype(2 * buckets));
        for (int64_t b = 0; b < buckets; ++b) {
            const int64_t t0 = b * T / buckets, t1 = std::max((b + 1) * T / buckets, t0 + 1);
            int64_t tMin = -1, tMax = -1;
            float vMin = 0, vMax = 0;
            for (int64_t tk = t0; tk < t1; ++tk) {
                const float v = f(tk);
                if (std::isnan(v))
                    continue;
                if (tMin < 0 || v < vMin)
                    tMin = tk, vMin = v;
                if (tMax < 0 || v > vMax)
                    tMax = tk, vMax = v;
            }
            if (tMin < 0)
                continue;
            pts.append(QPointF(qreal(std::min(tMin, tMax)), qreal(tMin < tMax ? vMin : vMax)));
            if (tMin != tMax)
                pts.append(QPointF(qreal(std::max(tMin, tMax)), qreal(tMin < tMax ? vMax : vMin)));
            lo[line.chart] = std::min(lo[line.chart], double(vMin));
            hi[line.chart] = std::max(hi[line.chart], double(vMax));
        }
        line.series->replace(pts);
    }
    for (int i = 0; i < 3; ++i) {
        if (hi[i] <= lo[i])
            hi[i] = lo[i] + 1;
        const double pad = (hi[i] - lo[i]) * 0.05;
        m_axes[i].first->setRange(0, std::max<qreal>(1, qreal(T - 1)));
        m_axes[i].second->setRange(lo[i] - pad, hi[i] + pad);
        m_cursorY[i] = {lo[i] - pad, hi[i] + pad};
    }
    m_cursorToken = -2;
}

void ChannelChartsFigure::placeCursor()
{
    if (m_cursorToken == token())
        return;
    m_cursorToken = token();
    for (int i = 0; i < 3; ++i)
        if (m_cursor[i]) {
            m_cursor[i]->setName(QObject::tr("token %1").arg(token()));
            m_cursor[i]->replace({QPointF(token(), m_cursorY[i].first), QPointF(token(), m_cursorY[i].second)});
        }
}

void ChannelChartsFigure::paint(QPainter& p, const QRectF& r, const Theme& t, const ImageSource&)
{
    p.fillRect(r, t.background);
    const QString why = unavailableReason();
    if (!why.isEmpty()) {
        paintMessage(p, r, t, why);
        return;
    }
    const QRectF rest = paint::drawTitle(p, r, t, title());
    QElapsedTimer timer;
    timer.start();
    rebuild(t);
    placeCursor();
    const double buildMs = double(timer.nsecsElapsed()) / 1e6;
    // lay the charts out in scene units of the target size (so text keeps its point size)
    const qreal scale = p.device() ? p.device()->logicalDpiY() / 96.0 : 1.0;
    const QSizeF sceneSize(rest.width() / scale, rest.height() / scale);
    for (int i = 0; i < 3; ++i)
        m_charts[i]->setGeometry(QRectF(0, sceneSize.height() * i / 3, sceneSize.width(), sceneSize.height() / 3));
    m_scene->setSceneRect(QRectF(QPointF(0, 0), sceneSize));
    m_area = rest;
    p.save();
    p.setRenderHint(QPainter::Antialiasing, true);
    m_scene->render(&p, rest, QRectF(QPointF(0, 0), sceneSize));
    p.restore();
    if (qEnvironmentVariableIsSet("ARCHLENS_DEBUG_PAINT"))
        qInfo("charts: build %.2f ms, render %.2f ms", buildMs, double(timer.nsecsElapsed()) / 1e6 - buildMs);
}

FigureHit ChannelChartsFigure::hitAt(QPointF pos) const
{
    FigureHit h;
    if (!m_area.contains(pos))
        return h;
    const qreal scale = m_area.width() / std::max<qreal>(1, m_scene->sceneRect().width());
    const QPointF scenePos = (pos - m_area.topLeft()) / scale;
    for (QChart* c : m_charts)
        if (c->geometry().contains(scenePos) && c->plotArea().translated(c->pos()).contains(scenePos) &&
            !c->series().isEmpty()) {
            const QPointF v = c->mapToValue(scenePos - c->pos(), c->series().front());
            h.token = std::clamp(int(std::lround(v.x())), 0, m_model->tokenCount() - 1);
            h.channel = int(chartChannels().front());
        }
    return h;
}

QString ChannelChartsFigure::toolTipAt(QPointF pos) const
{
    const FigureHit h = hitAt(pos);
    if (h.token < 0)
        return {};
    const int L = layer();
    QString tip = QObject::tr("<b>token %1 “%2”</b>").arg(h.token).arg(visibleTokenText(m_model->texts().value(h.token)).toHtmlEscaped());
    const ProbeSeries* hs = m_model->series(L, Probe::SsmState);
    const ProbeSeries* ds = m_model->series(L, Probe::SsmDelta);
    const int64_t N = m_model->dState();
    for (int64_t c : chartChannels()) {
        if (ds)
            tip += QObject::tr("<br>Δ c%1 = %2").arg(c).arg(double(ds->at(h.token, c)), 0, 'g', 7);
        for (int64_t n : chartDims())
            if (hs)
                tip += QObject::tr("<br>h c%1 n%2 = %3").arg(c).arg(n).arg(double(hs->at(h.token, c * N + n)), 0, 'g', 7);
    }
    return tip;
}

QList<QPointF> ChannelChartsFigure::statePoints() const
{
    const auto* s = m_charts[0]->series().isEmpty() ? nullptr : qobject_cast<QLineSeries*>(m_charts[0]->series().front());
    return s ? s->points() : QList<QPointF>{};
}

QString ChannelChartsFigure::csv() const
{
    const int L = layer();
    const ProbeSeries* hs = m_model->series(L, Probe::SsmState);
    const ProbeSeries* ds = m_model->series(L, Probe::SsmDelta);
    const std::vector<float>& A = m_model->A(L);
    const int64_t N = m_model->dState();
    QString out = QStringLiteral("token,text");
    for (int64_t c : chartChannels()) {
        out += QStringLiteral(",delta_c%1").arg(c);
        for (int64_t n : chartDims())
            out += QStringLiteral(",h_c%1_n%2,decay_c%1_n%2").arg(c).arg(n);
    }
    out += '\n';
    for (int t = 0; t < m_model->tokenCount(); ++t) {
        QString text = visibleTokenText(m_model->texts().value(t));
        if (text.contains(',') || text.contains('"'))
            text = '"' + text.replace('"', QStringLiteral("\"\"")) + '"';
        out += QString::number(t) + ',' + text;
        for (int64_t c : chartChannels()) {
            const float d = ds ? ds->at(t, c) : NAN;
            out += ',' + QString::number(double(d), 'g', 9);
            for (int64_t n : chartDims()) {
                out += ',' + QString::number(double(hs ? hs->at(t, c * N + n) : NAN), 'g', 9);
                out += ',' + QString::number(size_t(c * N + n) < A.size() ? std::exp(double(d) * A[size_t(c * N + n)]) : NAN, 'g', 9);
            }
        }
        out += '\n';
    }
    return out;
}

} // namespace archlens::ui
