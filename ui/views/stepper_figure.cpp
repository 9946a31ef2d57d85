#include "views/stepper_figure.h"

#include <QFontMetricsF>
#include <QPainter>
#include <QPainterPath>

#include <cmath>

namespace archlens::ui {

std::optional<ScanStep> scanStepOf(const TraceModel& m, int layer, int token, int channel)
{
    const ProbeSeries* xs = m.series(layer, Probe::SsmX);
    const ProbeSeries* ds = m.series(layer, Probe::SsmDelta);
    const ProbeSeries* bs = m.series(layer, Probe::SsmB);
    const ProbeSeries* cs = m.series(layer, Probe::SsmC);
    const ProbeSeries* hs = m.series(layer, Probe::SsmState);
    const std::vector<float>& A = m.A(layer);
    const std::vector<float>& D = m.D(layer);
    const int64_t E = m.dInner(), N = m.dState();
    if (!xs || !ds || !bs || !cs || !hs || A.size() != size_t(E * N) || channel < 0 || channel >= E || token < 0 ||
        !xs->row(token) || !ds->row(token) || !bs->row(token) || !cs->row(token) || !hs->row(token) ||
        (token > 0 && !hs->row(token - 1)))
        return std::nullopt;
    analysis::ScanStepInput in;
    in.x = xs->at(token, channel);
    in.delta = ds->at(token, channel);
    in.A.assign(A.begin() + channel * N, A.begin() + (channel + 1) * N);
    in.B.assign(bs->row(token), bs->row(token) + N);
    in.C.assign(cs->row(token), cs->row(token) + N);
    if (token > 0)
        in.hPrev.assign(hs->row(token - 1) + channel * N, hs->row(token - 1) + (channel + 1) * N);
    if (D.size() == size_t(E))
        in.D = D[size_t(channel)];
    const ProbeSeries* g = m.series(layer, Probe::SsmGate);
    if (g && g->row(token))
        in.gate = g->at(token, channel);
    in.order = m.orderAt(token);
    const analysis::ScanStepNumbers n = analysis::scanStep(in);

    ScanStep s;
    s.layer = layer;
    s.token = token;
    s.channel = channel;
    s.x = in.x;
    s.delta = in.delta;
    s.D = in.D.value_or(0.f);
    s.gate = in.gate.value_or(1.f);
    const ProbeSeries* y = m.series(layer, Probe::SsmY);
    s.yRecorded = y && y->row(token) ? y->at(token, channel) : n.yPreGate;
    s.A = in.A;
    s.B = in.B;
    s.C = in.C;
    s.hPrev = n.hOld;
    s.decay = n.decay;
    s.kept = n.decayed;
    s.written = n.input;
    s.h = n.hNew;
    s.hRecorded.assign(hs->row(token) + channel * N, hs->row(token) + (channel + 1) * N);
    s.readout = n.contribution;
    s.Ch = n.readout;
    s.Dx = n.Dx;
    s.y = n.yPreGate;
    return s;
}

int StepperFigure::channel() const
{
    if (m_fixedChannel >= 0)
        return m_fixedChannel;
    if (!m_channels.empty())
        return int(m_channels.front());
    return m_sel ? m_sel->channel() : 0;
}

QString StepperFigure::quantity() const
{
    return QObject::tr("scan step, channel %1, token %2").arg(channel()).arg(token());
}

QString StepperFigure::title() const { return Figure::title(); }

QString StepperFigure::unavailableReason() const
{
    const QString r = Figure::unavailableReason();
    if (!r.isEmpty())
        return r;
    if (channel() < 0 || channel() >= m_model->dInner())
        return QObject::tr("Channel %1 does not exist (the layer has %2 channels).").arg(channel()).arg(m_model->dInner());
    if (!step()) {
        const int L = layer();
        for (Probe p : {Probe::SsmX, Probe::SsmDelta, Probe::SsmB, Probe::SsmC, Probe::SsmState})
            if (!m_model->series(L, p))
                return QObject::tr("This layer lacks the probes the stepper needs (x, Δ, B, C, h and A).");
        if (m_model->A(L).empty())
            return QObject::tr("This layer lacks the probes the stepper needs (x, Δ, B, C, h and A).");
        return QObject::tr("The memory cap dropped the state at token %1: it is being recomputed from the nearest "
                           "checkpoint…")
            .arg(token());
    }
    return {};
}

namespace {
struct Column {
    QString head;
    QString tip;
};
} // namespace

void StepperFigure::paint(QPainter& p, const QRectF& r, const Theme& t, const ImageSource&)
{
    p.fillRect(r, t.background);
    const QString why = unavailableReason();
    if (!why.isEmpty()) {
        m_table = QRectF();
        paintMessage(p, r, t, why);
        return;
    }
    const ScanStep s = *step();
    const QString sub = QObject::tr("token %1 “%2” · channel %3 · layer %4")
                            .arg(s.token)
                            .arg(visibleTokenText(m_model->texts().value(s.token)))
                            .arg(s.channel)
                            .arg(s.layer);
    QRectF rest = paint::drawTitle(p, r, t, title(), sub);
    const QFontMetricsF fm(t.font, p.device());
    qreal lh = fm.height() * 1.25;
    const qreal pad = fm.height() * 0.5;
    p.setFont(t.font);
    p.setPen(t.text);
    QFont mono = t.font;
    mono.setFamily(QStringLiteral("DejaVu Sans Mono"));
    mono.setStyleHint(QFont::Monospace);
    // the table takes at most 65% of the width (the rest draws the bars): shrink its font to fit
    {
        const QFontMetricsF probe(mono, p.device());
        const qreal need = probe.horizontalAdvance(QStringLiteral("000")) +
                           8 * probe.horizontalAdvance(QStringLiteral("-0.000e-00")) + 10 * fm.height() * 0.5;
        const qreal room = rest.width() * 0.65;
        if (need > room)
            mono.setPointSizeF(std::max(t.font.pointSizeF() * 0.6, mono.pointSizeF() * room / need));
    }
    const QFontMetricsF mm(mono, p.device());

    // the equations and this step's scalars
    const QString eq1 = QObject::tr("h_t = exp(Δ_t·A) ⊙ h_{t−1} + Δ_t·B_t·x_t        y_t = C_t·h_t + D·x_t");
    const QString eq2 = QObject::tr("x_t = %1    Δ_t = %2    D = %3    gate SiLU(z_t) = %4")
                            .arg(paint::number(s.x, 5), paint::number(s.delta, 5), paint::number(s.D, 5),
                                 paint::number(s.gate, 5));
    p.drawText(QRectF(rest.left() + pad, rest.top(), rest.width() - 2 * pad, lh), Qt::AlignLeft | Qt::AlignVCenter, eq1);
    p.setFont(mono);
    p.drawText(QRectF(rest.left() + pad, rest.top() + lh, rest.width() - 2 * pad, lh), Qt::AlignLeft | Qt::AlignVCenter,
               eq2);
    rest.setTop(rest.top() + 2.3 * lh);

    const QStringList heads = {QObject::tr("n"),        QObject::tr("A"),         QObject::tr("exp(Δ·A)"),
                               QObject::tr("h_{t−1}"),  QObject::tr("kept"),      QObject::tr("Δ·B·x"),
                               QObject::tr("h_t"),      QObject::tr("C_t"),       QObject::tr("C·h")};
    const qreal mpad = mm.height() * 0.5;
    const qreal numW = mm.horizontalAdvance(QStringLiteral("-0.000e-00")) + mpad;
    const qreal nW = mm.horizontalAdvance(QStringLiteral("000")) + mpad;
    const qreal tableW = nW + numW * 8;
    const qreal barX = rest.left() + pad + tableW + pad;
    const qreal barW = std::max<qreal>(rest.right() - pad - barX, 0);
    const qreal fl = fm.height() * 1.25; // footer lines use the figure font
    const qreal footer = fl * 2.5;
    const int N = int(s.A.size());
    lh = std::max(mm.height() * 1.2, fm.height() * 0.9); // table rows follow the (maybe smaller) table font
    m_rowH = lh;
    m_rowsShown = std::clamp(int((rest.height() - lh - footer) / lh), 0, N);
    if (m_rowsShown < N) // room for the "… more" line
        m_rowsShown = std::max(0, m_rowsShown - 1);
    m_table = QRectF(rest.left() + pad, rest.top() + lh, tableW + pad + barW, m_rowsShown * lh);

    // header
    p.setFont(mono);
    p.setPen(t.muted);
    qreal x = rest.left() + pad;
    for (int i = 0; i < heads.size(); ++i) {
        const qreal w = i == 0 ? nW : numW;
        p.drawText(QRectF(x, rest.top(), w - mpad / 2, lh), Qt::AlignRight | Qt::AlignVCenter,
                   mm.elidedText(heads[i], Qt::ElideRight, w - mpad / 2));
        x += w;
    }
    if (barW > fm.height() * 4)
        p.drawText(QRectF(barX, rest.top(), barW, lh), Qt::AlignLeft | Qt::AlignVCenter,
                   fm.elidedText(QObject::tr("how the state moved: h_{t−1} ─decay→ kept ─write→ h_t"), Qt::ElideRight,
                                 barW));

    // bar scale: symmetric around zero, over every value drawn
    float maxAbs = 1e-12f;
    for (int n = 0; n < N; ++n)
        maxAbs = std::max({maxAbs, std::fabs(s.hPrev[size_t(n)]), std::fabs(s.kept[size_t(n)]), std::fabs(s.h[size_t(n)])});
    const qreal zeroX = barX + barW / 2;
    auto toX = [&](float v) { return zeroX + qreal(v) / qreal(maxAbs) * (barW / 2 - pad); };
    const QColor decayColor = t.paper || t.background.lightness() > 128 ? QColor(33, 102, 172) : QColor(120, 180, 255);
    const QColor writeColor = t.paper || t.background.lightness() > 128 ? QColor(178, 24, 43) : QColor(255, 120, 110);

    const int sel = m_sel ? m_sel->stateDim() : -1;
    for (int n = 0; n < m_rowsShown; ++n) {
        const qreal y = m_table.top() + n * lh;
        if (n == sel)
            p.fillRect(QRectF(m_table.left(), y, m_table.width(), lh), t.panel);
        if (n % 2 == 1 && n != sel)
            p.fillRect(QRectF(m_table.left(), y, m_table.width(), lh), QColor(t.panel.red(), t.panel.green(), t.panel.blue(), 90));
        const size_t i = size_t(n);
        const float vals[] = {s.A[i], s.decay[i], s.hPrev[i], s.kept[i], s.written[i], s.hRecorded[i], s.C[i], s.readout[i]};
        p.setFont(mono);
        p.setPen(n == sel ? t.highlight : t.text);
        x = rest.left() + pad;
        p.drawText(QRectF(x, y, nW - pad / 2, lh), Qt::AlignRight | Qt::AlignVCenter, QString::number(n));
        x += nW;
        for (float v : vals) {
            p.drawText(QRectF(x, y, numW - pad / 2, lh), Qt::AlignRight | Qt::AlignVCenter, paint::number(v, 4));
            x += numW;
        }
        if (barW > fm.height() * 4) {
            const qreal cy = y + lh / 2;
            p.setPen(QPen(t.axis, 0));
            p.drawLine(QPointF(zeroX, y), QPointF(zeroX, y + lh));
            // h_{t-1}: hollow marker; decay: arrow to kept; write: arrow to h_t; h_t: filled marker
            const qreal r0 = lh * 0.18;
            const qreal xp = toX(s.hPrev[i]), xk = toX(s.kept[i]), xh = toX(s.h[i]);
            p.setRenderHint(QPainter::Antialiasing, true);
            p.setPen(QPen(decayColor, lh * 0.12));
            p.drawLine(QPointF(xp, cy - lh * 0.12), QPointF(xk, cy - lh * 0.12));
            p.setPen(QPen(writeColor, lh * 0.12));
            p.drawLine(QPointF(xk, cy + lh * 0.12), QPointF(xh, cy + lh * 0.12));
            p.setPen(QPen(t.text, lh * 0.06));
            p.setBrush(Qt::NoBrush);
            p.drawEllipse(QPointF(xp, cy), r0, r0);
            p.setBrush(t.text);
            p.drawEllipse(QPointF(xh, cy), r0, r0);
            p.setBrush(Qt::NoBrush);
            p.setRenderHint(QPainter::Antialiasing, false);
        }
    }
    if (m_rowsShown < N) {
        p.setPen(t.muted);
        p.setFont(t.font);
        p.drawText(QRectF(m_table.left(), m_table.bottom(), m_table.width(), lh), Qt::AlignLeft | Qt::AlignVCenter,
                   QObject::tr("… %1 more state dimensions (enlarge the view or export the CSV)").arg(N - m_rowsShown));
    }
    // legend and the read-out
    const qreal fy = m_table.bottom() + (m_rowsShown < N ? lh : 0) + fl * 0.2;
    p.setFont(mono);
    p.setPen(t.text);
    p.drawText(QRectF(rest.left() + pad, fy, rest.width() - 2 * pad, fl), Qt::AlignLeft | Qt::AlignVCenter,
               QObject::tr("y_t = C·h (%1) + D·x (%2) = %3   recorded y_t = %4   output y·gate = %5")
                   .arg(paint::number(s.Ch, 5), paint::number(s.Dx, 5), paint::number(s.y, 5),
                        paint::number(s.yRecorded, 5), paint::number(s.yRecorded * s.gate, 5)));
    p.setFont(t.font);
    const qreal ly = fy + fl;
    const qreal lhLegend = fl;
    qreal lx = rest.left() + pad;
    auto legend = [&](const QColor& c, const QString& text) {
        p.setPen(QPen(c, lhLegend * 0.15));
        p.drawLine(QPointF(lx, ly + lhLegend / 2), QPointF(lx + lhLegend * 1.2, ly + lhLegend / 2));
        p.setPen(t.muted);
        const qreal w = fm.horizontalAdvance(text);
        p.drawText(QRectF(lx + lhLegend * 1.4, ly, w + 4, lhLegend), Qt::AlignLeft | Qt::AlignVCenter, text);
        lx += lhLegend * 1.4 + w + lhLegend;
    };
    legend(decayColor, QObject::tr("decay: exp(Δ·A)·h_{t−1} (A < 0, so it shrinks toward 0)"));
    legend(writeColor, QObject::tr("write: + Δ·B·x"));
}

FigureHit StepperFigure::hitAt(QPointF pos) const
{
    FigureHit h;
    if (!m_table.contains(pos) || m_rowH <= 0)
        return h;
    h.stateDim = std::clamp(int((pos.y() - m_table.top()) / m_rowH), 0, std::max(0, m_rowsShown - 1));
    h.channel = channel();
    h.token = token();
    return h;
}

QString StepperFigure::toolTipAt(QPointF pos) const
{
    const FigureHit h = hitAt(pos);
    const auto s = step();
    if (h.stateDim < 0 || !s)
        return {};
    const size_t n = size_t(h.stateDim);
    return QObject::tr("<b>n = %1</b><br>A = %2<br>exp(Δ·A) = %3<br>h_{t−1} = %4<br>kept = %5<br>written Δ·B·x = %6"
                       "<br>h_t = %7 (recomputed %8)<br>C_t = %9")
        .arg(h.stateDim)
        .arg(double(s->A[n]), 0, 'g', 7)
        .arg(double(s->decay[n]), 0, 'g', 7)
        .arg(double(s->hPrev[n]), 0, 'g', 7)
        .arg(double(s->kept[n]), 0, 'g', 7)
        .arg(double(s->written[n]), 0, 'g', 7)
        .arg(double(s->hRecorded[n]), 0, 'g', 7)
        .arg(double(s->h[n]), 0, 'g', 7)
        .arg(double(s->C[n]), 0, 'g', 7);
}

QString StepperFigure::csv() const
{
    const auto s = step();
    if (!s)
        return {};
    QString out = QStringLiteral("n,A,B,C,decay,h_prev,kept,written,h,h_recorded,C_h\n");
    for (size_t n = 0; n < s->A.size(); ++n) {
        const float v[] = {s->A[n], s->B[n], s->C[n], s->decay[n], s->hPrev[n], s->kept[n],
                           s->written[n], s->h[n], s->hRecorded[n], s->readout[n]};
        out += QString::number(n);
        for (float x : v)
            out += ',' + QString::number(double(x), 'g', 9);
        out += '\n';
    }
    return out;
}

} // namespace archlens::ui
