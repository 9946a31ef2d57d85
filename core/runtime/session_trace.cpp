// Compiled only with HDF5 (like formats/hdf5/): without it these functions are not defined.
#if ARCHLENS_HAVE_HDF5

#include "runtime/session_trace.h"

#include <algorithm>

namespace archlens {

namespace fs = std::filesystem;

namespace {

std::string ssmPath(int layer, Probe p) { return fmt::format("/layers/{}/{}/{}", layer, probeGroup(p), probeLeaf(p)); }

std::string ssmConstPath(int layer, const char* name) { return fmt::format("/layers/{}/ssm/{}", layer, name); }

std::string checkpointStatePath(int64_t position, int layer)
{
    return fmt::format("/checkpoints/{}/layers/{}/ssm_state", position, layer);
}

// The probes a saved trace holds by default: the session's selection, minus ssm.state unless
// it is kept for every token.
ProbeSelection defaultTraceProbes(const FrameSelection& frames)
{
    ProbeSelection sel = frames.probes;
    if (!frames.stateTokens.empty())
        sel.probes.erase(Probe::SsmState);
    return sel;
}

} // namespace

// ---- save ----

void saveSessionTrace(RunSession& session, const fs::path& path, const SessionTraceOptions& options,
                      const std::function<void(RunProgress)>& progress, const std::atomic<bool>* cancel)
{
    const int64_t T = session.computedEnd();
    if (T == 0)
        throw Error(ErrorCode::InvalidArgument, "the session has no computed token to save", path.string(),
                    "run the prompt first");
    if (!options.tokenText.empty() && int64_t(options.tokenText.size()) < T)
        throw makeError(ErrorCode::InvalidArgument, "{} token texts for {} tokens", options.tokenText.size(), T);
    const ModelInfo& info = session.model().info();
    TraceMeta meta = options.meta;
    auto orDefault = [](std::string& field, const std::string& value) {
        if (field.empty())
            field = value;
    };
    orDefault(meta.modelType, info.modelType);
    orDefault(meta.architecture, info.architecture.empty() ? info.modelType : info.architecture);
    orDefault(meta.backend, session.model().backend().name());
    orDefault(meta.weightDType, info.weightDType);
    orDefault(meta.computeDType, "F32");
    orDefault(meta.modelPath, info.path.string());
    if (meta.promptLength == 0)
        meta.promptLength = std::min(session.promptLength(), T);
    if (meta.seed == -1 && session.options().sampling.temperature > 0.f)
        meta.seed = int64_t(session.options().seed);

    const ProbeSelection probes = options.probes ? *options.probes : defaultTraceProbes(session.store().selection());
    TraceWriter writer(path, meta, probes);
    writer.setAttribute("layer_mixer", info.layerMixer);
    writer.setAttribute("layer_ffn", info.layerFfn);
    writer.setAttribute("checkpoint_interval", session.checkpointInterval());

    const bool ok = session.replayAll(
        &writer,
        [&](int64_t begin, std::span<const int32_t> ids, const Tensor& logits) {
            std::vector<std::string> texts;
            if (!options.tokenText.empty())
                texts.assign(options.tokenText.begin() + begin, options.tokenText.begin() + begin + int64_t(ids.size()));
            writer.appendTokens(std::vector<int32_t>(ids.begin(), ids.end()), texts);
            if (options.logits)
                writer.appendLogits(begin, logits);
        },
        progress, cancel);
    if (!ok)
        throw Error(ErrorCode::Cancelled, fmt::format("saving the session to {} cancelled", path.string()));

    if (options.checkpoints)
        for (int64_t p : session.checkpointPositions())
            if (p <= T)
                writer.writeCheckpoint(p, session.checkpoint(p)->tensors());
    const auto& segments = session.segments();
    Tensor seg = Tensor::empty({int64_t(segments.size()), 3}, DType::I64); // (S, 3)
    for (size_t i = 0; i < segments.size(); ++i) {
        seg.i64()[i * 3 + 0] = segments[i].begin;
        seg.i64()[i * 3 + 1] = segments[i].end;
        seg.i64()[i * 3 + 2] = segments[i].mode == ForwardMode::Chunk ? 1 : 0;
    }
    writer.writeTensor("/session/segments", seg);
    writer.finish();
}

// ---- open ----

struct TraceSession::Impl {
    TraceReader reader;
    int layers = 0;
};

TraceSession::TraceSession(const fs::path& path, uint64_t capBytes)
    : m_impl(std::make_unique<Impl>(Impl{TraceReader::open(path), 0}))
{
    const TraceReader& r = m_impl->reader;
    int layers = int(r.attributeStrings("layer_mixer").size());
    for (int l : r.layers())
        layers = std::max(layers, l + 1);
    m_impl->layers = std::max(layers, 1);
    m_store = std::make_shared<FrameStore>(m_impl->layers, FrameSelection::lightDefaults(), capBytes);
    m_checkpoints = r.checkpoints();

    if (r.has("/session/segments")) {
        const Tensor seg = r.read("/session/segments");
        if (seg.rank() != 2 || seg.dim(1) != 3 || seg.dtype() != DType::I64)
            throw Error(ErrorCode::Format, fmt::format("trace {}: /session/segments must be int64 [S, 3], has {}",
                                                       path.string(), shapeToString(seg.shape())),
                        path.string());
        int64_t expect = 0;
        for (int64_t i = 0; i < seg.dim(0); ++i) {
            const int64_t* row = seg.i64() + i * 3;
            if (row[0] != expect || row[1] <= row[0] || (row[2] != 0 && row[2] != 1))
                throw Error(ErrorCode::Format,
                            fmt::format("trace {}: /session/segments row {} ({}, {}, {}) does not continue at token {}",
                                        path.string(), i, row[0], row[1], row[2], expect),
                            path.string());
            m_segments.push_back({row[0], row[1], row[2] == 1 ? ForwardMode::Chunk : ForwardMode::Recurrent});
            expect = row[1];
        }
    }
}

TraceSession::~TraceSession() = default;

const TraceReader& TraceSession::reader() const { return m_impl->reader; }
const TraceMeta& TraceSession::meta() const { return m_impl->reader.meta(); }
const std::vector<int32_t>& TraceSession::tokens() const { return m_impl->reader.tokens(); }
const std::vector<std::string>& TraceSession::tokenText() const { return m_impl->reader.tokenText(); }
int TraceSession::layerCount() const { return m_impl->layers; }

analysis::ScanOrder TraceSession::orderAt(int64_t t) const { return scanOrderAt(m_segments, t); }

Tensor TraceSession::stateAfter(int64_t t, int layer) const
{
    const TraceReader& r = m_impl->reader;
    const int64_t T = int64_t(tokens().size());
    if (t < 0 || t >= T)
        throw makeError(ErrorCode::InvalidArgument, "no token {} in a trace of {} tokens", t, T);
    const std::string statePath = ssmPath(layer, Probe::SsmState);
    if (r.has(statePath)) {
        Tensor row = r.readRows(statePath, t, t + 1); // (1, E, N)
        return row.reshaped({row.dim(1), row.dim(2)});
    }
    for (Probe p : {Probe::SsmX, Probe::SsmDelta, Probe::SsmB})
        if (!r.has(ssmPath(layer, p)))
            throw Error(ErrorCode::Format,
                        fmt::format("trace {}: layer {} has neither ssm/state nor {} to rebuild the state from",
                                    meta().modelPath.empty() ? "file" : meta().modelPath, layer, probeName(p)),
                        "", "record ssm.x, ssm.delta and ssm.B (or ssm.state)");
    if (!r.has(ssmConstPath(layer, "A")))
        throw Error(ErrorCode::Format, fmt::format("trace: layer {} has no ssm/A to rebuild the state from", layer));

    // nearest checkpoint <= t that holds this layer's state (else zeros at token 0)
    int64_t from = 0;
    Tensor h0;
    for (auto it = m_checkpoints.rbegin(); it != m_checkpoints.rend(); ++it)
        if (*it <= t && r.has(checkpointStatePath(*it, layer))) {
            from = *it;
            h0 = r.read(checkpointStatePath(*it, layer)); // (E, N)
            break;
        }
    analysis::ScanTensors s;
    s.x = r.readRows(ssmPath(layer, Probe::SsmX), from, t + 1);
    s.delta = r.readRows(ssmPath(layer, Probe::SsmDelta), from, t + 1);
    s.B = r.readRows(ssmPath(layer, Probe::SsmB), from, t + 1);
    s.A = r.read(ssmConstPath(layer, "A"));
    const int64_t E = s.A.dim(0), N = s.A.dim(1);
    if (h0.defined() && (h0.rank() != 2 || h0.dim(0) != E || h0.dim(1) != N))
        throw makeError(ErrorCode::Format, "trace: checkpoint {} of layer {} has shape {}, ssm/A has [{}, {}]", from,
                        layer, shapeToString(h0.shape()), E, N);

    // the pieces of [from, t] that share one expression order
    std::vector<std::pair<TokenRange, analysis::ScanOrder>> pieces;
    for (int64_t u = from; u <= t; ++u) {
        const analysis::ScanOrder o = orderAt(u);
        if (!pieces.empty() && pieces.back().second == o)
            pieces.back().first.end = u + 1;
        else
            pieces.push_back({{u, u + 1}, o});
    }
    Tensor out = Tensor::empty({E, N});
    for (int64_t c = 0; c < E; ++c) {
        std::vector<float> h = h0.defined() ? std::vector<float>(h0.f32() + c * N, h0.f32() + (c + 1) * N)
                                            : std::vector<float>(size_t(N), 0.f);
        for (const auto& [range, order] : pieces)
            h = analysis::replayChannel(s, c, range.begin - from, range.end - from, h, order);
        std::copy(h.begin(), h.end(), out.f32() + c * N);
    }
    return out;
}

analysis::ScanTensors TraceSession::scanTensors(int layer, bool includeStates) const
{
    const TraceReader& r = m_impl->reader;
    auto readIf = [&](const std::string& p) { return r.has(p) ? r.read(p) : Tensor(); };
    analysis::ScanTensors s;
    s.x = readIf(ssmPath(layer, Probe::SsmX));
    s.delta = readIf(ssmPath(layer, Probe::SsmDelta));
    s.B = readIf(ssmPath(layer, Probe::SsmB));
    s.C = readIf(ssmPath(layer, Probe::SsmC));
    s.gate = readIf(ssmPath(layer, Probe::SsmGate));
    s.A = readIf(ssmConstPath(layer, "A"));
    s.D = readIf(ssmConstPath(layer, "D"));
    if (includeStates)
        s.states = readIf(ssmPath(layer, Probe::SsmState));
    return s;
}

analysis::ScanStepNumbers TraceSession::stepAt(int layer, int64_t channel, int64_t t) const
{
    const TraceReader& r = m_impl->reader;
    const int64_t T = int64_t(tokens().size());
    if (t < 0 || t >= T)
        throw makeError(ErrorCode::InvalidArgument, "no token {} in a trace of {} tokens", t, T);
    for (Probe p : {Probe::SsmX, Probe::SsmDelta, Probe::SsmB, Probe::SsmC})
        if (!r.has(ssmPath(layer, p)))
            throw Error(ErrorCode::Format, fmt::format("trace: layer {} has no {} for the scan stepper", layer,
                                                       probeName(p)));
    const Tensor A = r.read(ssmConstPath(layer, "A")); // (E, N)
    const int64_t E = A.dim(0), N = A.dim(1);
    if (channel < 0 || channel >= E)
        throw makeError(ErrorCode::InvalidArgument, "channel {} is out of range [0, {})", channel, E);
    auto row = [&](Probe p) { return r.readRows(ssmPath(layer, p), t, t + 1); };
    const Tensor x = row(Probe::SsmX), delta = row(Probe::SsmDelta), B = row(Probe::SsmB), C = row(Probe::SsmC);
    analysis::ScanStepInput in;
    in.delta = delta.f32()[channel];
    in.x = x.f32()[channel];
    in.A.assign(A.f32() + channel * N, A.f32() + (channel + 1) * N);
    in.B.assign(B.f32(), B.f32() + N);
    in.C.assign(C.f32(), C.f32() + N);
    if (t > 0) {
        const Tensor h = stateAfter(t - 1, layer);
        in.hPrev.assign(h.f32() + channel * N, h.f32() + (channel + 1) * N);
    }
    if (r.has(ssmConstPath(layer, "D")))
        in.D = r.read(ssmConstPath(layer, "D")).f32()[channel];
    if (r.has(ssmPath(layer, Probe::SsmGate)))
        in.gate = row(Probe::SsmGate).f32()[channel];
    in.order = orderAt(t);
    return analysis::scanStep(in);
}

void TraceSession::publish(TokenRange range, bool states)
{
    const TraceReader& r = m_impl->reader;
    range = {std::max<int64_t>(range.begin, 0), std::min<int64_t>(range.end, int64_t(tokens().size()))};
    if (range.empty())
        return;
    RecordWindow w;
    w.tokens = range;
    w.onlyMissing = true;
    if (states)
        w.forceStates = range;
    m_store->beginTokens(w);
    for (int layer : r.layers()) {
        for (Probe p : kFrameProbes)
            if (r.has(ssmPath(layer, p)))
                m_store->record(layer, p, range.begin, r.readRows(ssmPath(layer, p), range.begin, range.end));
        if (!states)
            continue;
        if (r.has(ssmPath(layer, Probe::SsmState))) { // recorded: one read for the block
            m_store->record(layer, Probe::SsmState, range.begin,
                            r.readRows(ssmPath(layer, Probe::SsmState), range.begin, range.end));
            continue;
        }
        const bool canRebuild = r.has(ssmPath(layer, Probe::SsmState)) ||
                                (r.has(ssmPath(layer, Probe::SsmX)) && r.has(ssmPath(layer, Probe::SsmDelta)) &&
                                 r.has(ssmPath(layer, Probe::SsmB)) && r.has(ssmConstPath(layer, "A")));
        if (!canRebuild)
            continue;
        for (int64_t t = range.begin; t < range.end; ++t) {
            Tensor h = stateAfter(t, layer);
            m_store->record(layer, Probe::SsmState, t, h.reshaped({1, h.dim(0), h.dim(1)}));
        }
    }
    for (const char* name : {"A", "D"})
        for (int layer : r.layers())
            if (r.has(ssmConstPath(layer, name)) && !m_store->constant(layer, name).defined())
                m_store->recordConstant(layer, "ssm", name, r.read(ssmConstPath(layer, name)));
    Tensor logits;
    if (r.has("/logits"))
        logits = r.readRows("/logits", range.begin, range.end);
    const std::span<const int32_t> ids(tokens().data() + range.begin, size_t(range.size()));
    m_store->finishTokens(range.begin, ids, logits.defined() ? &logits : nullptr);
}

bool TraceSession::hasRecordedStates() const
{
    const TraceReader& r = m_impl->reader;
    for (int layer : r.layers())
        if (r.has(ssmPath(layer, Probe::SsmState)))
            return true;
    return false;
}

void TraceSession::load(TokenRange range, bool states)
{
    constexpr int64_t kBlock = 1024;
    if (states && hasRecordedStates()) {
        for (int64_t b = range.begin; b < range.end; b += kBlock)
            publish({b, std::min(range.end, b + kBlock)}, true);
        return;
    }
    for (const TokenRange& gap : m_store->missing(range))
        for (int64_t b = gap.begin; b < gap.end; b += kBlock)
            publish({b, std::min(gap.end, b + kBlock)}, false);
}

ScrubView TraceSession::jumpTo(int64_t t)
{
    if (t < 0 || t >= int64_t(tokens().size()))
        throw makeError(ErrorCode::InvalidArgument, "cannot jump to token {}: the trace has tokens 0..{}", t,
                        int64_t(tokens().size()) - 1);
    const int64_t first = std::max<int64_t>(t - 1, 0); // h_{t-1} for the scan stepper
    m_store->setPinned({first, t + 1});
    publish({first, t + 1}, true);
    ScrubView view;
    view.token = t;
    view.frame = m_store->frame(t);
    for (int i = 0; i < m_impl->layers; ++i)
        view.states.push_back(m_store->state(t, i));
    return view;
}

} // namespace archlens

#endif // ARCHLENS_HAVE_HDF5
