#include "views/horizon_figure.h"

#include <QFontMetricsF>
#include <QPainter>

#include "analysis/scan_analysis.h"

namespace archlens::ui {

MemoryHorizon memoryHorizonOf(const TraceModel& m, int layer)
{
    MemoryHorizon out;
    out.forget = analysis::kDefaultForgetFraction;
    out.spikeFactor = analysis::kDefaultSpikeMultiple;
    const ProbeSeries* ds = m.series(layer, Probe::SsmDelta);
    const std::vector<float>& A = m.A(layer);
    const int64_t E = m.dInner(), N = m.dState(), T = m.tokenCount();
    if (!ds || T == 0 || A.size() != size_t(E * N) || ds->width() != E)
        return out;
    Tensor delta = Tensor::empty({T, E});
    for (int64_t t = 0; t < T; ++t) {
        const float* row = ds->row(t);
        if (!row) {
            out.missingToken = t;
            return out;
        }
        std::copy(row, row + E, delta.f32() + t * E);
    }
    const Tensor a = Tensor::fromVector({E, N}, A);
    std::vector<float> H(size_t(T * E));
    for (int64_t c = 0; c < E; ++c) {
        const std::vector<analysis::Horizon> hc = analysis::memoryHorizons(delta, a, c, out.forget);
        for (int64_t s = 0; s < T; ++s)
            H[size_t(s * E + c)] = hc[size_t(s)].atLeast ? NAN : float(hc[size_t(s)].tokens);
    }
    out.spikes = analysis::deltaSpikes(delta, out.spikeFactor).spikes;
    out.tokens = T;
    out.channels = E;
    out.horizon = ProbeSeries(E);
    out.horizon.append(H.data(), T);
    return out;
}

HorizonFigure::HorizonFigure(const TraceModel* model, const Selection* sel)
    : TokenHeatmapFigure(model, sel, Quantity::Delta)
{
    m_map = Colormap::Magma;
}

const MemoryHorizon& HorizonFigure::horizon() const
{
    m_refreshIn = 0;
    if (m_version != m_model->version() || m_layer != layer()) {
        constexpr qint64 kStreamRefreshMs = 250;
        const bool streaming = m_layer == layer() && m_h.tokens > 0 && m_computed.isValid() &&
                               m_computed.elapsed() < kStreamRefreshMs;
        if (streaming) {
            m_refreshIn = int(kStreamRefreshMs - m_computed.elapsed()) + 1;
            return m_h;
        }
        m_h = memoryHorizonOf(*m_model, layer());
        m_version = m_model->version();
        m_layer = layer();
        m_computed.start();
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
    if (!dataSeries()) {
        if (horizon().missingToken >= 0)
            return QObject::tr("The memory horizon needs Δ of every token; the memory cap dropped Δ at token %1. "
                               "Raise the cap in the Memory panel.")
                .arg(horizon().missingToken);
        return QObject::tr("The memory horizon needs Δ and A of layer %1.").arg(layer());
    }
    return {};
}

QString HorizonFigure::subtitleNote() const
{
    return QObject::tr(" · light grey: still remembered at the end (H ≥ T−s) · ▲ Δ > %1× median: reset (%2)")
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
    QString tip = std::isnan(v) ? QObject::tr("<b>H ≥ %1 tokens</b> (still above 1% at the last token)").arg(T - h.token)
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
