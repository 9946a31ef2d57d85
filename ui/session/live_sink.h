// LiveSink: the ProbeSink a session's worker records into. record() copies the probe into a
// pending FrameBatch under a short lock; the UI thread's coalescing timer moves the whole
// batch out with take() (a swap), releases the lock, and only then appends and draws. The
// worker is never blocked by drawing, and bursts of tokens become one UI update.
#pragma once

#include <atomic>
#include <mutex>

#include "session/trace_model.h"

namespace archlens::ui {

class LiveSink : public ProbeSink {
public:
    LiveSink();
    void setSelection(ProbeSelection sel);
    bool wants(int layer, Probe p) const override;
    void record(int layer, Probe p, int64_t tokenBegin, const Tensor& value) override;
    void recordConstant(int layer, std::string_view group, std::string_view name, const Tensor& value) override;

    void reset(const RunMeta& meta);
    void addTokens(const std::vector<int32_t>& ids, const QStringList& texts, const QVector<QVector<Prediction>>& top5);
    // Moves everything pending out; returns an empty batch when nothing is pending.
    FrameBatch take();
    bool hasPending() const;

private:
    mutable std::mutex m_mutex;
    ProbeSelection m_sel;
    FrameBatch m_pending;
};

} // namespace archlens::ui
