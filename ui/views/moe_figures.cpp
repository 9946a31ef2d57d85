#include "views/moe_figures.h"

#include <QBarCategoryAxis>
#include <QBarSeries>
#include <QBarSet>
#include <QChart>
#include <QFontMetricsF>
#include <QGraphicsScene>
#include <QLegend>
#include <QLineSeries>
#include <QPainter>
#include <QValueAxis>

#include <cmath>

#include "views/expert_palette.h"
#include "views/heatmap_figures.h"

namespace archlens::ui {

using analysis::BalanceReadout;
using analysis::LayerRouting;

namespace {
constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

QString moeLayerList(const MoeSource* s)
{
    QStringList l;
    for (int i : s->routing.moeLayers())
        l << QString::number(i);
    return l.isEmpty() ? QObject::tr("none") : l.join(',');
}

} // namespace

MoeFigureBase::MoeFigureBase(const TraceModel* model, const Selection* sel, const MoeSource* src)
    : Figure(model, sel)
    , m_src(src)
{
}

QString MoeFigureBase::unavailableReason() const
{
    if (m_model->tokenCount() == 0 && m_src->routing.tokens() == 0)
        return QObject::tr("Run a prompt to see this view.");
    if (m_src->routing.moeLayers().empty())
        return QObject::tr("This model recorded no router: it has no mixture-of-experts layers.");
    if (allLayers())
        return {};
    const int l = layer();
    if (!m_src->routing.routing(l))
        return QObject::tr("Layer %1 has no routed experts (its feed-forward is %2). MoE layers: %3.")
            .arg(l)
            .arg(QString::fromStdString(size_t(l) < m_src->routing.layerFfn.size() ? m_src->routing.layerFfn[size_t(l)]
                                                                                   : std::string("not MoE")))
            .arg(moeLayerList(m_src));
    return {};
}

QString MoeFigureBase::balanceLine(const BalanceReadout& b) const
{
    return QObject::tr("cv %1 · max violation %2 · mean router entropy %3 nats · load-balancing loss %4")
        .arg(paint::number(b.cv))
        .arg(paint::number(b.maxViolation))
        .arg(paint::number(b.meanEntropy))
        .arg(paint::number(b.loadBalancingLoss, 4));
}

// ---- router --------------------------------------------------------------------------

float RouterFigure::shownProbability(int64_t token, int64_t expert) const
{
    const LayerRouting* r = routing();
    if (!r || token < 0 || token >= r->tokens() || expert < 0 || expert >= r->experts)
        return kNaN;
    return r->probs[size_t(token * r->experts + expert)];
}

int RouterFigure::chosenSlot(int64_t token, int64_t expert) const
{
    const LayerRouting* r = routing();
    if (!r || token < 0 || token >= r->tokens())
        return -1;
    for (int64_t j = 0; j < r->topK; ++j)
        if (r->topk[size_t(token * r->topK + j)] == expert)
            return int(j);
    return -1;
}

void RouterFigure::paint(QPainter& p, const QRectF& r, const Theme& t, const ImageSource&)
{
    if (const QString why = unavailableReason(); !why.isEmpty()) {
        m_geom = {};
        paintMessage(p, r, t, why);
        return;
    }
    p.fillRect(r, t.background);
    const LayerRouting& R = *routing();
    const BalanceReadout b = analysis::layerBalance(R);
    QRectF rest = paint::drawTitle(p, r, t, title(),
                                   QObject::tr("outlined: the chosen top-%1 (solid 1st, dashed later) of %2 experts · ").arg(R.topK).arg(R.experts) +
                                       balanceLine(b));
    rest = paintWarning(p, rest, t, QString::fromStdString(b.warning()));
    MatrixSpec m;
    const int64_t T = R.tokens();
    m.rows = R.experts;
    m.cols = T;
    m.value = [&R](int64_t e, int64_t tok) { return R.probs[size_t(tok * R.experts + e)]; };
    m.map = Colormap::Viridis;
    m.scale = ValueScale{0.f, 1.f, false};
    m.barLabel = QObject::tr("router probability p");
    m.rowLabel = QObject::tr("expert");
    m.rowName = [](int64_t e) { return QStringLiteral("E%1").arg(e); };
    m.colsAreTokens = true;
    const int cursor = token();
    m_geom = paintMatrix(p, rest, t, m, m_model, cursor);
    // chosen experts: slot 1 solid, later slots dashed; cells too small get a dot
    const QRectF c0 = m_geom.cell(0, 0);
    const qreal lw = std::max<qreal>(1.2, std::min(c0.width(), c0.height()) * 0.12);
    p.setBrush(Qt::NoBrush);
    if (c0.width() >= 3 && c0.height() >= 3) {
        for (int64_t tok = 0; tok < T; ++tok)
            for (int64_t j = 0; j < R.topK; ++j) {
                const int32_t e = R.topk[size_t(tok * R.topK + j)];
                const QRectF c = m_geom.cell(e, tok).adjusted(lw / 2, lw / 2, -lw / 2, -lw / 2);
                p.setPen(QPen(t.paper ? QColor(230, 0, 126) : QColor(255, 80, 160), lw, j == 0 ? Qt::SolidLine : Qt::DashLine));
                p.drawRect(c);
            }
    }
    drawPromptBoundary(p, m_geom.plot, t, m_src->routing.promptLength, T);
    if (cursor >= 0 && cursor < T) {
        const QRectF col = m_geom.cell(0, cursor);
        p.setPen(QPen(t.cursor, std::max<qreal>(1.5, lw)));
        p.drawRect(QRectF(col.left(), m_geom.plot.top(), col.width(), m_geom.plot.height()));
    }
}

QString RouterFigure::csv() const
{
    const LayerRouting* r = routing();
    if (!r)
        return {};
    QString out = QStringLiteral("token,text");
    for (int64_t e = 0; e < r->experts; ++e)
        out += QStringLiteral(",p%1").arg(e);
    for (int64_t j = 0; j < r->topK; ++j)
        out += QStringLiteral(",expert%1,weight%1").arg(j + 1);
    out += '\n';
    for (int64_t tok = 0; tok < r->tokens(); ++tok) {
        out += QStringLiteral("%1,%2").arg(tok).arg(csvField(m_model->texts().value(int(tok))));
        for (int64_t e = 0; e < r->experts; ++e)
            out += ',' + QString::number(r->probs[size_t(tok * r->experts + e)], 'g', 9);
        for (int64_t j = 0; j < r->topK; ++j)
            out += QStringLiteral(",%1,%2")
                       .arg(r->topk[size_t(tok * r->topK + j)])
                       .arg(j < int64_t(r->weights.size() / std::max<size_t>(1, size_t(r->tokens())))
                                ? QString::number(r->weights[size_t(tok * r->topK + j)], 'g', 9)
                                : QString());
        out += '\n';
    }
    return out;
}

QString RouterFigure::toolTipAt(QPointF pos) const
{
    const LayerRouting* r = routing();
    if (!r || !m_geom.contains(pos))
        return {};
    const int64_t e = m_geom.rowAt(pos), tok = m_geom.colAt(pos);
    QString s = QObject::tr("token %1 '%2' · expert %3\np = %4").arg(tok).arg(tokenText(tok)).arg(e).arg(
        paint::number(shownProbability(tok, e), 4));
    const int slot = chosenSlot(tok, e);
    if (slot >= 0 && size_t(tok * r->topK + slot) < r->weights.size())
        s += QObject::tr("\nchosen, slot %1 of %2: the model sums this expert's output with weight %3")
                 .arg(slot + 1)
                 .arg(r->topK)
                 .arg(paint::number(r->weights[size_t(tok * r->topK + slot)], 4));
    else
        s += QObject::tr("\nnot chosen");
    if (tok >= m_src->routing.promptLength && m_src->routing.promptLength > 0)
        s += QObject::tr(" · generated token");
    return s;
}

FigureHit RouterFigure::hitAt(QPointF pos) const
{
    FigureHit h;
    if (m_geom.contains(pos))
        h.token = int(m_geom.colAt(pos));
    return h;
}

// ---- router overview -----------------------------------------------------------------

QString RouterOverviewFigure::title() const
{
    return QStringLiteral("%1 · all MoE layers · %2").arg(m_model->meta().modelName, quantity());
}

void RouterOverviewFigure::paint(QPainter& p, const QRectF& r, const Theme& t, const ImageSource&)
{
    m_cells.clear();
    if (const QString why = unavailableReason(); !why.isEmpty()) {
        paintMessage(p, r, t, why);
        return;
    }
    p.fillRect(r, t.background);
    const QRectF rest = paint::drawTitle(p, r, t, title(),
                                         QObject::tr("each panel: experts (rows) × tokens (columns), p from 0 to 1 "
                                                     "(viridis); click a panel to open its layer"));
    const std::vector<int> layers = m_src->routing.moeLayers();
    const int n = int(layers.size());
    const int cols = int(std::ceil(std::sqrt(double(n) * rest.width() / std::max(1.0, rest.height()))));
    const int ncols = std::clamp(cols, 1, n), nrows = (n + ncols - 1) / ncols;
    const QFontMetricsF fm(t.font, p.device());
    const qreal barW = paint::colorbarWidth(p, t);
    const qreal cw = (rest.width() - barW) / ncols, ch = rest.height() / nrows;
    for (int i = 0; i < n; ++i) {
        const LayerRouting& R = *m_src->routing.routing(layers[size_t(i)]);
        const QRectF cell(rest.left() + cw * (i % ncols), rest.top() + ch * (i / ncols), cw, ch);
        const QRectF plot = cell.adjusted(fm.height() * 0.4, fm.height() * 1.3, -fm.height() * 0.4, -fm.height() * 0.4);
        MatrixSpec m;
        m.rows = R.experts;
        m.cols = R.tokens();
        m.value = [&R](int64_t e, int64_t tok) { return R.probs[size_t(tok * R.experts + e)]; };
        m.scale = ValueScale{0.f, 1.f, false};
        const qreal dpr = p.device() ? p.device()->devicePixelRatioF() : 1.0;
        p.drawImage(plot, matrixImage(m, QSize(int(plot.width() * dpr), int(plot.height() * dpr)), t.background.rgba()));
        p.setPen(QPen(t.axis, 0));
        p.drawRect(plot);
        const BalanceReadout b = analysis::layerBalance(R);
        p.setPen(b.collapse() ? QColor(200, 80, 0) : t.text);
        p.drawText(QRectF(plot.left(), cell.top(), plot.width(), fm.height() * 1.2), Qt::AlignLeft | Qt::AlignVCenter,
                   fm.elidedText(QObject::tr("layer %1 · cv %2%3").arg(layers[size_t(i)]).arg(paint::number(b.cv))
                                     .arg(b.collapse() ? QObject::tr(" · ⚠ collapse") : QString()),
                                 Qt::ElideRight, plot.width()));
        if (layers[size_t(i)] == (m_sel ? m_sel->layer() : -1)) {
            p.setPen(QPen(t.highlight, 2));
            p.drawRect(plot.adjusted(-2, -2, 2, 2));
        }
        m_cells.emplace_back(layers[size_t(i)], plot);
    }
    const QRectF bar(rest.right() - barW + fm.height() * 0.3, rest.top() + fm.height() * 1.3, fm.height() * 0.9,
                     rest.height() - fm.height() * 2);
    paint::drawColorbar(p, bar, t, Colormap::Viridis, ValueScale{0.f, 1.f, false}, QObject::tr("router probability p"));
}

QString RouterOverviewFigure::csv() const
{
    QString out = QStringLiteral("layer,token,expert,p,chosen_slot\n");
    for (int l : m_src->routing.moeLayers()) {
        const LayerRouting& R = *m_src->routing.routing(l);
        for (int64_t tok = 0; tok < R.tokens(); ++tok)
            for (int64_t e = 0; e < R.experts; ++e) {
                int slot = 0;
                for (int64_t j = 0; j < R.topK; ++j)
                    if (R.topk[size_t(tok * R.topK + j)] == e)
                        slot = int(j) + 1;
                out += QStringLiteral("%1,%2,%3,%4,%5\n").arg(l).arg(tok).arg(e)
                           .arg(QString::number(R.probs[size_t(tok * R.experts + e)], 'g', 9))
                           .arg(slot);
            }
    }
    return out;
}

int RouterOverviewFigure::layerAt(QPointF pos) const
{
    for (const auto& [l, rect] : m_cells)
        if (rect.contains(pos))
            return l;
    return -1;
}

QString RouterOverviewFigure::toolTipAt(QPointF pos) const
{
    for (const auto& [l, rect] : m_cells)
        if (rect.contains(pos)) {
            const LayerRouting& R = *m_src->routing.routing(l);
            const int64_t e = std::clamp<int64_t>(int64_t((pos.y() - rect.top()) / rect.height() * R.experts), 0, R.experts - 1);
            const int64_t tok = std::clamp<int64_t>(int64_t((pos.x() - rect.left()) / rect.width() * R.tokens()), 0, R.tokens() - 1);
            return QObject::tr("layer %1 · token %2 '%3' · expert %4: p = %5 (click to open the layer)")
                .arg(l).arg(tok).arg(tokenText(tok)).arg(e).arg(paint::number(R.probs[size_t(tok * R.experts + e)], 4));
        }
    return {};
}

// ---- expert load ---------------------------------------------------------------------

ExpertLoadFigure::ExpertLoadFigure(const TraceModel* model, const Selection* sel, const MoeSource* src)
    : MoeFigureBase(model, sel, src)
    , m_scene(std::make_unique<QGraphicsScene>())
{
}

ExpertLoadFigure::~ExpertLoadFigure() = default;

QString ExpertLoadFigure::quantity() const
{
    return showsShares() ? QObject::tr("expert load: share of picks, this run and corpora")
                         : QObject::tr("expert load: picks per expert");
}

QString ExpertLoadFigure::unavailableReason() const
{
    if (!m_src->corpora.empty() && m_src->routing.routing(layer()) == nullptr) {
        for (const auto& c : m_src->corpora)
            if (c.route.layers().count(layer()))
                return {};
    }
    return MoeFigureBase::unavailableReason();
}

std::vector<ExpertLoadFigure::Bars> ExpertLoadFigure::bars() const
{
    std::vector<Bars> out;
    const LayerRouting* r = routing();
    auto shares = [](const std::vector<int64_t>& c) {
        double s = 0;
        for (int64_t v : c)
            s += double(v);
        std::vector<double> v(c.size());
        for (size_t i = 0; i < c.size(); ++i)
            v[i] = s > 0 ? double(c[i]) / s : 0.0;
        return v;
    };
    auto asDouble = [](const std::vector<int64_t>& c) { return std::vector<double>(c.begin(), c.end()); };
    if (r) {
        const int64_t T = r->tokens(), P = std::clamp<int64_t>(m_src->routing.promptLength, 0, T);
        if (showsShares()) {
            out.push_back({QObject::tr("this run"), shares(analysis::expertCounts(*r))});
        } else if (P > 0 && P < T) {
            out.push_back({QObject::tr("prompt tokens"), asDouble(analysis::expertCounts(*r, 0, P))});
            out.push_back({QObject::tr("generated tokens"), asDouble(analysis::expertCounts(*r, P, T))});
        } else {
            out.push_back({QObject::tr("this prompt"), asDouble(analysis::expertCounts(*r))});
        }
    }
    for (const auto& c : m_src->corpora) {
        auto it = c.route.layers().find(layer());
        if (it != c.route.layers().end())
            out.push_back({c.name + (c.complete ? QString() : QObject::tr(" (partial)")), shares(it->second.counts)});
    }
    return out;
}

double ExpertLoadFigure::uniformLevel() const
{
    const auto b = bars();
    if (b.empty() || b.front().values.empty())
        return 0;
    if (showsShares())
        return 1.0 / double(b.front().values.size());
    double s = 0;
    for (const auto& set : b)
        for (double v : set.values)
            s += v;
    // the uniform share of all picks shown (prompt + generated together)
    return s / double(b.front().values.size()) / (b.size() == 2 ? 2.0 : 1.0);
}

void ExpertLoadFigure::paint(QPainter& p, const QRectF& r, const Theme& t, const ImageSource&)
{
    if (const QString why = unavailableReason(); !why.isEmpty()) {
        paintMessage(p, r, t, why);
        return;
    }
    p.fillRect(r, t.background);
    const std::vector<Bars> sets = bars();
    const LayerRouting* R = routing();
    BalanceReadout b;
    if (R)
        b = analysis::layerBalance(*R);
    else if (!m_src->corpora.empty())
        b = m_src->corpora.front().route.balance(layer());
    QRectF rest = paint::drawTitle(p, r, t, title(),
                                   (R ? QObject::tr("this run: ") : m_src->corpora.front().name + QStringLiteral(": ")) +
                                       balanceLine(b));
    QString warn = QString::fromStdString(b.warning());
    for (const auto& c : m_src->corpora) {
        const std::string w = c.route.balance(layer()).warning();
        if (!w.empty())
            warn += (warn.isEmpty() ? QString() : QStringLiteral(" · ")) + c.name + QStringLiteral(": ") +
                    QString::fromStdString(w);
    }
    rest = paintWarning(p, rest, t, warn);

    // rebuilt every paint: a few bars, cheap next to a redraw
    m_scene->clear();
    m_chart = new QChart;
    m_chart->setAnimationOptions(QChart::NoAnimation);
    m_chart->setBackgroundBrush(t.background);
    m_chart->setMargins(QMargins(2, 2, 2, 2));
    m_chart->legend()->setAlignment(Qt::AlignTop);
    m_chart->legend()->setLabelColor(t.text);
    m_chart->legend()->setFont(t.font);
    auto* series = new QBarSeries;
    const int64_t X = sets.empty() ? 0 : int64_t(sets.front().values.size());
    int si = 0;
    for (const auto& s : sets) {
        auto* set = new QBarSet(s.name);
        for (double v : s.values)
            *set << v;
        // one run: expert colours; several sets: one colour per set
        QColor c = sets.size() == 1 ? expertColor(0) : QColor::fromHsv((200 + si * 140) % 360, 150, 200);
        set->setColor(c);
        set->setBorderColor(c.darker(130));
        series->append(set);
        ++si;
    }
    m_chart->addSeries(series);
    auto* uniform = new QLineSeries;
    uniform->setName(showsShares() ? QObject::tr("uniform share 1/X") : QObject::tr("uniform load"));
    const double u = uniformLevel();
    uniform->append(-0.5, u);
    uniform->append(double(X) - 0.5, u);
    uniform->setPen(QPen(t.text, 2, Qt::DashLine));
    m_chart->addSeries(uniform);
    auto* ax = new QBarCategoryAxis;
    QStringList cats;
    for (int64_t e = 0; e < X; ++e)
        cats << QStringLiteral("E%1").arg(e);
    ax->append(cats);
    ax->setTitleText(QObject::tr("expert"));
    auto* ay = new QValueAxis;
    double mx = u * 2.2;
    for (const auto& s : sets)
        for (double v : s.values)
            mx = std::max(mx, v * 1.1);
    ay->setRange(0, std::max(mx, 1e-9));
    ay->applyNiceNumbers();
    ay->setTitleText(showsShares() ? QObject::tr("share of picks") : QObject::tr("picks (token, slot)"));
    ay->setLabelFormat(showsShares() ? QStringLiteral("%.2f") : QStringLiteral("%.0f"));
    for (QAbstractAxis* a : {static_cast<QAbstractAxis*>(ax), static_cast<QAbstractAxis*>(ay)}) {
        a->setLabelsColor(t.text);
        a->setTitleBrush(t.text);
        a->setLabelsFont(t.font);
        a->setTitleFont(t.font);
        a->setLinePenColor(t.axis);
        a->setGridLineColor(t.paper ? QColor(225, 225, 225) : t.axis);
    }
    m_chart->addAxis(ax, Qt::AlignBottom);
    m_chart->addAxis(ay, Qt::AlignLeft);
    series->attachAxis(ax);
    series->attachAxis(ay);
    // the line over categories: a hidden value axis spanning the same [-0.5, X-0.5]
    auto* axLine = new QValueAxis;
    axLine->setRange(-0.5, double(X) - 0.5);
    axLine->setVisible(false);
    m_chart->addAxis(axLine, Qt::AlignBottom);
    uniform->attachAxis(axLine);
    uniform->attachAxis(ay);
    m_scene->addItem(m_chart);
    const QFontMetricsF fm(t.font, p.device());
    // the top tokens per expert of each corpus, one line per corpus under the chart
    if (!m_src->corpora.empty()) {
        const qreal lineH = fm.height() * 1.15;
        QRectF lines(rest.left() + fm.height() * 0.4, rest.bottom() - lineH * qreal(m_src->corpora.size()),
                     rest.width() - fm.height() * 0.8, lineH * qreal(m_src->corpora.size()));
        rest.setBottom(lines.top() - fm.height() * 0.2);
        p.setFont(t.font);
        for (size_t i = 0; i < m_src->corpora.size(); ++i) {
            const CorpusRoute& c = m_src->corpora[i];
            QStringList parts;
            for (int64_t e = 0; e < X; ++e) {
                QStringList toks;
                for (const auto& [id, n] : c.route.topTokens(layer(), e, 4))
                    toks << QStringLiteral("'%1'").arg(m_src->tokenText ? visibleTokenText(m_src->tokenText(id))
                                                                      : QStringLiteral("#%1").arg(id));
                parts << QStringLiteral("E%1 %2").arg(e).arg(toks.join(' '));
            }
            p.setPen(t.text);
            p.drawText(QRectF(lines.left(), lines.top() + lineH * qreal(i), lines.width(), lineH),
                       Qt::AlignLeft | Qt::AlignVCenter,
                       fm.elidedText(QObject::tr("%1, top tokens: %2").arg(c.name, parts.join(QStringLiteral(" · "))),
                                     Qt::ElideRight, lines.width()));
        }
    }
    const qreal scale = std::max<qreal>(0.1, fm.height() / QFontMetricsF(t.font).height());
    const QSizeF sceneSize(rest.width() / scale, rest.height() / scale);
    m_chart->setGeometry(QRectF(QPointF(0, 0), sceneSize));
    m_scene->setSceneRect(QRectF(QPointF(0, 0), sceneSize));
    m_area = rest;
    m_scene->render(&p, rest, QRectF(QPointF(0, 0), sceneSize));
}

QString ExpertLoadFigure::csv() const
{
    const auto sets = bars();
    QString out = QStringLiteral("expert");
    for (const auto& s : sets)
        out += ',' + csvName(s.name);
    out += QStringLiteral(",uniform\n");
    const size_t X = sets.empty() ? 0 : sets.front().values.size();
    const double u = uniformLevel();
    for (size_t e = 0; e < X; ++e) {
        out += QString::number(e);
        for (const auto& s : sets)
            out += ',' + QString::number(s.values[e], 'g', 9);
        out += ',' + QString::number(u, 'g', 9) + '\n';
    }
    return out;
}

QString ExpertLoadFigure::toolTipAt(QPointF pos) const
{
    if (!m_chart || !m_area.contains(pos))
        return {};
    const qreal scale = m_area.width() / std::max<qreal>(1, m_scene->sceneRect().width());
    const QPointF scenePos = (pos - m_area.topLeft()) / scale;
    const QRectF plot = m_chart->plotArea();
    if (!plot.contains(scenePos))
        return {};
    const auto sets = bars();
    const size_t X = sets.empty() ? 0 : sets.front().values.size();
    if (X == 0)
        return {};
    const size_t e = std::min(X - 1, size_t((scenePos.x() - plot.left()) / plot.width() * double(X)));
    QString s = QObject::tr("expert %1").arg(e);
    for (const auto& set : sets)
        s += QStringLiteral("\n%1: %2").arg(set.name, paint::number(set.values[e], 4));
    for (const auto& c : m_src->corpora) {
        QStringList toks;
        for (const auto& [id, n] : c.route.topTokens(layer(), int64_t(e), 8))
            toks << QStringLiteral("'%1'×%2").arg(m_src->tokenText ? visibleTokenText(m_src->tokenText(id))
                                                                   : QStringLiteral("#%1").arg(id))
                        .arg(n);
        if (!toks.isEmpty())
            s += QObject::tr("\n%1 top tokens: %2").arg(c.name, toks.join(' '));
    }
    return s;
}

// ---- expert path ---------------------------------------------------------------------

QString ExpertPathFigure::title() const
{
    return QStringLiteral("%1 · %2").arg(m_model->meta().modelName, quantity());
}

void ExpertPathFigure::paint(QPainter& p, const QRectF& r, const Theme& t, const ImageSource&)
{
    if (const QString why = unavailableReason(); !why.isEmpty()) {
        m_layers.clear();
        paintMessage(p, r, t, why);
        return;
    }
    p.fillRect(r, t.background);
    m_layers = m_src->routing.moeLayers();
    m_tokens = 0;
    for (int l : m_layers)
        m_tokens = std::max(m_tokens, m_src->routing.routing(l)->tokens());
    int sel = layer(); // the strip: the selected (or --layer) layer, the first MoE layer when that has none
    if (!m_src->routing.routing(sel))
        sel = m_layers.front();
    const int64_t X = m_src->routing.routing(m_layers.front())->experts;
    const QRectF rest = paint::drawTitle(
        p, r, t, title(),
        QObject::tr("colour = top-1 expert (%1); top strip: layer %2, token text where it fits; double-click a row to open its layer")
            .arg(X <= kQualitativeExperts ? QObject::tr("qualitative palette") : QObject::tr("ids printed beyond 12"))
            .arg(sel));
    const QFontMetricsF fm(t.font, p.device());
    const qreal leftW = fm.horizontalAdvance(QStringLiteral("layer 000")) + fm.height() * 0.6;
    const qreal legendH = fm.height() * 1.6;
    const qreal axisH = tokenAxisHeight(p, t);
    const qreal stripH = fm.height() * 2.2;
    const QRectF legend(rest.left() + leftW, rest.top(), rest.width() - leftW - fm.height(), legendH);
    m_strip = QRectF(rest.left() + leftW, legend.bottom() + fm.height() * 1.2, legend.width(), stripH);
    m_grid = QRectF(m_strip.left(), m_strip.bottom() + fm.height() * 0.8, m_strip.width(),
                    std::max<qreal>(fm.height(), rest.bottom() - axisH - m_strip.bottom() - fm.height() * 0.8));
    // legend
    qreal x = legend.left();
    p.setFont(t.font);
    for (int64_t e = 0; e < X && x < legend.right(); ++e) {
        const QRectF sw(x, legend.top() + fm.height() * 0.3, fm.height(), fm.height());
        p.fillRect(sw, expertColor(int(e)));
        p.setPen(t.text);
        const QString label = QStringLiteral("E%1").arg(e);
        p.drawText(QRectF(sw.right() + 3, sw.top(), fm.horizontalAdvance(label) + 4, fm.height()),
                   Qt::AlignLeft | Qt::AlignVCenter, label);
        x = sw.right() + fm.horizontalAdvance(label) + fm.height();
    }
    const qreal colW = m_strip.width() / qreal(std::max<int64_t>(m_tokens, 1));
    auto drawCell = [&](const QRectF& c, int32_t e, const QString& text) {
        const QColor col = expertColor(e);
        p.fillRect(c, col);
        if (c.width() >= fm.horizontalAdvance(QStringLiteral("00")) && c.height() >= fm.height() * 0.9) {
            p.setPen(textOn(col));
            p.drawText(c, Qt::AlignCenter, fm.elidedText(text, Qt::ElideRight, c.width()));
        }
    };
    // token strip: the selected layer, token text on its top-1 colour
    const LayerRouting& S = *m_src->routing.routing(sel);
    p.setPen(t.text);
    p.drawText(QRectF(rest.left(), m_strip.top(), leftW - fm.height() * 0.3, m_strip.height()),
               Qt::AlignRight | Qt::AlignVCenter, QObject::tr("layer %1").arg(sel));
    for (int64_t tok = 0; tok < S.tokens(); ++tok)
        drawCell(QRectF(m_strip.left() + qreal(tok) * colW, m_strip.top(), colW - (colW > 6 ? 1 : 0), m_strip.height()),
                 S.top1(tok), colW > fm.height() * 2.5 ? tokenText(tok) : QString::number(S.top1(tok)));
    // grid
    const qreal rowH = m_grid.height() / qreal(m_layers.size());
    for (size_t i = 0; i < m_layers.size(); ++i) {
        const LayerRouting& R = *m_src->routing.routing(m_layers[i]);
        const qreal y = m_grid.top() + qreal(i) * rowH;
        p.setPen(m_layers[i] == sel ? t.highlight : t.text);
        p.drawText(QRectF(rest.left(), y, leftW - fm.height() * 0.3, rowH), Qt::AlignRight | Qt::AlignVCenter,
                   QObject::tr("layer %1").arg(m_layers[i]));
        for (int64_t tok = 0; tok < R.tokens(); ++tok) {
            const int32_t e = R.top1(tok);
            drawCell(QRectF(m_grid.left() + qreal(tok) * colW, y, std::max<qreal>(colW - (colW > 6 ? 1 : 0), 0.5),
                            rowH - (rowH > 6 ? 1 : 0)),
                     e, e >= kQualitativeExperts || colW > fm.height() * 1.2 ? QString::number(e) : QString());
        }
    }
    drawPromptBoundary(p, QRectF(m_strip.left(), m_strip.top(), m_strip.width(), m_grid.bottom() - m_strip.top()), t,
                       m_src->routing.promptLength, m_tokens);
    const int cursor = token();
    if (cursor >= 0 && cursor < m_tokens) {
        p.setPen(QPen(t.cursor, 2));
        p.setBrush(Qt::NoBrush);
        p.drawRect(QRectF(m_grid.left() + qreal(cursor) * colW, m_strip.top(), colW, m_grid.bottom() - m_strip.top()));
    }
    drawTokenAxis(p, QRectF(m_grid.left(), m_grid.bottom(), m_grid.width(), axisH), t, *m_model, 0, m_tokens, cursor);
}

QString ExpertPathFigure::csv() const
{
    QString out = QStringLiteral("token,text");
    const auto layers = m_src->routing.moeLayers();
    for (int l : layers)
        out += QStringLiteral(",layer%1").arg(l);
    out += '\n';
    const int64_t T = m_src->routing.tokens();
    for (int64_t tok = 0; tok < T; ++tok) {
        out += QStringLiteral("%1,%2").arg(tok).arg(csvField(m_model->texts().value(int(tok))));
        for (int l : layers) {
            const LayerRouting& R = *m_src->routing.routing(l);
            out += ',' + (tok < R.tokens() ? QString::number(R.top1(tok)) : QString());
        }
        out += '\n';
    }
    return out;
}

int ExpertPathFigure::layerAt(QPointF pos) const
{
    if (!m_grid.contains(pos) || m_layers.empty())
        return -1;
    const size_t i = std::min(m_layers.size() - 1, size_t((pos.y() - m_grid.top()) / m_grid.height() * qreal(m_layers.size())));
    return m_layers[i];
}

FigureHit ExpertPathFigure::hitAt(QPointF pos) const
{
    FigureHit h;
    if ((m_grid.contains(pos) || m_strip.contains(pos)) && m_tokens > 0)
        h.token = int(std::clamp<int64_t>(int64_t((pos.x() - m_grid.left()) / m_grid.width() * m_tokens), 0, m_tokens - 1));
    return h;
}

QString ExpertPathFigure::toolTipAt(QPointF pos) const
{
    const FigureHit h = hitAt(pos);
    if (h.token < 0)
        return {};
    int l = m_strip.contains(pos) ? layer() : layerAt(pos);
    if (m_strip.contains(pos) && !m_src->routing.routing(l) && !m_layers.empty())
        l = m_layers.front();
    const LayerRouting* R = m_src->routing.routing(l);
    if (!R || h.token >= R->tokens())
        return {};
    QString s = QObject::tr("layer %1 · token %2 '%3'\nexperts").arg(l).arg(h.token).arg(tokenText(h.token));
    for (int64_t j = 0; j < R->topK; ++j)
        s += QStringLiteral(" E%1 (w %2)").arg(R->topk[size_t(h.token * R->topK + j)])
                 .arg(size_t(h.token * R->topK + j) < R->weights.size()
                          ? paint::number(R->weights[size_t(h.token * R->topK + j)], 3)
                          : QStringLiteral("—"));
    return s;
}

// ---- co-activation -------------------------------------------------------------------

QString CoactivationFigure::unavailableReason() const
{
    const QString r = MoeFigureBase::unavailableReason();
    if (!r.isEmpty())
        return r;
    if (routing()->topK < 2)
        return QObject::tr("Layer %1 routes each token to one expert (top-1): no pairs to count.").arg(layer());
    return {};
}

void CoactivationFigure::paint(QPainter& p, const QRectF& r, const Theme& t, const ImageSource&)
{
    if (const QString why = unavailableReason(); !why.isEmpty()) {
        m_geom = {};
        paintMessage(p, r, t, why);
        return;
    }
    p.fillRect(r, t.background);
    const LayerRouting& R = *routing();
    const auto m = analysis::coactivation(R);
    const int64_t X = R.experts;
    const QRectF rest = paint::drawTitle(p, r, t, title(),
                                         QObject::tr("tokens (of %1) whose top-%2 holds both experts; diagonal left blank")
                                             .arg(R.tokens())
                                             .arg(R.topK));
    MatrixSpec s;
    s.rows = s.cols = X;
    s.value = [&m, X](int64_t i, int64_t j) { return i == j ? kNaN : float(m[size_t(i * X + j)]); };
    s.map = Colormap::Magma;
    s.scale = autoScale(s, false);
    s.barLabel = QObject::tr("tokens choosing both");
    s.square = true;
    s.rowLabel = QObject::tr("expert");
    s.colLabel = QObject::tr("expert");
    s.rowName = [](int64_t e) { return QStringLiteral("E%1").arg(e); };
    s.colName = [](int64_t e) { return QStringLiteral("E%1").arg(e); };
    m_geom = paintMatrix(p, rest, t, s, m_model);
    const QFontMetricsF fm(t.font, p.device());
    const QRectF c0 = m_geom.cell(0, 0);
    if (c0.width() > fm.horizontalAdvance(QStringLiteral("0000")) && c0.height() > fm.height())
        for (int64_t i = 0; i < X; ++i)
            for (int64_t j = 0; j < X; ++j) {
                if (i == j)
                    continue;
                const double f = s.scale.normalise(float(m[size_t(i * X + j)]));
                p.setPen(f > 0.6 ? Qt::black : Qt::white);
                p.drawText(m_geom.cell(i, j), Qt::AlignCenter, QString::number(m[size_t(i * X + j)]));
            }
}

QString CoactivationFigure::csv() const
{
    const LayerRouting* R = routing();
    if (!R)
        return {};
    const auto m = analysis::coactivation(*R);
    QString out = QStringLiteral("expert");
    for (int64_t e = 0; e < R->experts; ++e)
        out += QStringLiteral(",E%1").arg(e);
    out += '\n';
    for (int64_t i = 0; i < R->experts; ++i) {
        out += QStringLiteral("E%1").arg(i);
        for (int64_t j = 0; j < R->experts; ++j)
            out += ',' + QString::number(m[size_t(i * R->experts + j)]);
        out += '\n';
    }
    return out;
}

QString CoactivationFigure::toolTipAt(QPointF pos) const
{
    const LayerRouting* R = routing();
    if (!R || !m_geom.contains(pos))
        return {};
    const int64_t i = m_geom.rowAt(pos), j = m_geom.colAt(pos);
    if (i == j)
        return QObject::tr("expert %1 with itself: not a pair").arg(i);
    const auto m = analysis::coactivation(*R);
    return QObject::tr("experts %1 and %2 were chosen together for %3 tokens").arg(i).arg(j).arg(m[size_t(i * R->experts + j)]);
}

} // namespace archlens::ui
