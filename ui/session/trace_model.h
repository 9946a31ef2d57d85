// TraceModel: what one session has computed, on the UI thread, for the views to draw. It is
// the UI-side reader of the session's FrameStore (core/probes/frame_store.h): the
// SessionController's coalescing timer calls sync(), which moves the newly published frames
// out under the store's short lock, then, without any lock, points per-layer ProbeSeries rows
// into those immutable frames (light probes) and into the store's state frames (h), and
// releases what the store dropped under its memory cap, so the cap bounds memory on this side
// too. Tokens (ids and their text) come from the worker with each forward call, so a token
// whose frames were dropped before the UI saw them is still listed; its rows are missing until
// a scrub recomputes them. A live RunSession and a replayed trace (TraceSession) fill the same
// store type, so the views draw both alike.
#pragma once

#include <QElapsedTimer>
#include <QObject>
#include <QString>
#include <QStringList>
#include <QVector>

#include <array>
#include <deque>
#include <memory>
#include <vector>

#include "analysis/moe_analysis.h"
#include "analysis/scan_analysis.h"
#include "probes/frame_store.h"
#include "probes/probes.h"
#include "runtime/run_session.h"
#include "session/probe_series.h"

namespace archlens::ui {

struct Prediction {
    int id = 0;
    QString text;
    float probability = 0.f;
};

// Facts about the run that figures print in titles and write into file metadata.
struct RunMeta {
    QString modelName, modelPath, architecture, revision, backend, prompt;
    qint64 seed = -1; // -1: greedy / prefill only
    qint64 dInner = 0, dState = 0, layers = 0;
    QStringList layerMixer; // per layer: "mamba" | "attention"
    QStringList layerFfn;   // per layer: "none" | "mlp" | "moe" (empty when unknown: a trace)
    bool untrained = false;
    QString source; // "live" or the trace file it was read from
};

// The quantities a view can show; each maps to one probe.
enum class Quantity { Delta, B, C, Gate, StateNorm, X, Y, State };
struct QuantityInfo {
    Probe probe;
    const char* key;    // CLI/view name: "delta", "B" ...
    const char* name;   // "Δ (step size, after softplus)"
    const char* symbol; // "Δ"
    bool perStateDim;   // rows are d_state (B, C) rather than channels
    bool isSigned;      // diverging colormap centred on zero
};
const QuantityInfo& quantityInfo(Quantity q);

// The text of every vocabulary id (for predictions), built once per model or trace.
using VocabTexts = std::shared_ptr<const std::vector<QString>>;

struct LayerFrames {
    std::array<ProbeSeries, 8> series; // indexed by the ssm probes SsmX .. SsmGate
    std::vector<float> A;              // (E, N)
    std::vector<float> D;              // (E)
};

class TraceModel : public QObject {
    Q_OBJECT
public:
    explicit TraceModel(QObject* parent = nullptr);

    // Starts over with a new run reading `store` (may be null: data placed by hand).
    void reset(const RunMeta& meta, std::shared_ptr<FrameStore> store, VocabTexts vocab = {});
    void clear(const RunMeta& meta) { reset(meta, nullptr); }
    // Tokens [begin, begin + ids.size()) with their text; anything past begin is replaced.
    void addTokens(int64_t begin, const std::vector<int32_t>& ids, const QStringList& texts);
    // Moves new frames out of the store and places them; with budgetMs > 0 stops placing after
    // that long (the rest waits for the next call). Returns false when frames are left over.
    bool sync(double budgetMs = 0);
    bool hasPending() const { return !m_pending.empty(); }
    // Re-reads the states of `range` (every layer) from the store: after a scrub republished them.
    void refreshStates(TokenRange range);
    // Whether the light frame and every layer's h at t (and at t - 1, the stepper's h_{t-1})
    // are here; when not, a scrub must recompute them.
    bool hasToken(int64_t t) const;
    // The forward calls of the live run (a trace's /session/segments): which expression order
    // reproduces token t's scan bit for bit (chunk when unknown, as the CLI records).
    void setSegments(std::vector<Segment> segments);
    analysis::ScanOrder orderAt(int64_t t) const;

    // Places rows by hand (tests, synthetic data); width from the first row.
    void setRow(int layer, Probe p, int64_t t, const float* values, SeriesView::Owner owner);
    void setConstant(int layer, const std::string& name, std::vector<float> values);

    const RunMeta& meta() const { return m_meta; }
    FrameStore* store() const { return m_store.get(); }
    std::shared_ptr<FrameStore> sharedStore() const { return m_store; }
    int tokenCount() const { return int(m_ids.size()); }
    int layerCount() const { return int(m_layers.size()); }
    int64_t dInner() const { return m_meta.dInner; }
    int64_t dState() const { return m_meta.dState; }
    bool isMambaLayer(int layer) const;
    const std::vector<int32_t>& ids() const { return m_ids; }
    const QStringList& texts() const { return m_texts; }
    // The model's top-k predictions after token t (empty when its frame is not here).
    QVector<Prediction> predictions(int64_t t) const;

    // nullptr when the layer has no such probe (attention layer, probe not recorded)
    const ProbeSeries* series(int layer, Probe p) const;
    const ProbeSeries* series(int layer, Quantity q) const { return series(layer, quantityInfo(q).probe); }
    const std::vector<float>& A(int layer) const;
    const std::vector<float>& D(int layer) const;
    uint64_t version() const { return m_version; }
    // The run's routing and attention weights, recorded on the worker from the same forward
    // passes (ModelWorker::routing); null for a model without routers or attention, a trace
    // (the views read its moe/ and attn/ datasets) or data placed by hand. reset() clears it.
    void setRouting(std::shared_ptr<const analysis::RoutingData> routing);
    const std::shared_ptr<const analysis::RoutingData>& routing() const { return m_routing; }
    FrameStoreUsage usage() const { return m_store ? m_store->usage() : FrameStoreUsage{}; }

signals:
    void cleared();
    void grew(int oldCount, int newCount);
    void routingChanged();

private:
    LayerFrames* layer(int i);
    void placeFrame(const FramePtr& f);
    void placeState(const StatePtr& s);
    void releaseDropped();
    RunMeta m_meta;
    std::shared_ptr<FrameStore> m_store;
    VocabTexts m_vocab;
    std::vector<int32_t> m_ids;
    QStringList m_texts;
    std::vector<FramePtr> m_frames; // by token: the frames the series point into
    std::deque<FramePtr> m_pending; // moved out of the store, not placed yet
    std::vector<LayerFrames> m_layers;
    std::vector<Segment> m_segments;
    std::shared_ptr<const analysis::RoutingData> m_routing;
    int64_t m_seenDroppedFrames = 0, m_seenDroppedStates = 0;
    uint64_t m_version = 0;
};

QString visibleTokenText(const QString& text); // spaces and newlines made visible

} // namespace archlens::ui
