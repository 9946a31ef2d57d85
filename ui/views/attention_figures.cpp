#include "views/attention_figures.h"

#include <QFontMetricsF>
#include <QPainter>

#include <cmath>

#include "render/hidden_attention_worker.h"
#include "views/expert_palette.h"
#include "views/heatmap_figures.h"

namespace archlens::ui {

using analysis::LayerAttention;

namespace {
QString layerList(const std::vector<int>& v)
{
    QStringList l;
    for (int i : v)
        l << QString::number(i);
    return l.isEmpty() ? QObject::tr("none") : l.join(',');
}
QString basicReason(const TraceModel* m, const MoeSource* s)
{
    if (m->tokenCount() == 0 && s->routing.tokens() == 0)
        return QObject::tr("Run a prompt to see this view.");
    return {};
}
} // namespace

// ---- attention, one head ---------------------------------------------------------------

QString AttentionFigure::quantity() const { return QObject::tr("attention weights, head %1 (query × key)").arg(m_head); }

QString AttentionFigure::unavailableReason() const
{
    if (QString r = basicReason(m_model, m_src); !r.isEmpty())
        return r;
    const auto layers = m_src->routing.attentionLayers();
    const LayerAttention* a = m_src->routing.attention(layer());
    if (!a)
        return layers.empty()
                   ? QObject::tr("No attention weights were recorded: this model has no attention layers, or the run "
                                 "did not ask for attn.weights.")
                   : QObject::tr("Layer %1 is not an attention layer (attention layers: %2).").arg(layer()).arg(layerList(layers));
    if (m_head < 0 || m_head >= a->heads)
        return QObject::tr("Head %1 does not exist: layer %2 has heads 0..%3.").arg(m_head).arg(layer()).arg(a->heads - 1);
    return {};
}

void AttentionFigure::paint(QPainter& p, const QRectF& r, const Theme& t, const ImageSource&)
{
    if (const QString why = unavailableReason(); !why.isEmpty()) {
        m_geom = {};
        paintMessage(p, r, t, why);
        return;
    }
    p.fillRect(r, t.background);
    const LayerAttention& A = *m_src->routing.attention(layer());
    QRectF rest = paint::drawTitle(p, r, t, title(),
                                   QObject::tr("row t: how query token t spreads its attention over keys s ≤ t "
                                               "(each row sums to 1); %1 heads")
                                       .arg(A.heads));
    if (m_src->routing.attentionCap > 0)
        rest = paintWarning(p, rest, t,
                            QObject::tr("attention weights kept for the first %1 tokens only (H·T² floats per layer: "
                                        "memory cap)")
                                .arg(m_src->routing.attentionCap));
    MatrixSpec m;
    m.rows = m.cols = A.tokens;
    const int h = m_head;
    m.value = [&A, h](int64_t q, int64_t s) { return s > q ? std::numeric_limits<float>::quiet_NaN() : A.at(h, q, s); };
    m.map = Colormap::Viridis;
    m.scale = ValueScale{0.f, 1.f, false};
    m.barLabel = QObject::tr("attention weight");
    m.square = true;
    m.rowLabel = QObject::tr("query token");
    m.rowName = [this](int64_t q) { return QStringLiteral("%1 %2").arg(q).arg(tokenText(q)); };
    m.colsAreTokens = true;
    m_geom = paintMatrix(p, rest, t, m, m_model, token());
    const int cur = token();
    if (cur >= 0 && cur < A.tokens) {
        const QRectF row = m_geom.cell(cur, 0);
        p.setPen(QPen(t.cursor, 1.5));
        p.setBrush(Qt::NoBrush);
        p.drawRect(QRectF(m_geom.plot.left(), row.top(), m_geom.plot.width(), row.height()));
    }
}

QString AttentionFigure::csv() const
{
    const LayerAttention* a = m_src->routing.attention(layer());
    if (!a)
        return {};
    QString out = QStringLiteral("query,text");
    for (int64_t s = 0; s < a->tokens; ++s)
        out += QStringLiteral(",k%1").arg(s);
    out += '\n';
    for (int64_t q = 0; q < a->tokens; ++q) {
        out += QStringLiteral("%1,%2").arg(q).arg(csvField(m_model->texts().value(int(q))));
        for (int64_t s = 0; s < a->tokens; ++s)
            out += ',' + QString::number(a->at(m_head, q, s), 'g', 9);
        out += '\n';
    }
    return out;
}

QString AttentionFigure::toolTipAt(QPointF pos) const
{
    const LayerAttention* a = m_src->routing.attention(layer());
    if (!a || !m_geom.contains(pos))
        return {};
    const int64_t q = m_geom.rowAt(pos), s = m_geom.colAt(pos);
    if (s > q)
        return QObject::tr("causal: token %1 cannot see the later token %2").arg(q).arg(s);
    return QObject::tr("query %1 '%2' → key %3 '%4'\nweight %5 (head %6)")
        .arg(q).arg(tokenText(q)).arg(s).arg(tokenText(s)).arg(paint::number(a->at(m_head, q, s), 4)).arg(m_head);
}

FigureHit AttentionFigure::hitAt(QPointF pos) const
{
    FigureHit h;
    if (m_geom.contains(pos))
        h.token = int(m_geom.rowAt(pos));
    return h;
}

// ---- attention overview -----------------------------------------------------------------

QString AttentionOverviewFigure::title() const
{
    return QStringLiteral("%1 · %2").arg(m_model->meta().modelName, quantity());
}

QString AttentionOverviewFigure::unavailableReason() const
{
    if (QString r = basicReason(m_model, m_src); !r.isEmpty())
        return r;
    if (m_src->routing.attentionLayers().empty())
        return QObject::tr("No attention weights were recorded: this model has no attention layers.");
    return {};
}

void AttentionOverviewFigure::paint(QPainter& p, const QRectF& r, const Theme& t, const ImageSource&)
{
    m_cells.clear();
    if (const QString why = unavailableReason(); !why.isEmpty()) {
        paintMessage(p, r, t, why);
        return;
    }
    p.fillRect(r, t.background);
    QRectF rest = paint::drawTitle(p, r, t, title(),
                                   QObject::tr("rows: attention layers, columns: heads; each panel query × key, "
                                               "weights 0 to 1 (viridis); click a panel to open it"));
    if (m_src->routing.attentionCap > 0)
        rest = paintWarning(p, rest, t,
                            QObject::tr("attention weights kept for the first %1 tokens only (memory cap)")
                                .arg(m_src->routing.attentionCap));
    const auto layers = m_src->routing.attentionLayers();
    int64_t H = 0;
    for (int l : layers)
        H = std::max(H, m_src->routing.attention(l)->heads);
    const QFontMetricsF fm(t.font, p.device());
    const qreal leftW = fm.horizontalAdvance(QStringLiteral("layer 000")) + fm.height() * 0.5;
    const qreal barW = paint::colorbarWidth(p, t);
    const qreal headH = fm.height() * 1.3;
    const qreal cw = (rest.width() - leftW - barW) / qreal(H), ch = (rest.height() - headH) / qreal(layers.size());
    const qreal side = std::min(cw, ch);
    p.setFont(t.font);
    for (int64_t h = 0; h < H; ++h) {
        p.setPen(t.text);
        p.drawText(QRectF(rest.left() + leftW + qreal(h) * side, rest.top(), side, headH), Qt::AlignCenter,
                   QObject::tr("head %1").arg(h));
    }
    const qreal dpr = p.device() ? p.device()->devicePixelRatioF() : 1.0;
    for (size_t i = 0; i < layers.size(); ++i) {
        const LayerAttention& A = *m_src->routing.attention(layers[i]);
        const qreal y = rest.top() + headH + qreal(i) * side;
        p.setPen(layers[i] == (m_sel ? m_sel->layer() : -1) ? t.highlight : t.text);
        p.drawText(QRectF(rest.left(), y, leftW - fm.height() * 0.3, side), Qt::AlignRight | Qt::AlignVCenter,
                   QObject::tr("layer %1").arg(layers[i]));
        for (int64_t h = 0; h < A.heads; ++h) {
            const QRectF cell(rest.left() + leftW + qreal(h) * side + 2, y + 2, side - 4, side - 4);
            MatrixSpec m;
            m.rows = m.cols = A.tokens;
            m.value = [&A, h](int64_t q, int64_t s) {
                return s > q ? std::numeric_limits<float>::quiet_NaN() : A.at(h, q, s);
            };
            m.scale = ValueScale{0.f, 1.f, false};
            p.drawImage(cell, matrixImage(m, QSize(int(cell.width() * dpr), int(cell.height() * dpr)), t.background.rgba()));
            p.setPen(QPen(t.axis, 0));
            p.setBrush(Qt::NoBrush);
            p.drawRect(cell);
            m_cells.push_back({layers[i], int(h), cell});
        }
    }
    const QRectF bar(rest.right() - barW + fm.height() * 0.3, rest.top() + headH, fm.height() * 0.9,
                     std::min(rest.height() - headH, side * qreal(layers.size())));
    paint::drawColorbar(p, bar, t, Colormap::Viridis, ValueScale{0.f, 1.f, false}, QObject::tr("attention weight"));
}

QString AttentionOverviewFigure::csv() const
{
    QString out = QStringLiteral("layer,head,query,key,weight\n");
    for (int l : m_src->routing.attentionLayers()) {
        const LayerAttention& A = *m_src->routing.attention(l);
        for (int64_t h = 0; h < A.heads; ++h)
            for (int64_t q = 0; q < A.tokens; ++q)
                for (int64_t s = 0; s <= q; ++s)
                    out += QStringLiteral("%1,%2,%3,%4,%5\n").arg(l).arg(h).arg(q).arg(s).arg(QString::number(A.at(h, q, s), 'g', 9));
    }
    return out;
}

int AttentionOverviewFigure::layerAt(QPointF pos) const
{
    for (const Cell& c : m_cells)
        if (c.rect.contains(pos))
            return c.layer;
    return -1;
}

QString AttentionOverviewFigure::toolTipAt(QPointF pos) const
{
    for (const Cell& c : m_cells)
        if (c.rect.contains(pos)) {
            const LayerAttention& A = *m_src->routing.attention(c.layer);
            const int64_t q = std::clamp<int64_t>(int64_t((pos.y() - c.rect.top()) / c.rect.height() * A.tokens), 0, A.tokens - 1);
            const int64_t s = std::clamp<int64_t>(int64_t((pos.x() - c.rect.left()) / c.rect.width() * A.tokens), 0, A.tokens - 1);
            return QObject::tr("layer %1 head %2: query %3 → key %4, weight %5")
                .arg(c.layer).arg(c.head).arg(q).arg(s).arg(s > q ? QStringLiteral("—") : paint::number(A.at(c.head, q, s), 4));
        }
    return {};
}

// ---- hidden attention -------------------------------------------------------------------

std::vector<int64_t> HiddenAttentionFigure::shownChannels() const
{
    if (m_follow && m_sel)
        return {int64_t(m_sel->channel())};
    return m_channels;
}

QString HiddenAttentionFigure::quantity() const
{
    const auto cs = shownChannels();
    if (cs.empty())
        return QObject::tr("Mamba hidden attention α, mean over channels");
    if (cs.size() == 1)
        return QObject::tr("Mamba hidden attention α, channel %1").arg(cs.front());
    return QObject::tr("Mamba hidden attention α, mean over %1 channels").arg(cs.size());
}

QString HiddenAttentionFigure::unavailableReason() const
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
        return QObject::tr("Layer %1 is an %2 layer: hidden attention is a Mamba layer's (Mamba layers: %3). "
                           "Use the attention view for attention layers.")
            .arg(l)
            .arg(m_model->meta().layerMixer.value(l))
            .arg(mamba.isEmpty() ? QObject::tr("none") : mamba.join(','));
    }
    if (!m_model->series(l, Probe::SsmDelta) || !m_model->series(l, Probe::SsmB) || !m_model->series(l, Probe::SsmC) ||
        m_model->A(l).empty())
        return QObject::tr("Layer %1 recorded no Δ, B, C and A: hidden attention needs them.").arg(l);
    for (int64_t c : shownChannels())
        if (c < 0 || c >= m_model->dInner())
            return QObject::tr("Channel %1 does not exist (the layer has 0..%2).").arg(c).arg(m_model->dInner() - 1);
    return {};
}

int64_t HiddenAttentionFigure::effectiveCap() const
{
    int64_t cap = m_src->hiddenAttentionCap;
    const auto cs = shownChannels();
    if (cs.size() != 1 && m_src->hiddenAttentionWork > 0) {
        const double E = double(cs.empty() ? m_model->dInner() : int64_t(cs.size()));
        const double N = double(std::max<int64_t>(m_model->dState(), 1));
        cap = std::min(cap, std::max<int64_t>(16, int64_t(std::sqrt(2.0 * m_src->hiddenAttentionWork / (E * N)))));
    }
    return cap;
}

analysis::AttentionWindow HiddenAttentionFigure::window() const
{
    return analysis::hiddenAttentionWindow(token(), effectiveCap());
}

HiddenAttentionFigure::~HiddenAttentionFigure() { HiddenAttentionWorker::instance().forget(this); }

bool HiddenAttentionFigure::computing() const { return !m_pendingKey.isEmpty(); }

const std::vector<double>& HiddenAttentionFigure::shown() const
{
    const int l = layer();
    const auto w = window();
    const auto cs = shownChannels();
    QByteArray key;
    auto add = [&key](const auto& v) { key.append(reinterpret_cast<const char*>(&v), sizeof(v)); };
    add(l), add(w.begin), add(w.end), add(m_model->version());
    for (int64_t c : cs)
        add(c);
    if (key == m_cacheKey)
        return m_cache;
    const bool async = m_src->hiddenAttentionAsync;
    if (async && key == m_pendingKey) {
        if (auto done = HiddenAttentionWorker::instance().take(this, key)) {
            m_cache = std::move(*done);
            m_cacheKey = key;
            m_cacheWindow = m_pendingWindow;
            m_pendingKey.clear();
        }
        return m_cache; // until then the last result stays up (its own window: shownWindow())
    }
    // another layer or channel: the last result would mislead, so "computing" shows instead;
    // the same one with more tokens (generation, scrubbing) stays up until the new one is in
    QByteArray identity;
    identity.append(reinterpret_cast<const char*>(&l), sizeof(l));
    for (int64_t ch : cs)
        identity.append(reinterpret_cast<const char*>(&ch), sizeof(ch));
    if (!async || identity != m_cacheIdentity) {
        m_cache.clear();
        m_cacheKey.clear();
        m_cacheIdentity = identity;
    }
    m_pendingKey.clear();
    const ProbeSeries *d = m_model->series(l, Probe::SsmDelta), *b = m_model->series(l, Probe::SsmB),
                      *c = m_model->series(l, Probe::SsmC);
    const int64_t E = d->width(), N = b->width(), W = w.size();
    // contiguous copies of the window's rows (the series may hold them in several frames)
    HiddenAttentionJob job;
    job.key = key;
    job.W = W, job.E = E, job.N = N;
    job.delta.resize(size_t(W * E)), job.B.resize(size_t(W * N)), job.C.resize(size_t(W * N));
    for (int64_t t = 0; t < W; ++t) {
        const float *rd = d->row(w.begin + t), *rb = b->row(w.begin + t), *rc = c->row(w.begin + t);
        if (!rd || !rb || !rc) {
            m_cache.clear(); // dropped by the memory cap: nothing to compute
            m_cacheKey = key;
            m_cacheWindow = w;
            return m_cache;
        }
        std::copy(rd, rd + E, job.delta.begin() + t * E);
        std::copy(rb, rb + N, job.B.begin() + t * N);
        std::copy(rc, rc + N, job.C.begin() + t * N);
    }
    job.A = m_model->A(l);
    job.channels = cs;
    job.single = cs.size() == 1;
    if (async) { // the GUI: computed on the worker, picked up by a later paint (repaintAfterMs)
        m_pendingKey = key;
        m_pendingWindow = w;
        HiddenAttentionWorker::instance().submit(this, std::move(job));
        return m_cache;
    }
    analysis::ScanInputs in{W, E, N, job.delta.data(), job.B.data(), job.C.data(), job.A.data()};
    const analysis::AttentionWindow local{0, W, false};
    m_cache = job.single ? analysis::hiddenAttention(in, cs.front(), local) : analysis::hiddenAttentionMean(in, cs, local);
    analysis::normaliseRowsByAbsSum(m_cache, W);
    m_cacheKey = key;
    m_cacheWindow = w;
    return m_cache;
}

analysis::AttentionWindow HiddenAttentionFigure::shownWindow() const
{
    shown();
    return m_cacheWindow;
}

void HiddenAttentionFigure::paint(QPainter& p, const QRectF& r, const Theme& t, const ImageSource&)
{
    if (const QString why = unavailableReason(); !why.isEmpty()) {
        m_geom = {};
        paintMessage(p, r, t, why);
        return;
    }
    p.fillRect(r, t.background);
    const auto& a = shown();
    const auto w = shownWindow();
    QString sub = QObject::tr("α[t,s]: weight of input x_s in output y_t (no D skip, no gate); rows normalised by Σ_s|α|");
    QRectF rest = paint::drawTitle(p, r, t, title(), sub);
    if (w.capped)
        rest = paintWarning(p, rest, t,
                            QObject::tr("capped: tokens %1..%2 of %3 shown (at most %4; earlier sources left out)%5")
                                .arg(w.begin).arg(w.end - 1).arg(m_model->tokenCount()).arg(effectiveCap())
                                .arg(effectiveCap() < m_src->hiddenAttentionCap
                                         ? QObject::tr("; the mean over channels costs T²·E·N, one channel shows more")
                                         : QString()));
    if (a.empty() || int64_t(a.size()) != w.size() * w.size()) {
        paintMessage(p, rest, t,
                     computing() ? QObject::tr("Computing hidden attention for tokens %1..%2…").arg(window().begin).arg(window().end - 1)
                                 : QObject::tr("Some of these tokens' Δ, B or C were dropped by the memory cap."));
        return;
    }
    const int64_t W = w.size();
    MatrixSpec m;
    m.rows = m.cols = W;
    m.value = [&a, W](int64_t q, int64_t s) {
        return s > q ? std::numeric_limits<float>::quiet_NaN() : float(a[size_t(q * W + s)]);
    };
    m.map = Colormap::Diverging;
    m.scale = autoScale(m, true);
    m.barLabel = QObject::tr("α / Σ|α| of the row");
    m.square = true;
    m.rowLabel = QObject::tr("output token t");
    m.rowName = [this, w](int64_t q) { return QStringLiteral("%1 %2").arg(q + w.begin).arg(tokenText(q + w.begin)); };
    m.colsAreTokens = true;
    m.colOffset = w.begin;
    m.rowOffset = w.begin;
    m_geom = paintMatrix(p, rest, t, m, m_model, token());
}

QString HiddenAttentionFigure::csv() const
{
    if (!unavailableReason().isEmpty())
        return {};
    const auto& a = shown();
    const auto w = shownWindow();
    const int64_t W = w.size();
    QString out = QStringLiteral("# %1; rows normalised by sum |alpha|\noutput_token,text").arg(quantity());
    for (int64_t s = 0; s < W; ++s)
        out += QStringLiteral(",s%1").arg(s + w.begin);
    out += '\n';
    for (int64_t q = 0; q < W && !a.empty(); ++q) {
        out += QStringLiteral("%1,%2").arg(q + w.begin).arg(csvField(m_model->texts().value(int(q + w.begin))));
        for (int64_t s = 0; s < W; ++s)
            out += ',' + (s > q ? QString() : QString::number(a[size_t(q * W + s)], 'g', 9));
        out += '\n';
    }
    return out;
}

QString HiddenAttentionFigure::toolTipAt(QPointF pos) const
{
    if (!m_geom.contains(pos))
        return {};
    const auto& a = shown();
    const auto w = shownWindow();
    const int64_t q = m_geom.rowAt(pos), s = m_geom.colAt(pos), W = w.size();
    if (a.empty() || s > q)
        return {};
    return QObject::tr("output %1 '%2' ← input %3 '%4'\nα / Σ|α| = %5")
        .arg(q + w.begin).arg(tokenText(q + w.begin)).arg(s + w.begin).arg(tokenText(s + w.begin))
        .arg(paint::number(a[size_t(q * W + s)], 4));
}

FigureHit HiddenAttentionFigure::hitAt(QPointF pos) const
{
    FigureHit h;
    if (m_geom.contains(pos))
        h.token = int(m_geom.rowAt(pos) + shownWindow().begin);
    return h;
}

std::unique_ptr<MoeFigureBase> makeAttentionSide(const TraceModel* model, const Selection* sel, const MoeSource* src,
                                                 int layer, int head, int* chosen)
{
    const int L = model->layerCount();
    auto first = [model, L](bool mamba) {
        for (int l = 0; l < L; ++l)
            if (model->isMambaLayer(l) == mamba)
                return l;
        return -1;
    };
    const bool hasAttention = !src->routing.attentionLayers().empty() || first(false) >= 0;
    const bool valid = layer >= 0 && layer < L;
    std::unique_ptr<MoeFigureBase> fig;
    if (hasAttention && (!valid || !model->isMambaLayer(layer))) {
        if (!valid)
            layer = first(false);
        auto a = std::make_unique<AttentionFigure>(model, sel, src);
        a->setHead(head);
        fig = std::move(a);
    } else {
        if (!valid)
            layer = first(true);
        if (layer < 0)
            return nullptr;
        fig = std::make_unique<HiddenAttentionFigure>(model, sel, src);
    }
    layer = std::max(layer, 0);
    fig->setFixedLayer(layer);
    if (chosen)
        *chosen = layer;
    return fig;
}

// ---- layer map --------------------------------------------------------------------------

QString LayerMapFigure::title() const { return QStringLiteral("%1 · %2").arg(m_model->meta().modelName, quantity()); }

QString LayerMapFigure::mixer(int l) const
{
    const auto& v = m_src->routing.layerMixer;
    if (size_t(l) < v.size())
        return QString::fromStdString(v[size_t(l)]);
    return m_model->meta().layerMixer.value(l, QStringLiteral("mamba"));
}

QString LayerMapFigure::ffn(int l) const
{
    const auto& v = m_src->routing.layerFfn;
    if (size_t(l) < v.size())
        return QString::fromStdString(v[size_t(l)]);
    return m_src->routing.routing(l) ? QStringLiteral("moe") : QStringLiteral("none");
}

QString LayerMapFigure::unavailableReason() const
{
    if (m_model->tokenCount() == 0)
        return QObject::tr("Run a prompt to see this view.");
    return {};
}

std::vector<float> LayerMapFigure::rowValues(int l, QString* what) const
{
    std::vector<float> v(size_t(m_tokens), std::numeric_limits<float>::quiet_NaN());
    if (const LayerAttention* a = m_src->routing.attention(l)) {
        // mean attended distance Σ_s w[t,s]·(t−s), averaged over heads: how far back the layer looks
        *what = QObject::tr("mean attended distance (tokens back)");
        for (int64_t q = 0; q < std::min(m_tokens, a->tokens); ++q) {
            double d = 0;
            for (int64_t h = 0; h < a->heads; ++h)
                for (int64_t s = 0; s <= q; ++s)
                    d += double(a->at(h, q, s)) * double(q - s);
            v[size_t(q)] = float(d / double(std::max<int64_t>(a->heads, 1)));
        }
    } else if (const ProbeSeries* d = m_model->series(l, Probe::SsmDelta)) {
        *what = QObject::tr("mean Δ over channels");
        for (int64_t q = 0; q < std::min<int64_t>(m_tokens, d->count()); ++q)
            if (const float* row = d->row(q)) {
                double s = 0;
                for (int64_t c = 0; c < d->width(); ++c)
                    s += row[c];
                v[size_t(q)] = float(s / double(d->width()));
            }
    } else {
        *what = QObject::tr("not recorded");
    }
    return v;
}

void LayerMapFigure::paint(QPainter& p, const QRectF& r, const Theme& t, const ImageSource&)
{
    if (const QString why = unavailableReason(); !why.isEmpty()) {
        m_layers = 0;
        paintMessage(p, r, t, why);
        return;
    }
    p.fillRect(r, t.background);
    m_layers = m_model->layerCount();
    m_tokens = m_model->tokenCount();
    const QRectF rest = paint::drawTitle(
        p, r, t, title(),
        QObject::tr("per layer: mixer (Mamba: mean Δ; attention: mean attended distance; magma, each row its own range) "
                    "and, for MoE, the top-1 expert below; click a layer to open it"));
    const QFontMetricsF fm(t.font, p.device());
    const qreal labelW = fm.horizontalAdvance(QStringLiteral("00 attention · moe")) + fm.height() * 1.2;
    const qreal axisH = tokenAxisHeight(p, t);
    const qreal top = fm.height() * 1.1; // room for the "generated →" mark
    m_labels = QRectF(rest.left(), rest.top() + top, labelW, rest.height() - axisH - top);
    m_timeline = QRectF(rest.left() + labelW, rest.top() + top, rest.width() - labelW - fm.height(),
                        rest.height() - axisH - top);
    const qreal rowH = m_timeline.height() / qreal(std::max(m_layers, 1));
    const qreal colW = m_timeline.width() / qreal(std::max<int64_t>(m_tokens, 1));
    const QColor mambaC(0, 150, 136), attnC(239, 108, 0), moeC(123, 31, 162), mlpC(150, 150, 150);
    for (int l = 0; l < m_layers; ++l) {
        const qreal y = m_timeline.top() + qreal(l) * rowH;
        const QString mx = mixer(l), ff = ffn(l);
        // label boxes: mixer and feed-forward kinds
        const qreal boxH = std::min(rowH - 2, fm.height() * 1.2);
        const QRectF lab(m_labels.left(), y + (rowH - boxH) / 2, labelW - fm.height() * 0.5, boxH);
        const QRectF mixBox(lab.left() + fm.horizontalAdvance(QStringLiteral("00 ")), lab.top(),
                            (lab.width() - fm.horizontalAdvance(QStringLiteral("00 "))) * 0.58, boxH);
        const QRectF ffBox(mixBox.right() + 2, lab.top(), lab.right() - mixBox.right() - 2, boxH);
        const bool selected = m_sel && m_sel->layer() == l;
        p.setPen(selected ? t.highlight : t.text);
        p.drawText(QRectF(lab.left(), lab.top(), mixBox.left() - lab.left(), boxH), Qt::AlignLeft | Qt::AlignVCenter,
                   QString::number(l));
        const QColor mc = mx == QLatin1String("attention") ? attnC : mambaC;
        p.fillRect(mixBox, mc);
        p.setPen(textOn(mc));
        p.drawText(mixBox, Qt::AlignCenter, fm.elidedText(mx, Qt::ElideRight, mixBox.width()));
        if (ff != QLatin1String("none")) {
            const QColor fc = ff == QLatin1String("moe") ? moeC : mlpC;
            p.fillRect(ffBox, fc);
            p.setPen(textOn(fc));
            p.drawText(ffBox, Qt::AlignCenter, fm.elidedText(ff, Qt::ElideRight, ffBox.width()));
        }
        // timeline
        QString what;
        const auto v = rowValues(l, &what);
        float lo = std::numeric_limits<float>::infinity(), hi = -lo;
        for (float x : v)
            if (!std::isnan(x))
                lo = std::min(lo, x), hi = std::max(hi, x);
        const analysis::LayerRouting* R = m_src->routing.routing(l);
        const qreal bandH = R ? rowH * 0.55 : rowH - 1;
        for (int64_t q = 0; q < m_tokens; ++q) {
            const QRectF c(m_timeline.left() + qreal(q) * colW, y, std::max<qreal>(colW - (colW > 6 ? 1 : 0), 0.5), bandH);
            if (!std::isnan(v[size_t(q)]))
                p.fillRect(c, QColor(colormapColor(Colormap::Magma, hi > lo ? (v[size_t(q)] - lo) / (hi - lo) : 0.5)));
            else
                p.fillRect(c, t.panel);
            if (R && q < R->tokens())
                p.fillRect(QRectF(c.left(), y + bandH, c.width(), rowH - bandH - 1), expertColor(R->top1(q)));
        }
        if (selected) {
            p.setPen(QPen(t.highlight, 2));
            p.setBrush(Qt::NoBrush);
            p.drawRect(QRectF(m_timeline.left(), y, m_timeline.width(), rowH - 1));
        }
    }
    drawPromptBoundary(p, m_timeline, t, m_src->routing.promptLength, m_tokens);
    const int cur = token();
    if (cur >= 0 && cur < m_tokens) {
        p.setPen(QPen(t.cursor, 2));
        p.setBrush(Qt::NoBrush);
        p.drawRect(QRectF(m_timeline.left() + qreal(cur) * colW, m_timeline.top(), colW, m_timeline.height()));
    }
    drawTokenAxis(p, QRectF(m_timeline.left(), m_timeline.bottom(), m_timeline.width(), axisH), t, *m_model, 0, m_tokens,
                  cur);
}

QString LayerMapFigure::csv() const
{
    QString out = QStringLiteral("layer,mixer,ffn,quantity,token,value,top1_expert\n");
    auto* self = const_cast<LayerMapFigure*>(this);
    self->m_tokens = m_model->tokenCount();
    for (int l = 0; l < m_model->layerCount(); ++l) {
        QString what;
        const auto v = rowValues(l, &what);
        const analysis::LayerRouting* R = m_src->routing.routing(l);
        for (int64_t q = 0; q < m_tokens; ++q)
            out += QStringLiteral("%1,%2,%3,%4,%5,%6,%7\n").arg(l).arg(mixer(l), ffn(l), csvField(what)).arg(q)
                       .arg(std::isnan(v[size_t(q)]) ? QString() : QString::number(v[size_t(q)], 'g', 9))
                       .arg(R && q < R->tokens() ? QString::number(R->top1(q)) : QString());
    }
    return out;
}

int LayerMapFigure::layerAt(QPointF pos) const
{
    if (m_layers <= 0 || !(m_timeline.contains(pos) || m_labels.contains(pos)))
        return -1;
    return std::clamp(int((pos.y() - m_timeline.top()) / m_timeline.height() * m_layers), 0, m_layers - 1);
}

FigureHit LayerMapFigure::hitAt(QPointF pos) const
{
    FigureHit h;
    if (m_timeline.contains(pos) && m_tokens > 0)
        h.token = int(std::clamp<int64_t>(int64_t((pos.x() - m_timeline.left()) / m_timeline.width() * m_tokens), 0, m_tokens - 1));
    return h;
}

QString LayerMapFigure::toolTipAt(QPointF pos) const
{
    const int l = layerAt(pos);
    if (l < 0)
        return {};
    QString s = QObject::tr("layer %1: %2 mixer, %3 feed-forward (click to open)").arg(l).arg(mixer(l), ffn(l));
    const FigureHit h = hitAt(pos);
    if (h.token >= 0) {
        QString what;
        const auto v = rowValues(l, &what);
        s += QObject::tr("\ntoken %1 '%2': %3 = %4").arg(h.token).arg(tokenText(h.token)).arg(what)
                 .arg(paint::number(v[size_t(h.token)]));
        if (const auto* R = m_src->routing.routing(l); R && h.token < R->tokens())
            s += QObject::tr("; top-1 expert %1").arg(R->top1(h.token));
    }
    return s;
}

// ---- side by side -----------------------------------------------------------------------

SideBySideFigure::SideBySideFigure(std::unique_ptr<Figure> left, std::unique_ptr<Figure> right)
    : Figure(left->model(), left->selection())
    , m_left(std::move(left))
    , m_right(std::move(right))
{
}

QString SideBySideFigure::quantity() const { return m_left->quantity() + QStringLiteral(" | ") + m_right->quantity(); }
QString SideBySideFigure::title() const { return m_left->title() + QStringLiteral("  |  ") + m_right->title(); }
QString SideBySideFigure::unavailableReason() const
{
    if (QString r = m_left->unavailableReason(); !r.isEmpty())
        return QObject::tr("left: %1").arg(r);
    if (QString r = m_right->unavailableReason(); !r.isEmpty())
        return QObject::tr("right: %1").arg(r);
    return {};
}

void SideBySideFigure::paint(QPainter& p, const QRectF& r, const Theme& t, const ImageSource& images)
{
    p.fillRect(r, t.background);
    m_l = QRectF(r.left(), r.top(), r.width() / 2, r.height());
    m_r = QRectF(r.left() + r.width() / 2, r.top(), r.width() / 2, r.height());
    p.save();
    p.setClipRect(m_l);
    m_left->paint(p, m_l, t, images);
    p.restore();
    p.save();
    p.setClipRect(m_r);
    m_right->paint(p, m_r, t, images);
    p.restore();
    p.setPen(QPen(t.axis, 0));
    p.drawLine(m_r.topLeft(), m_r.bottomLeft());
}

int SideBySideFigure::repaintAfterMs() const
{
    const int l = m_left->repaintAfterMs(), r = m_right->repaintAfterMs();
    return l > 0 && r > 0 ? std::min(l, r) : std::max(l, r);
}

QString SideBySideFigure::csv() const
{
    return QStringLiteral("# left: %1\n").arg(m_left->title()) + m_left->csv() +
           QStringLiteral("# right: %1\n").arg(m_right->title()) + m_right->csv();
}

QString SideBySideFigure::toolTipAt(QPointF pos) const
{
    return m_l.contains(pos) ? m_left->toolTipAt(pos) : m_right->toolTipAt(pos);
}

} // namespace archlens::ui
