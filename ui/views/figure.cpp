#include "views/figure.h"

#include <QFontMetricsF>
#include <QLinearGradient>
#include <QPainter>
#include <QPalette>

#include <cmath>

namespace archlens::ui {

Theme Theme::screen(const QPalette& pal, const QFont& font)
{
    Theme t;
    t.background = pal.color(QPalette::Base);
    t.text = pal.color(QPalette::Text);
    t.muted = pal.color(QPalette::PlaceholderText);
    t.axis = pal.color(QPalette::Mid);
    const bool dark = t.background.lightness() < 128;
    t.cursor = dark ? QColor(255, 214, 10) : QColor(0, 0, 0);
    t.highlight = dark ? QColor(0, 229, 255) : QColor(230, 0, 126);
    t.panel = pal.color(QPalette::AlternateBase);
    t.font = font;
    return t;
}

Theme Theme::paperTheme()
{
    Theme t;
    t.background = Qt::white;
    t.text = QColor(20, 20, 20);
    t.muted = QColor(100, 100, 100);
    t.axis = QColor(120, 120, 120);
    t.cursor = Qt::black;
    t.highlight = QColor(230, 0, 126);
    t.panel = QColor(245, 245, 245);
    t.font = QFont(QStringLiteral("DejaVu Sans"), 9);
    t.paper = true;
    return t;
}

ImageSource synchronousImages()
{
    return [](const HeatmapRequest& r) { return renderHeatmap(r); };
}

Figure::Figure(const TraceModel* model, const Selection* sel)
    : m_model(model)
    , m_sel(sel)
{
}

int Figure::layer() const { return m_fixedLayer >= 0 ? m_fixedLayer : (m_sel ? m_sel->layer() : 0); }

int Figure::token() const
{
    const int n = m_model->tokenCount();
    const int t = m_fixedToken >= 0 ? m_fixedToken : (m_sel && m_sel->token() >= 0 ? m_sel->token() : n - 1);
    return std::clamp(t, n > 0 ? 0 : -1, n - 1);
}

QString Figure::title() const
{
    const RunMeta& m = m_model->meta();
    return QStringLiteral("%1 · layer %2 · %3").arg(m.modelName.isEmpty() ? QStringLiteral("(no model)") : m.modelName)
        .arg(layer())
        .arg(quantity());
}

QString Figure::unavailableReason() const
{
    if (m_model->tokenCount() == 0)
        return QObject::tr("Run a prompt to see this view.");
    const int l = layer();
    if (l < 0 || l >= m_model->layerCount())
        return QObject::tr("The model has no layer %1.").arg(l);
    if (!m_model->isMambaLayer(l)) {
        QStringList mamba;
        for (int i = 0; i < m_model->layerCount(); ++i)
            if (m_model->isMambaLayer(i))
                mamba << QString::number(i);
        // a Transformer has no scan at all: say where its views are instead of asking for a layer
        if (mamba.isEmpty())
            return QObject::tr("%1 has no Mamba layers, so there is no selective scan to show here. Its attention "
                               "(and routing) are in the \"Routing and attention\" panel.")
                .arg(m_model->meta().modelName.isEmpty() ? QObject::tr("This model") : m_model->meta().modelName);
        return QObject::tr("Layer %1 is an %2 layer: it has no selective scan. Mamba layers: %3.")
            .arg(l)
            .arg(m_model->meta().layerMixer.value(l))
            .arg(mamba.join(','));
    }
    return {};
}

std::vector<int64_t> Figure::channelRows(int64_t count) const
{
    std::vector<int64_t> rows;
    if (!m_channels.empty()) {
        for (int64_t c : m_channels)
            if (c >= 0 && c < count)
                rows.push_back(c);
        return rows;
    }
    rows.resize(size_t(count));
    for (int64_t i = 0; i < count; ++i)
        rows[size_t(i)] = i;
    return rows;
}

void Figure::paintMessage(QPainter& p, const QRectF& r, const Theme& t, const QString& message) const
{
    p.fillRect(r, t.background);
    const QRectF rest = paint::drawTitle(p, r, t, title());
    p.setPen(t.muted);
    p.setFont(t.font);
    p.drawText(rest.adjusted(12, 12, -12, -12), Qt::AlignCenter | Qt::TextWordWrap, message);
}

namespace paint {

QString number(double v, int precision)
{
    if (std::isnan(v))
        return QStringLiteral("—");
    if (v == 0)
        return QStringLiteral("0");
    const double a = std::fabs(v);
    if (a >= 1e4 || a < 1e-3)
        return QString::number(v, 'e', precision - 1);
    return QString::number(v, 'g', precision);
}

QRectF drawTitle(QPainter& p, const QRectF& r, const Theme& t, const QString& title, const QString& subtitle)
{
    QFont f = t.font;
    f.setBold(true);
    f.setPointSizeF(t.font.pointSizeF() * 1.15);
    const QFontMetricsF fm(f, p.device());
    const qreal pad = fm.height() * 0.3;
    p.setFont(f);
    p.setPen(t.text);
    const QRectF titleRect(r.left() + pad, r.top() + pad, r.width() - 2 * pad, fm.height());
    p.drawText(titleRect, Qt::AlignLeft | Qt::AlignVCenter, fm.elidedText(title, Qt::ElideRight, titleRect.width()));
    qreal bottom = titleRect.bottom();
    if (!subtitle.isEmpty()) {
        const QFontMetricsF sm(t.font, p.device());
        p.setFont(t.font);
        p.setPen(t.muted);
        const QRectF sub(titleRect.left(), bottom, titleRect.width(), sm.height());
        p.drawText(sub, Qt::AlignLeft | Qt::AlignVCenter, sm.elidedText(subtitle, Qt::ElideRight, sub.width()));
        bottom = sub.bottom();
    }
    p.setFont(t.font);
    return QRectF(r.left(), bottom + pad, r.width(), r.bottom() - bottom - pad);
}

qreal colorbarWidth(QPainter& p, const Theme& t)
{
    const QFontMetricsF fm(t.font, p.device());
    return fm.height() * 1.0 + fm.horizontalAdvance(QStringLiteral("−0.0000e-00")) + fm.height() * 1.6;
}

void drawColorbar(QPainter& p, const QRectF& bar, const Theme& t, Colormap map, const ValueScale& s,
                  const QString& label)
{
    const QFontMetricsF fm(t.font, p.device());
    // the bar: 256 bands, low at the bottom
    const auto& lut = colormapLut(map);
    for (int i = 0; i < 256; ++i) {
        const qreal y0 = bar.bottom() - bar.height() * (i + 1) / 256.0;
        p.fillRect(QRectF(bar.left(), y0, bar.width(), bar.height() / 256.0 + 0.6), QColor(lut[size_t(i)]));
    }
    p.setPen(QPen(t.axis, 0));
    p.setBrush(Qt::NoBrush);
    p.drawRect(bar);
    // ticks: five, evenly spaced in the scale's domain
    p.setFont(t.font);
    p.setPen(t.text);
    for (int i = 0; i <= 4; ++i) {
        const double f = i / 4.0;
        double v;
        if (s.log) {
            const double l0 = std::log10(std::max(double(s.lo), 1e-30)), l1 = std::log10(std::max(double(s.hi), 1e-30));
            v = std::pow(10.0, l0 + f * (l1 - l0));
        } else {
            v = s.lo + f * (double(s.hi) - s.lo);
        }
        const qreal y = bar.bottom() - f * bar.height();
        p.drawLine(QPointF(bar.right(), y), QPointF(bar.right() + fm.height() * 0.25, y));
        p.drawText(QRectF(bar.right() + fm.height() * 0.35, y - fm.height() / 2, fm.horizontalAdvance("−0.0000e-00"),
                          fm.height()),
                   Qt::AlignLeft | Qt::AlignVCenter, number(v));
    }
    // the quantity's name, along the bar
    p.save();
    const qreal x = bar.right() + fm.height() * 0.35 + fm.horizontalAdvance("−0.0000e-00") + fm.height() * 0.2;
    p.translate(x, bar.center().y());
    p.rotate(90);
    const QString text = fm.elidedText(label + (s.log ? QObject::tr(", log") : QString()), Qt::ElideRight,
                                       bar.height());
    p.drawText(QRectF(-bar.height() / 2, -fm.height(), bar.height(), fm.height()), Qt::AlignCenter, text);
    p.restore();
}

} // namespace paint

} // namespace archlens::ui
