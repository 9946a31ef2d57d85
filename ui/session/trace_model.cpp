#include "session/trace_model.h"

#include <algorithm>

namespace archlens::ui {

namespace {
const QuantityInfo kQuantities[] = {
    {Probe::SsmDelta, "delta", "Δ (step size)", "Δ", false, false},
    {Probe::SsmB, "B", "B (written into the state)", "B", true, true},
    {Probe::SsmC, "C", "C (read out of the state)", "C", true, true},
    {Probe::SsmGate, "gate", "gate SiLU(z)", "SiLU(z)", false, true},
    {Probe::SsmStateNorm, "state-norm", "‖h_t‖ per channel", "‖h‖", false, false},
    {Probe::SsmX, "x", "x (scan input)", "x", false, true},
    {Probe::SsmY, "y", "y = C·h + D·x", "y", false, true},
    {Probe::SsmState, "state", "state h", "h", false, true},
};
int slot(Probe p)
{
    const int i = int(p) - int(Probe::SsmX);
    return (i >= 0 && i < 8) ? i : -1;
}
const std::vector<float> kEmpty;
} // namespace

const QuantityInfo& quantityInfo(Quantity q) { return kQuantities[int(q)]; }

QString visibleTokenText(const QString& text)
{
    QString s = text;
    s.replace(' ', QChar(0x2423)).replace('\n', QChar(0x21B5)).replace('\t', QChar(0x21E5));
    return s;
}

TraceModel::TraceModel(QObject* parent)
    : QObject(parent)
{
}

void TraceModel::reset(const RunMeta& meta, std::shared_ptr<FrameStore> store, VocabTexts vocab)
{
    m_meta = meta;
    m_store = std::move(store);
    m_vocab = std::move(vocab);
    m_ids.clear();
    m_texts.clear();
    m_frames.clear();
    m_pending.clear();
    m_layers.clear();
    m_layers.resize(size_t(std::max<qint64>(meta.layers, 0)));
    m_segments.clear();
    m_routing.reset();
    m_seenDroppedFrames = m_seenDroppedStates = 0;
    ++m_version;
    emit cleared();
}

void TraceModel::setRouting(std::shared_ptr<const analysis::RoutingData> routing)
{
    m_routing = std::move(routing);
    emit routingChanged();
}

bool TraceModel::isMambaLayer(int layer) const
{
    if (layer < 0 || layer >= layerCount())
        return false;
    return layer >= m_meta.layerMixer.size() || m_meta.layerMixer[layer] == QLatin1String("mamba");
}

LayerFrames* TraceModel::layer(int i)
{
    if (i < 0)
        return nullptr;
    if (size_t(i) >= m_layers.size())
        m_layers.resize(size_t(i) + 1);
    return &m_layers[size_t(i)];
}

void TraceModel::addTokens(int64_t begin, const std::vector<int32_t>& ids, const QStringList& texts)
{
    const int old = tokenCount();
    begin = std::clamp<int64_t>(begin, 0, old);
    m_ids.resize(size_t(begin));
    m_texts = m_texts.mid(0, qsizetype(begin));
    m_ids.insert(m_ids.end(), ids.begin(), ids.end());
    for (size_t i = 0; i < ids.size(); ++i)
        m_texts << (qsizetype(i) < texts.size() ? texts[qsizetype(i)] : QStringLiteral("#%1").arg(ids[i]));
    ++m_version;
    if (tokenCount() != old)
        emit grew(std::min<int>(old, int(begin)), tokenCount());
}

void TraceModel::setRow(int l, Probe p, int64_t t, const float* values, SeriesView::Owner owner)
{
    LayerFrames* lf = layer(l);
    const int s = slot(p);
    if (!lf || s < 0)
        return;
    ProbeSeries& ser = lf->series[size_t(s)];
    if (!ser.valid())
        ser = ProbeSeries(p == Probe::SsmState ? m_meta.dInner * m_meta.dState
                                               : (p == Probe::SsmB || p == Probe::SsmC ? m_meta.dState : m_meta.dInner));
    ser.set(t, values, std::move(owner));
    ++m_version;
}

void TraceModel::setConstant(int l, const std::string& name, std::vector<float> values)
{
    if (LayerFrames* lf = layer(l))
        (name == "A" ? lf->A : lf->D) = std::move(values);
    ++m_version;
}

void TraceModel::placeFrame(const FramePtr& f)
{
    const int64_t t = f->token;
    if (size_t(t) >= m_frames.size())
        m_frames.resize(size_t(t) + 1);
    m_frames[size_t(t)] = f;
    for (int l = 0; l < f->layerCount() && l < layerCount(); ++l)
        for (Probe p : kFrameProbes) {
            const std::span<const float> row = f->probe(l, p);
            if (row.empty())
                continue;
            ProbeSeries& ser = m_layers[size_t(l)].series[size_t(slot(p))];
            if (!ser.valid())
                ser = ProbeSeries(int64_t(row.size()));
            if (int64_t(row.size()) == ser.width())
                ser.set(t, row.data(), f);
        }
}

void TraceModel::placeState(const StatePtr& s)
{
    if (!s || s->layer < 0 || s->layer >= layerCount())
        return;
    ProbeSeries& ser = m_layers[size_t(s->layer)].series[size_t(slot(Probe::SsmState))];
    if (!ser.valid())
        ser = ProbeSeries(s->E * s->N);
    if (ser.row(s->token) != s->h.data() && int64_t(s->h.size()) == ser.width())
        ser.set(s->token, s->h.data(), s);
}

bool TraceModel::sync(double budgetMs)
{
    if (!m_store)
        return true;
    QElapsedTimer timer;
    timer.start();
    for (FramePtr& f : m_store->takeNewFrames()) // the store's lock is held only for this move
        m_pending.push_back(std::move(f));
    const FrameStoreUsage u = m_store->usage();
    for (int l = 0; l < layerCount(); ++l)
        if (isMambaLayer(l) && m_layers[size_t(l)].A.empty())
            for (const char* name : {"A", "D"}) {
                const Tensor c = m_store->constant(l, name);
                if (c.defined())
                    (name[0] == 'A' ? m_layers[size_t(l)].A : m_layers[size_t(l)].D).assign(c.f32(), c.f32() + c.numel());
            }
    bool placed = false;
    while (!m_pending.empty()) {
        if (budgetMs > 0 && placed && double(timer.nsecsElapsed()) / 1e6 > budgetMs)
            break;
        const FramePtr f = std::move(m_pending.front());
        m_pending.pop_front();
        placeFrame(f);
        for (int l = 0; l < layerCount(); ++l)
            if (isMambaLayer(l))
                placeState(m_store->state(f->token, l));
        placed = true;
    }
    if (u.droppedFrames != m_seenDroppedFrames || u.droppedStates != m_seenDroppedStates) {
        releaseDropped();
        m_seenDroppedFrames = u.droppedFrames;
        m_seenDroppedStates = u.droppedStates;
        placed = true;
    }
    if (placed)
        ++m_version;
    return m_pending.empty();
}

// The store dropped frames or states under its cap: let go of them here too (a held pointer
// would keep their memory alive), and take any that were republished meanwhile.
void TraceModel::releaseDropped()
{
    const int64_t n = int64_t(m_frames.size());
    const std::vector<FramePtr> present = m_store->frames({0, n});
    for (int64_t t = 0; t < n; ++t) {
        if (m_frames[size_t(t)] == present[size_t(t)])
            continue;
        if (present[size_t(t)]) {
            placeFrame(present[size_t(t)]);
            continue;
        }
        m_frames[size_t(t)].reset();
        for (LayerFrames& lf : m_layers)
            for (Probe p : kFrameProbes)
                lf.series[size_t(slot(p))].clear(t);
    }
    for (int l = 0; l < layerCount(); ++l) {
        ProbeSeries& ser = m_layers[size_t(l)].series[size_t(slot(Probe::SsmState))];
        if (!ser.valid())
            continue;
        const std::vector<StatePtr> states = m_store->states({0, ser.count()}, l);
        for (int64_t t = 0; t < ser.count(); ++t) {
            const StatePtr& s = states[size_t(t)];
            if (!s)
                ser.clear(t);
            else
                placeState(s);
        }
    }
}

void TraceModel::refreshStates(TokenRange range)
{
    if (!m_store || range.empty())
        return;
    for (int l = 0; l < layerCount(); ++l)
        if (isMambaLayer(l))
            for (const StatePtr& s : m_store->states(range, l))
                placeState(s);
    ++m_version;
}

bool TraceModel::hasToken(int64_t t) const
{
    if (t < 0 || t >= tokenCount())
        return true; // nothing to recompute
    if (size_t(t) >= m_frames.size() || !m_frames[size_t(t)])
        return false;
    for (int l = 0; l < layerCount(); ++l) {
        if (!isMambaLayer(l))
            continue;
        const ProbeSeries* s = series(l, Probe::SsmState);
        if (!s || !s->row(t) || (t > 0 && !s->row(t - 1)))
            return false;
    }
    return true;
}

void TraceModel::setSegments(std::vector<Segment> segments)
{
    m_segments = std::move(segments);
    ++m_version;
}

analysis::ScanOrder TraceModel::orderAt(int64_t t) const { return scanOrderAt(m_segments, t); }

QVector<Prediction> TraceModel::predictions(int64_t t) const
{
    QVector<Prediction> out;
    if (t < 0 || size_t(t) >= m_frames.size() || !m_frames[size_t(t)])
        return out;
    for (const TopToken& top : m_frames[size_t(t)]->top) {
        const QString text = m_vocab && top.id >= 0 && size_t(top.id) < m_vocab->size() ? (*m_vocab)[size_t(top.id)]
                                                                                          : QStringLiteral("#%1").arg(top.id);
        out.append({top.id, text, top.probability});
    }
    return out;
}

const ProbeSeries* TraceModel::series(int l, Probe p) const
{
    const int s = slot(p);
    if (s < 0 || l < 0 || size_t(l) >= m_layers.size())
        return nullptr;
    const ProbeSeries& ser = m_layers[size_t(l)].series[size_t(s)];
    return ser.valid() ? &ser : nullptr;
}

const std::vector<float>& TraceModel::A(int l) const
{
    return (l >= 0 && size_t(l) < m_layers.size()) ? m_layers[size_t(l)].A : kEmpty;
}
const std::vector<float>& TraceModel::D(int l) const
{
    return (l >= 0 && size_t(l) < m_layers.size()) ? m_layers[size_t(l)].D : kEmpty;
}

} // namespace archlens::ui
