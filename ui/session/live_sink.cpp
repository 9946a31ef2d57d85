#include "session/live_sink.h"

namespace archlens::ui {

LiveSink::LiveSink()
{
    for (Probe p : {Probe::SsmX, Probe::SsmDelta, Probe::SsmB, Probe::SsmC, Probe::SsmState, Probe::SsmStateNorm,
                    Probe::SsmY, Probe::SsmGate})
        m_sel.probes.insert(p);
}

void LiveSink::setSelection(ProbeSelection sel)
{
    std::lock_guard lock(m_mutex);
    m_sel = std::move(sel);
}

bool LiveSink::wants(int layer, Probe p) const
{
    std::lock_guard lock(m_mutex);
    return m_sel.wants(layer, p);
}

void LiveSink::record(int layer, Probe p, int64_t tokenBegin, const Tensor& value)
{
    // copied, and its statistics taken, here on the worker and outside the lock
    Tensor copy = value.dtype() == DType::F32 ? value.clone() : value.toF32();
    SeriesStats stats;
    stats.add(copy.f32(), copy.numel());
    std::lock_guard lock(m_mutex);
    m_pending.frames.push_back({layer, p, tokenBegin, std::move(copy), stats, true});
}

void LiveSink::recordConstant(int layer, std::string_view group, std::string_view name, const Tensor& value)
{
    if (group != "ssm")
        return;
    Tensor copy = value.dtype() == DType::F32 ? value.clone() : value.toF32();
    std::lock_guard lock(m_mutex);
    m_pending.constants.push_back({layer, std::string(name), std::move(copy)});
}

void LiveSink::reset(const RunMeta& meta)
{
    std::lock_guard lock(m_mutex);
    m_pending = FrameBatch{};
    m_pending.reset = true;
    m_pending.meta = meta;
}

void LiveSink::addTokens(const std::vector<int32_t>& ids, const QStringList& texts,
                         const QVector<QVector<Prediction>>& top5)
{
    std::lock_guard lock(m_mutex);
    m_pending.ids.insert(m_pending.ids.end(), ids.begin(), ids.end());
    m_pending.texts += texts;
    m_pending.top5 += top5;
}

FrameBatch LiveSink::take()
{
    FrameBatch out;
    std::lock_guard lock(m_mutex);
    std::swap(out, m_pending);
    return out;
}

bool LiveSink::hasPending() const
{
    std::lock_guard lock(m_mutex);
    return !m_pending.empty();
}

} // namespace archlens::ui
