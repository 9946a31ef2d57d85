#include "runtime/run_session.h"

#include <algorithm>
#include <cstring>

#include "analysis/moe_analysis.h"

namespace archlens {

namespace {

uint64_t modelStateBytes(const ModelState& s)
{
    uint64_t bytes = 0;
    for (const auto& [name, t] : s.tensors())
        bytes += t.nbytes() + 64; // + allocation bookkeeping
    return bytes;
}

Tensor lastRow(const Tensor& logits)
{
    return logits.rows(logits.dim(0) - 1, logits.dim(0)).clone(); // (1, V)
}

bool cancelled(const std::atomic<bool>* cancel) { return cancel && cancel->load(); }

TokenRange intersect(TokenRange a, TokenRange b) { return {std::max(a.begin, b.begin), std::min(a.end, b.end)}; }

} // namespace

RunSession::RunSession(Model& model, SessionOptions options)
    : m_model(model)
    , m_opts(std::move(options))
{
    if (m_opts.checkpointInterval < 1)
        throw makeError(ErrorCode::InvalidArgument, "checkpoint interval must be at least 1 token, got {}",
                        m_opts.checkpointInterval);
    if (m_opts.prefillChunk < 1)
        throw makeError(ErrorCode::InvalidArgument, "prefill chunk must be at least 1 token, got {}", m_opts.prefillChunk);
    if (m_opts.prefillMode == ForwardMode::Auto)
        m_opts.prefillMode = ForwardMode::Chunk;
    m_store = std::make_shared<FrameStore>(int(m_model.info().layers), m_opts.frames, m_opts.memoryCapBytes);
    reset();
}

void RunSession::reset()
{
    m_state = m_model.newState();
    m_lastLogits = Tensor();
    m_rng = m_opts.seed;
    m_cursor = -1;
    m_interval = m_opts.checkpointInterval;
    m_segments.clear();
    m_checkpoints.clear();
    m_checkpointBytes = 0;
    m_store->clear();
    maybeCheckpoint(); // position 0: the empty state, so every replay has a start
}

void RunSession::setPrompt(std::vector<int32_t> ids)
{
    m_tokens = std::move(ids);
    m_promptLength = int64_t(m_tokens.size());
    reset();
}

void RunSession::setSampling(SamplingParams sampling, uint64_t seed)
{
    m_opts.sampling = sampling;
    m_opts.seed = seed;
    m_rng = seed;
}

analysis::ScanOrder scanOrderAt(const std::vector<Segment>& segments, int64_t t)
{
    auto it = std::upper_bound(segments.begin(), segments.end(), t,
                               [](int64_t v, const Segment& s) { return v < s.begin; });
    if (it == segments.begin())
        return analysis::ScanOrder::Chunk;
    --it;
    if (t >= it->end)
        return analysis::ScanOrder::Chunk;
    return it->mode == ForwardMode::Chunk ? analysis::ScanOrder::Chunk : analysis::ScanOrder::Recurrent;
}

// ---- live run ----

int64_t RunSession::segmentLimit(int64_t begin, int64_t want) const
{
    const int64_t nextMultiple = (begin / m_interval + 1) * m_interval;
    return std::min(want, nextMultiple);
}

void RunSession::noteSegment(int64_t begin, int64_t end, ForwardMode mode)
{
    if (mode == ForwardMode::Recurrent && !m_segments.empty() && m_segments.back().mode == ForwardMode::Recurrent &&
        m_segments.back().end == begin) {
        m_segments.back().end = end;
        return;
    }
    m_segments.push_back({begin, end, mode});
}

void RunSession::runSegment(int64_t end, ForwardMode mode)
{
    const int64_t begin = computedEnd();
    ARCHLENS_ASSERT(begin < end && size_t(end) <= m_tokens.size());
    ARCHLENS_ASSERT(end <= segmentLimit(begin, end), "segment [{}, {}) crosses a checkpoint", begin, end);
    const std::span<const int32_t> ids(m_tokens.data() + begin, size_t(end - begin));
    RecordWindow window;
    window.tokens = {begin, end};
    m_store->beginTokens(window);
    const bool allLogits = m_store->selection().topK > 0;
    analysis::TeeSink tee(m_store.get(), m_tap);
    ProbeSink* sink = m_tap ? static_cast<ProbeSink*>(&tee) : m_store.get();
    Tensor logits = m_model.forward(ids, *m_state, sink, mode, allLogits); // (T or 1, V)
    m_store->finishTokens(begin, ids, &logits);
    m_lastLogits = lastRow(logits);
    noteSegment(begin, end, mode);
    maybeCheckpoint();
}

void RunSession::maybeCheckpoint()
{
    const int64_t p = computedEnd();
    if (p % m_interval != 0 || m_checkpoints.count(p))
        return;
    auto clone = m_state->clone();
    m_checkpointBytes += modelStateBytes(*clone);
    m_checkpoints.emplace(p, std::move(clone));
    thinCheckpoints();
    m_store->setReservedBytes(m_checkpointBytes);
}

// Keeps checkpoints within checkpointShare of the cap by halving their density: K doubles and
// the checkpoints that are not multiples of the new K go (position 0 always stays).
void RunSession::thinCheckpoints()
{
    const auto limit = uint64_t(double(m_opts.memoryCapBytes) * m_opts.checkpointShare);
    while (m_checkpointBytes > limit && m_checkpoints.size() > 1) {
        m_interval *= 2;
        for (auto it = m_checkpoints.begin(); it != m_checkpoints.end();) {
            if (it->first % m_interval != 0) {
                m_checkpointBytes -= modelStateBytes(*it->second);
                it = m_checkpoints.erase(it);
            } else {
                ++it;
            }
        }
    }
}

RunOutcome RunSession::prefill(const std::function<void(RunProgress)>& progress, const std::atomic<bool>* cancel,
                               int64_t end)
{
    const int64_t target = std::min<int64_t>(end < 0 ? int64_t(m_tokens.size()) : end, int64_t(m_tokens.size()));
    const int64_t start = computedEnd();
    RunOutcome out;
    while (computedEnd() < target) {
        if (cancelled(cancel)) {
            out.cancelled = true;
            break;
        }
        const int64_t begin = computedEnd();
        runSegment(segmentLimit(begin, std::min(begin + m_opts.prefillChunk, target)), m_opts.prefillMode);
        out.tokens = computedEnd() - start;
        if (progress)
            progress({computedEnd() - start, target - start});
    }
    if (computedEnd() > 0)
        m_cursor = computedEnd() - 1;
    return out;
}

int64_t RunSession::step()
{
    const int64_t pos = computedEnd();
    if (size_t(pos) >= m_tokens.size()) {
        if (!m_lastLogits.defined())
            throw Error(ErrorCode::InvalidArgument, "cannot generate: the session has no prompt token yet",
                        "", "set a prompt of at least one token");
        m_tokens.push_back(m_model.backend().sample(m_lastLogits, m_opts.sampling, m_rng));
    }
    runSegment(pos + 1, ForwardMode::Recurrent);
    m_cursor = pos;
    return pos;
}

RunOutcome RunSession::generate(int64_t n, const std::function<bool(int64_t, int32_t)>& onToken,
                                const std::atomic<bool>* cancel)
{
    RunOutcome out = prefill({}, cancel);
    if (out.cancelled)
        return out;
    out.tokens = 0;
    for (int64_t i = 0; i < n; ++i) {
        if (cancelled(cancel)) {
            out.cancelled = true;
            break;
        }
        const int64_t t = step();
        ++out.tokens;
        const int32_t id = m_tokens[size_t(t)];
        const bool more = !onToken || onToken(t, id);
        if (!more || id == m_opts.stopTokenId)
            break;
    }
    return out;
}

// ---- replay ----

RunSession::ReplayResult RunSession::replay(int64_t from, int64_t until, const RecordWindow* window,
                                            const std::atomic<bool>* cancel, bool cutChunks)
{
    ARCHLENS_ASSERT(from >= 0 && from < until && until <= computedEnd());
    auto ck = std::prev(m_checkpoints.upper_bound(from));
    std::unique_ptr<ModelState> state = ck->second->clone();
    Tensor lastLogits;
    int64_t pos = ck->first;
    const bool allLogits = m_store->selection().topK > 0;

    auto feed = [&](int64_t end, ForwardMode mode) {
        const std::span<const int32_t> ids(m_tokens.data() + pos, size_t(end - pos));
        const TokenRange call{pos, end};
        const TokenRange rec = window ? intersect(call, window->tokens) : TokenRange{};
        Tensor logits;
        if (rec.empty()) {
            logits = m_model.forward(ids, *state, nullptr, mode, false); // (1, V)
        } else {
            RecordWindow w = *window;
            w.tokens = rec;
            m_store->beginTokens(w);
            logits = m_model.forward(ids, *state, m_store.get(), mode, allLogits);
            m_store->finishTokens(pos, ids, &logits);
        }
        lastLogits = logits;
        pos = end;
    };

    auto seg = std::upper_bound(m_segments.begin(), m_segments.end(), pos,
                                [](int64_t p, const Segment& s) { return p < s.begin; });
    ARCHLENS_ASSERT(seg != m_segments.begin());
    --seg; // the segment containing pos
    for (; seg != m_segments.end() && pos < until; ++seg) {
        if (seg->mode == ForwardMode::Recurrent) {
            const int64_t stop = std::min(seg->end, until);
            while (pos < stop) {
                if (cancelled(cancel))
                    return {};
                feed(std::min(pos + m_opts.prefillChunk, stop), ForwardMode::Recurrent);
            }
        } else {
            ARCHLENS_ASSERT(seg->begin == pos, "chunk segment [{}, {}) replayed from {}", seg->begin, seg->end, pos);
            if (cancelled(cancel))
                return {};
            feed(cutChunks ? std::min(seg->end, until) : seg->end, ForwardMode::Chunk);
        }
    }
    ARCHLENS_ASSERT(pos >= until);
    return {std::move(state), lastRow(lastLogits)};
}

ScrubView RunSession::jumpTo(int64_t t, const std::atomic<bool>* cancel)
{
    if (t < 0 || size_t(t) >= m_tokens.size())
        throw makeError(ErrorCode::InvalidArgument, "cannot jump to token {}: the session has tokens 0..{}", t,
                        int64_t(m_tokens.size()) - 1);
    const int64_t first = std::max<int64_t>(t - 1, 0); // h_{t-1} for the scan stepper
    m_store->setPinned({first, t + 1});
    if (t >= computedEnd() && prefill({}, cancel, t + 1).cancelled)
        throw Error(ErrorCode::Cancelled, fmt::format("jump to token {} cancelled", t));
    m_cursor = t;

    const int layers = m_store->layerCount();
    auto complete = [&] {
        if (!m_store->frame(t))
            return false;
        for (int64_t u = first; u <= t; ++u)
            for (int i = 0; i < layers; ++i)
                if (!m_store->hasState(u, i))
                    return false;
        return true;
    };
    if (!complete()) {
        RecordWindow w;
        w.tokens = {0, t + 1};
        w.forceStates = {first, t + 1};
        w.onlyMissing = true;
        w.selectionStates = false;
        if (!replay(first, t + 1, &w, cancel).state)
            throw Error(ErrorCode::Cancelled, fmt::format("jump to token {} cancelled", t));
    }
    ScrubView view;
    view.token = t;
    view.frame = m_store->frame(t);
    for (int i = 0; i < layers; ++i)
        view.states.push_back(m_store->state(t, i));
    return view;
}

bool RunSession::recompute(TokenRange range, bool states, const std::atomic<bool>* cancel)
{
    range = intersect(range, {0, computedEnd()});
    if (range.empty())
        return true;
    if (!states && m_store->missing(range).empty())
        return true;
    RecordWindow w;
    w.tokens = range;
    w.onlyMissing = true;
    w.selectionStates = states;
    return replay(range.begin, range.end, &w, cancel).state != nullptr;
}

void RunSession::processRequests(const std::atomic<bool>* cancel)
{
    for (const RecomputeRequest& r : m_store->takeRequests())
        if (!recompute(r.tokens, r.states, cancel))
            return;
}

std::unique_ptr<ModelState> RunSession::stateAfterImpl(int64_t t, const std::atomic<bool>* cancel)
{
    if (t < 0 || t >= computedEnd())
        throw makeError(ErrorCode::InvalidArgument, "no state after token {}: tokens 0..{} have been computed", t,
                        computedEnd() - 1);
    if (t == computedEnd() - 1)
        return m_state->clone();
    return replay(t, t + 1, nullptr, cancel, /*cutChunks=*/true).state;
}

std::unique_ptr<ModelState> RunSession::stateAfter(int64_t t, const std::atomic<bool>* cancel)
{
    auto s = stateAfterImpl(t, cancel);
    if (!s)
        throw Error(ErrorCode::Cancelled, fmt::format("rebuilding the state after token {} cancelled", t));
    return s;
}

void RunSession::rewind(int64_t t)
{
    if (t < 0 || t >= computedEnd())
        throw makeError(ErrorCode::InvalidArgument, "cannot rewind to token {}: tokens 0..{} have been computed", t,
                        computedEnd() - 1);
    if (t == computedEnd() - 1)
        return;
    ReplayResult r = replay(t, t + 1, nullptr, nullptr, /*cutChunks=*/true);
    int64_t keepFramesBelow = t + 1;
    while (!m_segments.empty() && m_segments.back().begin > t)
        m_segments.pop_back();
    Segment& last = m_segments.back();
    if (last.end > t + 1) {
        if (last.mode == ForwardMode::Chunk)
            keepFramesBelow = last.begin; // the cut chunk computes slightly different values
        last.end = t + 1;
    }
    for (auto it = m_checkpoints.upper_bound(t + 1); it != m_checkpoints.end();) {
        m_checkpointBytes -= modelStateBytes(*it->second);
        it = m_checkpoints.erase(it);
    }
    m_store->setReservedBytes(m_checkpointBytes);
    m_store->truncate(keepFramesBelow);
    if (m_tapDrop)
        m_tapDrop(t + 1);
    m_tokens.resize(size_t(t + 1));
    m_promptLength = std::min(m_promptLength, t + 1);
    m_state = std::move(r.state);
    m_lastLogits = std::move(r.lastLogits);
    m_cursor = std::min(m_cursor, t);
}

bool RunSession::replayAll(ProbeSink* sink, const CallFn& onCall, const std::function<void(RunProgress)>& progress,
                           const std::atomic<bool>* cancel)
{
    std::unique_ptr<ModelState> state = m_checkpoints.at(0)->clone();
    const int64_t total = computedEnd();
    int64_t pos = 0;
    auto feed = [&](int64_t end, ForwardMode mode) {
        const std::span<const int32_t> ids(m_tokens.data() + pos, size_t(end - pos));
        Tensor logits = m_model.forward(ids, *state, sink, mode, /*allLogits=*/true); // (T, V)
        if (onCall)
            onCall(pos, ids, logits);
        pos = end;
        if (progress)
            progress({pos, total});
    };
    for (const Segment& seg : m_segments) {
        ARCHLENS_ASSERT(seg.begin == pos);
        if (seg.mode == ForwardMode::Chunk) {
            if (cancelled(cancel))
                return false;
            feed(seg.end, ForwardMode::Chunk);
            continue;
        }
        while (pos < seg.end) {
            if (cancelled(cancel))
                return false;
            feed(std::min(pos + m_opts.prefillChunk, seg.end), ForwardMode::Recurrent);
        }
    }
    return true;
}

std::vector<int64_t> RunSession::checkpointPositions() const
{
    std::vector<int64_t> out;
    for (const auto& [p, s] : m_checkpoints)
        out.push_back(p);
    return out;
}

const ModelState* RunSession::checkpoint(int64_t position) const
{
    auto it = m_checkpoints.find(position);
    return it == m_checkpoints.end() ? nullptr : it->second.get();
}

} // namespace archlens
