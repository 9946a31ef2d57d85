#include "probes/frame_store.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <utility>

namespace archlens {

namespace {

// Bookkeeping bytes counted per heap block on top of its payload (malloc header, vector and
// shared_ptr control block): enough that the count tracks resident memory, not exact.
constexpr uint64_t kBlockOverhead = 32;
// Per entry in the age and state maps (red-black tree node + key + malloc header).
constexpr uint64_t kMapNodeBytes = 80;

uint64_t frameBytes(const TokenFrame& f)
{
    return sizeof(TokenFrame) + 2 * kBlockOverhead + kMapNodeBytes            // frame + control block, age map
        + f.top.capacity() * sizeof(TopToken) + kBlockOverhead                 //
        + f.data.capacity() * sizeof(float) + kBlockOverhead                   //
        + f.index.capacity() * sizeof(TokenFrame::Slice) + kBlockOverhead;     //
}

uint64_t stateBytes(const StateFrame& s)
{
    return sizeof(StateFrame) + 3 * kBlockOverhead + 2 * kMapNodeBytes + s.h.capacity() * sizeof(float);
}

bool inRanges(const std::vector<TokenRange>& ranges, int64_t t)
{
    if (ranges.empty())
        return true;
    return std::any_of(ranges.begin(), ranges.end(), [&](const TokenRange& r) { return r.contains(t); });
}

bool rangesIntersect(const std::vector<TokenRange>& ranges, const TokenRange& r)
{
    if (ranges.empty())
        return true;
    return std::any_of(ranges.begin(), ranges.end(), [&](const TokenRange& q) { return q.intersects(r); });
}

// Top-k of one logits row by logit (ties: lower id first), with softmax probabilities.
std::vector<TopToken> topOf(const float* row, int64_t V, int k)
{
    std::vector<TopToken> out;
    if (k <= 0 || V <= 0)
        return out;
    const int64_t kk = std::min<int64_t>(k, V);
    std::vector<int32_t> order(static_cast<size_t>(V));
    std::iota(order.begin(), order.end(), 0);
    std::partial_sort(order.begin(), order.begin() + kk, order.end(), [&](int32_t a, int32_t b) {
        return row[a] > row[b] || (row[a] == row[b] && a < b);
    });
    const double maxLogit = row[order[0]];
    double sum = 0;
    for (int64_t i = 0; i < V; ++i)
        sum += std::exp(double(row[i]) - maxLogit);
    for (int64_t j = 0; j < kk; ++j) {
        const int32_t id = order[size_t(j)];
        out.push_back({id, row[id], float(std::exp(double(row[id]) - maxLogit) / sum)});
    }
    return out;
}

} // namespace

int frameProbeSlot(Probe p)
{
    for (int i = 0; i < kFrameProbeCount; ++i)
        if (kFrameProbes[size_t(i)] == p)
            return i;
    return -1;
}

std::span<const float> TokenFrame::probe(int layer, Probe p) const
{
    const int slot = frameProbeSlot(p);
    if (slot < 0 || layer < 0 || layer >= layerCount())
        return {};
    const Slice s = index[size_t(layer * kFrameProbeCount + slot)];
    return std::span<const float>(data).subspan(s.offset, s.size);
}

FrameSelection FrameSelection::lightDefaults()
{
    FrameSelection s;
    for (Probe p : kFrameProbes)
        s.probes.probes.insert(p);
    return s;
}

FrameStore::FrameStore(int layerCount, FrameSelection selection, uint64_t capBytes)
    : m_layerCount(layerCount)
    , m_active(selection)
    , m_selection(std::move(selection))
    , m_capBytes(capBytes)
{
    ARCHLENS_ASSERT(layerCount > 0);
}

// ---- consumers ----

FramePtr FrameStore::frame(int64_t token) const
{
    std::lock_guard lock(m_mutex);
    if (token < 0 || size_t(token) >= m_frames.size())
        return nullptr;
    return m_frames[size_t(token)].frame;
}

std::vector<FramePtr> FrameStore::frames(TokenRange range) const
{
    std::vector<FramePtr> out;
    if (range.empty())
        return out;
    out.reserve(size_t(range.size()));
    std::lock_guard lock(m_mutex);
    for (int64_t t = range.begin; t < range.end; ++t)
        out.push_back(t >= 0 && size_t(t) < m_frames.size() ? m_frames[size_t(t)].frame : nullptr);
    return out;
}

StatePtr FrameStore::state(int64_t token, int layer) const
{
    std::lock_guard lock(m_mutex);
    auto it = m_states.find({token, layer});
    return it == m_states.end() ? nullptr : it->second.state;
}

bool FrameStore::hasState(int64_t token, int layer) const
{
    std::lock_guard lock(m_mutex);
    return m_states.count({token, layer}) > 0;
}

std::vector<FramePtr> FrameStore::takeNewFrames()
{
    std::lock_guard lock(m_mutex);
    std::vector<FramePtr> out;
    out.reserve(m_new.size());
    for (const auto& [token, age] : m_new)
        if (size_t(token) < m_frames.size() && m_frames[size_t(token)].frame && m_frames[size_t(token)].age == age)
            out.push_back(m_frames[size_t(token)].frame);
    m_new.clear();
    return out;
}

std::vector<TokenRange> FrameStore::missing(TokenRange range) const
{
    std::vector<TokenRange> gaps;
    std::lock_guard lock(m_mutex);
    for (int64_t t = std::max<int64_t>(range.begin, 0); t < range.end; ++t) {
        const bool present = size_t(t) < m_frames.size() && m_frames[size_t(t)].frame;
        if (present)
            continue;
        if (!gaps.empty() && gaps.back().end == t)
            gaps.back().end = t + 1;
        else
            gaps.push_back({t, t + 1});
    }
    return gaps;
}

FrameStoreUsage FrameStore::usage() const
{
    std::lock_guard lock(m_mutex);
    FrameStoreUsage u;
    u.capBytes = m_capBytes;
    u.frameBytes = m_frameBytes;
    u.stateBytes = m_stateBytes;
    u.reservedBytes = m_reservedBytes;
    u.usedBytes = usedLocked();
    u.bookkeepingBytes = u.usedBytes - m_frameBytes - m_stateBytes - m_reservedBytes;
    u.frames = m_frameCount;
    u.states = int64_t(m_states.size());
    u.droppedFrames = m_droppedFrames;
    u.droppedStates = m_droppedStates;
    return u;
}

int64_t FrameStore::publishedEnd() const
{
    std::lock_guard lock(m_mutex);
    for (size_t t = m_frames.size(); t > 0; --t)
        if (m_frames[t - 1].frame)
            return int64_t(t);
    return 0;
}

Tensor FrameStore::constant(int layer, const std::string& name) const
{
    std::lock_guard lock(m_mutex);
    auto it = m_constants.find({layer, name});
    return it == m_constants.end() ? Tensor() : it->second;
}

FrameSelection FrameStore::selection() const
{
    std::lock_guard lock(m_mutex);
    return m_selection;
}

void FrameStore::setSelection(FrameSelection selection)
{
    std::lock_guard lock(m_mutex);
    m_selection = std::move(selection);
}

void FrameStore::setCapBytes(uint64_t capBytes)
{
    std::lock_guard lock(m_mutex);
    m_capBytes = capBytes;
    evictLocked();
}

void FrameStore::requestRecompute(RecomputeRequest request)
{
    std::lock_guard lock(m_mutex);
    m_requests.push_back(request);
}

std::vector<RecomputeRequest> FrameStore::takeRequests()
{
    std::lock_guard lock(m_mutex);
    return std::exchange(m_requests, {});
}

// ---- producer ----

void FrameStore::beginTokens(const RecordWindow& window)
{
    m_window = window;
    m_building.clear();
    m_buildingStates.clear();
    m_present.assign(size_t(window.onlyMissing ? window.tokens.size() : 0), false);
    std::lock_guard lock(m_mutex);
    m_active = m_selection;
    for (int64_t t = window.tokens.begin; window.onlyMissing && t < window.tokens.end; ++t)
        m_present[size_t(t - window.tokens.begin)] = t >= 0 && size_t(t) < m_frames.size() && m_frames[size_t(t)].frame;
}

bool FrameStore::skipLight(int64_t token) const
{
    return !m_window.tokens.contains(token)
        || (m_window.onlyMissing && m_present[size_t(token - m_window.tokens.begin)]);
}

bool FrameStore::stateWanted(int layer, int64_t token) const
{
    if (m_window.forceStates.contains(token))
        return true;
    return m_window.selectionStates && m_active.probes.wants(layer, Probe::SsmState)
        && inRanges(m_active.stateTokens, token);
}

bool FrameStore::wants(int layer, Probe p) const
{
    if (p == Probe::SsmState) {
        if (m_window.forceStates.intersects(m_window.tokens))
            return true;
        return m_window.selectionStates && m_active.probes.wants(layer, Probe::SsmState)
            && rangesIntersect(m_active.stateTokens, m_window.tokens);
    }
    return frameProbeSlot(p) >= 0 && m_active.probes.wants(layer, p);
}

void FrameStore::record(int layer, Probe p, int64_t tokenBegin, const Tensor& value)
{
    if (!value.defined() || value.dtype() != DType::F32 || value.rank() < 1 || layer < 0 || layer >= m_layerCount)
        return;
    const int64_t T = value.dim(0);
    const int64_t rowElems = T > 0 ? value.numel() / T : 0;
    const float* data = value.f32();

    if (p == Probe::SsmState) {
        if (value.rank() != 3)
            return;
        for (int64_t r = 0; r < T; ++r) {
            const int64_t t = tokenBegin + r;
            if (!m_window.tokens.contains(t) || !stateWanted(layer, t))
                continue;
            auto s = std::make_shared<StateFrame>();
            s->token = t;
            s->layer = layer;
            s->E = value.dim(1);
            s->N = value.dim(2);
            s->h.assign(data + r * rowElems, data + (r + 1) * rowElems);
            m_buildingStates.push_back(std::move(s));
        }
        return;
    }

    const int slot = frameProbeSlot(p);
    if (slot < 0 || !m_active.probes.wants(layer, p))
        return;
    for (int64_t r = 0; r < T; ++r) {
        const int64_t t = tokenBegin + r;
        if (skipLight(t))
            continue;
        Building& b = m_building[t];
        if (b.rows.empty())
            b.rows.resize(size_t(m_layerCount * kFrameProbeCount));
        b.rows[size_t(layer * kFrameProbeCount + slot)].assign(data + r * rowElems, data + (r + 1) * rowElems);
    }
}

void FrameStore::recordConstant(int layer, std::string_view group, std::string_view name, const Tensor& value)
{
    std::lock_guard lock(m_mutex);
    auto key = std::make_pair(layer, std::string(name));
    if (group == "ssm" && !m_constants.count(key))
        m_constants.emplace(std::move(key), value.clone());
}

void FrameStore::finishTokens(int64_t tokenBegin, std::span<const int32_t> ids, const Tensor* logits)
{
    const int64_t T = int64_t(ids.size());
    const int64_t V = logits && logits->defined() ? logits->dim(-1) : 0;
    const int64_t logitRows = V > 0 ? logits->numel() / V : 0;
    // the rows of logits line up with the last logitRows tokens (allLogits off gives one row)
    const int64_t firstLogitToken = tokenBegin + T - logitRows;

    std::vector<std::shared_ptr<TokenFrame>> ready;
    for (int64_t r = 0; r < T; ++r) {
        const int64_t t = tokenBegin + r;
        if (skipLight(t))
            continue;
        auto f = std::make_shared<TokenFrame>();
        f->token = t;
        f->index.resize(size_t(m_layerCount * kFrameProbeCount));
        if (auto it = m_building.find(t); it != m_building.end()) {
            size_t total = 0;
            for (const auto& row : it->second.rows)
                total += row.size();
            f->data.reserve(total);
            for (size_t k = 0; k < it->second.rows.size(); ++k) {
                const auto& row = it->second.rows[k];
                f->index[k] = {uint32_t(f->data.size()), uint32_t(row.size())};
                f->data.insert(f->data.end(), row.begin(), row.end());
            }
            m_building.erase(it);
        }
        f->id = ids[size_t(r)];
        if (t >= firstLogitToken && logitRows > 0)
            f->top = topOf(logits->f32() + (t - firstLogitToken) * V, V, m_active.topK);
        ready.push_back(std::move(f));
    }
    m_building.clear();
    auto states = std::exchange(m_buildingStates, {});

    std::lock_guard lock(m_mutex);
    for (auto& f : ready) {
        const auto t = size_t(f->token);
        if (m_window.onlyMissing && t < m_frames.size() && m_frames[t].frame)
            continue;
        if (t >= m_frames.size())
            m_frames.resize(t + 1);
        dropFrameLocked(int64_t(t));
        FrameSlot& slot = m_frames[t];
        slot.bytes = frameBytes(*f);
        slot.age = m_nextAge++;
        slot.frame = std::move(f);
        m_frameAges.emplace(slot.age, int64_t(t));
        m_frameBytes += slot.bytes;
        ++m_frameCount;
        m_new.emplace_back(int64_t(t), slot.age);
    }
    if (m_new.size() > 2 * size_t(m_frameCount) + 1024) // nobody takes them: forget the dropped ones
        std::erase_if(m_new, [&](const auto& e) {
            return size_t(e.first) >= m_frames.size() || m_frames[size_t(e.first)].age != e.second;
        });
    for (auto& s : states) {
        const StateKey key{s->token, s->layer};
        dropStateLocked(key);
        StateSlot slot;
        slot.age = m_nextAge++;
        m_stateBytes += stateBytes(*s);
        slot.state = std::move(s);
        m_stateAges.emplace(slot.age, key);
        m_states.emplace(key, std::move(slot));
    }
    evictLocked();
    bumpRevision();
}

void FrameStore::setReservedBytes(uint64_t bytes)
{
    std::lock_guard lock(m_mutex);
    m_reservedBytes = bytes;
    evictLocked();
}

void FrameStore::setPinned(TokenRange range)
{
    std::lock_guard lock(m_mutex);
    m_pinned = range;
}

void FrameStore::truncate(int64_t end)
{
    std::lock_guard lock(m_mutex);
    for (int64_t t = std::max<int64_t>(end, 0); size_t(t) < m_frames.size(); ++t)
        dropFrameLocked(t);
    if (size_t(std::max<int64_t>(end, 0)) < m_frames.size())
        m_frames.resize(size_t(std::max<int64_t>(end, 0)));
    while (!m_states.empty() && std::prev(m_states.end())->first.first >= end)
        dropStateLocked(std::prev(m_states.end())->first);
    bumpRevision();
}

void FrameStore::clear()
{
    m_building.clear();
    m_buildingStates.clear();
    std::lock_guard lock(m_mutex);
    std::vector<FrameSlot>().swap(m_frames); // release the capacity too: it is counted
    m_states.clear();
    m_frameAges.clear();
    m_stateAges.clear();
    std::vector<std::pair<int64_t, uint64_t>>().swap(m_new);
    m_constants.clear();
    m_requests.clear();
    m_frameBytes = m_stateBytes = 0;
    m_frameCount = 0;
    m_pinned = {};
    bumpRevision();
}

void FrameStore::dropFrameLocked(int64_t token)
{
    if (token < 0 || size_t(token) >= m_frames.size())
        return;
    FrameSlot& slot = m_frames[size_t(token)];
    if (!slot.frame)
        return;
    m_frameAges.erase(slot.age);
    m_frameBytes -= slot.bytes;
    --m_frameCount;
    slot = FrameSlot{};
}

void FrameStore::dropStateLocked(const StateKey& key)
{
    auto it = m_states.find(key);
    if (it == m_states.end())
        return;
    m_stateAges.erase(it->second.age);
    m_stateBytes -= stateBytes(*it->second.state);
    m_states.erase(it);
}

uint64_t FrameStore::usedLocked() const
{
    return m_frameBytes + m_stateBytes + m_reservedBytes + m_frames.capacity() * sizeof(FrameSlot)
        + m_new.capacity() * sizeof(m_new[0]);
}

// States first (they are 2N times a light frame's per-layer bytes), oldest inserted first, then
// light frames; the pinned range stays. Once over the cap it frees down to 98% of it, so a run
// at the cap drops in batches instead of on every token. Stops when only pinned entries and
// reserved bytes remain.
void FrameStore::evictLocked()
{
    if (usedLocked() <= m_capBytes)
        return;
    const uint64_t target = m_capBytes - m_capBytes / 50;
    auto used = [&] { return usedLocked(); };
    bool dropped = false;
    for (auto it = m_stateAges.begin(); used() > target && it != m_stateAges.end();) {
        const StateKey key = it->second;
        ++it;
        if (m_pinned.contains(key.first))
            continue;
        dropStateLocked(key);
        ++m_droppedStates;
        dropped = true;
    }
    for (auto it = m_frameAges.begin(); used() > target && it != m_frameAges.end();) {
        const int64_t token = it->second;
        ++it;
        if (m_pinned.contains(token))
            continue;
        dropFrameLocked(token);
        ++m_droppedFrames;
        dropped = true;
    }
    if (dropped)
        bumpRevision();
}

} // namespace archlens
