#include "views/horizon_figure.h"

#include <QFontMetricsF>
#include <QPainter>

namespace archlens::ui {

HorizonFigure::HorizonFigure(const TraceModel* model, const Selection* sel)
    : TokenHeatmapFigure(model, sel, Quantity::Delta)
{
    m_map = Colormap::Magma;
}

const MemoryHorizon& HorizonFigure::horizon() const
{
    if (m_version != m_model->version() || m_layer != layer()) {
        m_h = computeMemoryHorizon(*m_model, layer());
        m_version = m_model->version();
        m_layer = layer();
    }
    return m_h;
}

HeatmapRequest HorizonFigure::baseRequest() const
{
    HeatmapRequest q = TokenHeatmapFigure::baseRequest();
    q.missing = kCensored;
    return q;
}

const ProbeSeries* HorizonFigure::dataSeries() const
{
    const MemoryHorizon& h = horizon();
    return h.tokens > 0 ? &h.horizon : nullptr;
}

QString HorizonFigure::unavailableReason() const
{
    const QString r = Figure::unavailableReason();
    if (!r.isEmpty())
        return r;
    if (!dataSeries())
        return QObject::tr("The memory horizon needs Δ and A of layer %1.").arg(layer());
    return {};
}

QString HorizonFigure::subtitleNote() const
{
    return QObject::tr(" · light grey: still remembered at the end (H ≥ T−1−s) · ▲ Δ > %1× median: reset (%2)")
        .arg(double(horizon().spikeFactor), 0, 'g', 3)
        .arg(horizon().spikes.size());
}

void HorizonFigure::paint(QPainter& p, const QRectF& r, const Theme& t, const ImageSource& images)
{
    TokenHeatmapFigure::paint(p, r, t, images);
    if (m_plot.isEmpty() || m_shownRows.empty())
        return;
    // spikes: a small triangle on each visible (token, channel) cell
    const qreal colW = m_plot.width() / qreal(std::max<int64_t>(m_shownX1 - m_shownX0, 1));
    const qreal rowH = m_plot.height() / qreal(m_shownRows.size());
    const qreal s = std::clamp(std::min(colW, rowH) * 0.9, 2.5, QFontMetricsF(t.font, p.device()).height() * 0.5);
    std::vector<int> rowOf(size_t(m_model->dInner()), -1);
    for (size_t i = 0; i < m_shownRows.size(); ++i)
        if (m_shownRows[i] < int64_t(rowOf.size()))
            rowOf[size_t(m_shownRows[i])] = int(i);
    p.save();
    p.setRenderHint(QPainter::Antialiasing, true);
    p.setPen(QPen(Qt::black, s * 0.15));
    p.setBrush(QColor(0, 229, 255));
    for (const auto& [tok, ch] : horizon().spikes) {
        if (tok < m_shownX0 || tok >= m_shownX1 || ch >= int64_t(rowOf.size()) || rowOf[size_t(ch)] < 0)
            continue;
        const QPointF c(m_plot.left() + (qreal(tok - m_shownX0) + 0.5) * colW,
                        m_plot.top() + (qreal(rowOf[size_t(ch)]) + 0.5) * rowH);
        const QPointF tri[3] = {c + QPointF(0, -s / 2), c + QPointF(s / 2, s / 2), c + QPointF(-s / 2, s / 2)};
        p.drawPolygon(tri, 3);
    }
    p.restore();
}

QString HorizonFigure::toolTipAt(QPointF pos) const
{
    const FigureHit h = hitAt(pos);
    if (h.token < 0 || h.channel < 0)
        return {};
    const float v = valueAt(h.token, h.channel);
    const int T = m_model->tokenCount();
    QString tip = std::isnan(v) ? QObject::tr("<b>H ≥ %1 tokens</b> (still above 1% at the last token)").arg(T - 1 - h.token)
                                : QObject::tr("<b>H = %1 tokens</b>").arg(double(v), 0, 'g', 6);
    tip += QObject::tr("<br>what token %1 “%2” wrote into channel %3")
               .arg(h.token)
               .arg(visibleTokenText(m_model->texts().value(h.token)).toHtmlEscaped())
               .arg(h.channel);
    for (const auto& [tok, ch] : horizon().spikes)
        if (tok == h.token && ch == h.channel)
            tip += QObject::tr("<br><b>Δ spike</b>: a reset — this token flushed the channel's memory");
    return tip;
}

} // namespace archlens::ui
