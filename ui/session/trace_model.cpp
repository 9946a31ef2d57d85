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

void TraceModel::clear(const RunMeta& meta)
{
    m_meta = meta;
    m_ids.clear();
    m_texts.clear();
    m_top5.clear();
    m_layers.clear();
    m_layers.resize(size_t(std::max<qint64>(meta.layers, 0)));
    ++m_version;
    emit cleared();
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

void TraceModel::apply(FrameBatch&& b)
{
    if (b.reset)
        clear(b.meta);
    if (b.frames.empty() && b.constants.empty() && b.ids.empty())
        return;
    const int old = tokenCount();
    m_debugTimer.start();
    for (auto& c : b.constants) {
        LayerFrames* l = layer(c.layer);
        if (!l)
            continue;
        const float* v = c.value.f32();
        (c.name == "A" ? l->A : l->D).assign(v, v + c.value.numel());
    }
    for (auto& f : b.frames) {
        const int s = slot(f.probe);
        LayerFrames* l = layer(f.layer);
        if (s < 0 || !l || f.value.numel() == 0)
            continue;
        ProbeSeries& ser = l->series[size_t(s)];
        const int64_t rows = f.value.dim(0);
        const int64_t width = f.value.numel() / rows;
        if (!ser.valid())
            ser = ProbeSeries(width);
        // frames arrive in order; a frame that overlaps what we hold is skipped in part
        const int64_t skip = std::max<int64_t>(0, ser.count() - f.tokenBegin);
        if (f.tokenBegin > ser.count() || width != ser.width() || skip >= rows)
            continue;
        ser.adopt(f.value, skip, f.hasStats && skip == 0 ? &f.stats : nullptr);
    }
    m_ids.insert(m_ids.end(), b.ids.begin(), b.ids.end());
    m_texts += b.texts;
    m_top5 += b.top5;
    enforceCap();
    ++m_version;
    const qint64 appendNs = m_debugTimer.nsecsElapsed();
    if (tokenCount() != old || !b.frames.empty())
        emit grew(old, tokenCount());
    if (qEnvironmentVariableIsSet("ARCHLENS_DEBUG_PAINT"))
        qInfo("apply: append %.2f ms, grew handlers %.2f ms", double(appendNs) / 1e6,
              double(m_debugTimer.nsecsElapsed() - appendNs) / 1e6);
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

void TraceModel::setStateCap(uint64_t bytes)
{
    m_stateCap = bytes;
    enforceCap();
    ++m_version;
}

uint64_t TraceModel::stateBytes() const
{
    uint64_t n = 0;
    for (const auto& l : m_layers)
        n += l.series[size_t(slot(Probe::SsmState))].keptBytes();
    return n;
}

uint64_t TraceModel::keptBytes() const
{
    uint64_t n = 0;
    for (const auto& l : m_layers)
        for (const auto& s : l.series)
            n += s.keptBytes();
    return n;
}

int64_t TraceModel::firstStateToken() const
{
    int64_t first = 0;
    for (const auto& l : m_layers)
        first = std::max(first, l.series[size_t(slot(Probe::SsmState))].firstKept());
    return first;
}

void TraceModel::enforceCap()
{
    if (m_stateCap == 0)
        return;
    const int s = slot(Probe::SsmState);
    // drop a chunk's worth of tokens at a time from every layer until under the cap
    while (stateBytes() > m_stateCap) {
        const int64_t next = (firstStateToken() / SeriesView::kChunkRows + 1) * SeriesView::kChunkRows;
        const uint64_t before = stateBytes();
        for (auto& l : m_layers)
            l.series[size_t(s)].dropBefore(next);
        if (stateBytes() == before)
            break; // only the chunk being written is left
    }
}

} // namespace archlens::ui
