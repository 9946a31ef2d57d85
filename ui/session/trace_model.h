// TraceModel: everything one session has computed, on the UI thread, for the views to draw:
// tokens with their text and top-5 predictions, and per layer the selective-scan probes as
// ProbeSeries (token-major, chunked, cheap to snapshot for the render worker). Frames arrive
// in batches moved out of the LiveSink by the SessionController's coalescing timer; a trace
// file replays through the same path. The state h (T, E, N) is the large one: a memory cap
// drops its oldest chunks (the other probes are E or N floats per token and are kept).
#pragma once

#include <QElapsedTimer>
#include <QObject>
#include <QString>
#include <QStringList>
#include <QVector>

#include <array>
#include <vector>

#include "probes/probes.h"
#include "session/probe_series.h"
#include "tensor/tensor.h"

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

struct ProbeFrame {
    int layer = 0;
    Probe probe = Probe::SsmX;
    int64_t tokenBegin = 0;
    Tensor value;       // (T, ...) owned copy
    SeriesStats stats;  // of value, computed on the worker
    bool hasStats = false;
};
struct ConstantFrame {
    int layer = 0;
    std::string name; // "A" (E, N) or "D" (E)
    Tensor value;
};
// What the worker hands to the UI thread in one go.
struct FrameBatch {
    bool reset = false; // clear first and take `meta`
    RunMeta meta;
    std::vector<ProbeFrame> frames;
    std::vector<ConstantFrame> constants;
    std::vector<int32_t> ids;
    QStringList texts;
    QVector<QVector<Prediction>> top5;
    bool empty() const { return !reset && frames.empty() && constants.empty() && ids.empty(); }
};

struct LayerFrames {
    std::array<ProbeSeries, 8> series; // indexed by the ssm probes SsmX .. SsmGate
    std::vector<float> A;              // (E, N)
    std::vector<float> D;              // (E)
};

class TraceModel : public QObject {
    Q_OBJECT
public:
    explicit TraceModel(QObject* parent = nullptr);

    void apply(FrameBatch&& batch);
    void clear(const RunMeta& meta);

    const RunMeta& meta() const { return m_meta; }
    int tokenCount() const { return int(m_ids.size()); }
    int layerCount() const { return int(m_layers.size()); }
    int64_t dInner() const { return m_meta.dInner; }
    int64_t dState() const { return m_meta.dState; }
    bool isMambaLayer(int layer) const;
    const std::vector<int32_t>& ids() const { return m_ids; }
    const QStringList& texts() const { return m_texts; }
    const QVector<QVector<Prediction>>& top5() const { return m_top5; }

    // nullptr when the layer has no such probe (attention layer, probe not recorded)
    const ProbeSeries* series(int layer, Probe p) const;
    const ProbeSeries* series(int layer, Quantity q) const { return series(layer, quantityInfo(q).probe); }
    const std::vector<float>& A(int layer) const;
    const std::vector<float>& D(int layer) const;
    uint64_t version() const { return m_version; }

    // Memory cap on the state h across layers; 0 = unlimited.
    void setStateCap(uint64_t bytes);
    uint64_t stateCap() const { return m_stateCap; }
    uint64_t stateBytes() const;
    uint64_t keptBytes() const;
    // First token whose state is still kept in every layer.
    int64_t firstStateToken() const;

signals:
    void cleared();
    void grew(int oldCount, int newCount);

private:
    void enforceCap();
    LayerFrames* layer(int i);
    RunMeta m_meta;
    std::vector<int32_t> m_ids;
    QStringList m_texts;
    QVector<QVector<Prediction>> m_top5;
    std::vector<LayerFrames> m_layers;
    uint64_t m_stateCap = 0;
    uint64_t m_version = 0;
    QElapsedTimer m_debugTimer;
};

QString visibleTokenText(const QString& text); // spaces and newlines made visible

} // namespace archlens::ui
