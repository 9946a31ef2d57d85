#include "probes/frame_store.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <utility>

namespace archlens {

namespace {

// What the pool hands out for one map node (red-black node header + key/value).
template <class K, class V>
constexpr size_t kNodeBytes = 32 + sizeof(std::pair<const K, V>);
// allocate_shared puts the object and its control block in one block.
constexpr size_t kSharedOverhead = 16;

uint64_t frameBytes(const TokenFrame& f)
{
    return PoolSet::blockBytes(sizeof(TokenFrame) + kSharedOverhead) + f.storage.blockBytes()
        + PoolSet::blockBytes(kNodeBytes<uint64_t, int64_t>);
}

uint64_t stateBytes(const StateFrame& s)
{
    return PoolSet::blockBytes(sizeof(StateFrame) + kSharedOverhead) + s.storage.blockBytes()
        + PoolSet::blockBytes(kNodeBytes<std::pair<int64_t, int>, std::pair<StatePtr, uint64_t>>)
        + PoolSet::blockBytes(kNodeBytes<uint64_t, std::pair<int64_t, int>>);
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
std::vector<TopToken> topOf(const float* row, int64_t V, int k, std::vector<int32_t>& order)
{
    std::vector<TopToken> out;
    if (k <= 0 || V <= 0)
        return out;
    const int64_t kk = std::min<int64_t>(k, V);
    order.resize(size_t(V));
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
    , m_pool(std::make_shared<PoolSet>())
    , m_active(selection)
    , m_selection(std::move(selection))
    , m_capBytes(capBytes)
    , m_states(PoolAllocator<std::pair<const StateKey, StateSlot>>(m_pool))
    , m_frameAges(PoolAllocator<std::pair<const uint64_t, int64_t>>(m_pool))
    , m_stateAges(PoolAllocator<std::pair<const uint64_t, StateKey>>(m_pool))
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

std::vector<StatePtr> FrameStore::states(TokenRange range, int layer) const
{
    std::vector<StatePtr> out(size_t(range.size()));
    std::lock_guard lock(m_mutex);
    for (auto it = m_states.lower_bound({range.begin, layer}); it != m_states.end() && it->first.first < range.end; ++it)
        if (it->first.second == layer)
            out[size_t(it->first.first - range.begin)] = it->second.state;
    return out;
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
    u.slackBytes = m_pool->excessFreeBytes();
    u.usedBytes = usedLocked() + u.slackBytes;
    u.bookkeepingBytes = u.usedBytes - u.slackBytes - m_frameBytes - m_stateBytes - m_reservedBytes;
    u.pooledBytes = m_pool->mappedBytes();
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

// Keeps a few emptied buildings (rows cleared, capacity kept): a frame's rows are assembled in
// them without allocating, so the worker's heap does not grow holes token after token.
void FrameStore::recycle(Building&& b)
{
    constexpr size_t kMaxSpare = 8;
    if (m_spare.size() >= kMaxSpare)
        return;
    for (auto& row : b.rows)
        row.clear();
    m_spare.push_back(std::move(b));
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
            auto s = std::allocate_shared<StateFrame>(PoolAllocator<StateFrame>(m_pool));
            s->token = t;
            s->layer = layer;
            s->E = value.dim(1);
            s->N = value.dim(2);
            s->storage = PooledBlock(m_pool, size_t(rowElems) * sizeof(float));
            auto* h = reinterpret_cast<float*>(s->storage.data());
            std::copy(data + r * rowElems, data + (r + 1) * rowElems, h);
            s->h = {h, size_t(rowElems)};
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
        auto [it, inserted] = m_building.try_emplace(t);
        Building& b = it->second;
        if (inserted && !m_spare.empty()) {
            b = std::move(m_spare.back());
            m_spare.pop_back();
        }
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
    std::vector<int32_t> order;
    const size_t slices = size_t(m_layerCount * kFrameProbeCount);
    for (int64_t r = 0; r < T; ++r) {
        const int64_t t = tokenBegin + r;
        if (skipLight(t))
            continue;
        const std::vector<TopToken> top = t >= firstLogitToken && logitRows > 0
            ? topOf(logits->f32() + (t - firstLogitToken) * V, V, m_active.topK, order)
            : std::vector<TopToken>();
        auto it = m_building.find(t);
        size_t floats = 0;
        if (it != m_building.end())
            for (const auto& row : it->second.rows)
                floats += row.size();
        // one block: [Slice index][TopToken top][float rows], all 4-byte fields
        const size_t indexBytes = slices * sizeof(TokenFrame::Slice);
        const size_t topBytes = top.size() * sizeof(TopToken);
        auto f = std::allocate_shared<TokenFrame>(PoolAllocator<TokenFrame>(m_pool));
        f->token = t;
        f->id = ids[size_t(r)];
        f->storage = PooledBlock(m_pool, indexBytes + topBytes + floats * sizeof(float));
        std::byte* base = f->storage.data();
        auto* index = reinterpret_cast<TokenFrame::Slice*>(base);
        auto* topOut = reinterpret_cast<TopToken*>(base + indexBytes);
        auto* rows = reinterpret_cast<float*>(base + indexBytes + topBytes);
        std::fill(index, index + slices, TokenFrame::Slice{});
        std::copy(top.begin(), top.end(), topOut);
        if (it != m_building.end()) {
            size_t offset = 0;
            for (size_t k = 0; k < it->second.rows.size(); ++k) {
                const auto& row = it->second.rows[k];
                index[k] = {uint32_t(offset), uint32_t(row.size())};
                std::copy(row.begin(), row.end(), rows + offset);
                offset += row.size();
            }
            recycle(std::move(it->second));
            m_building.erase(it);
        }
        f->index = {index, slices};
        f->top = {topOut, top.size()};
        f->data = {rows, floats};
        ready.push_back(std::move(f));
    }
    for (auto& [t, b] : m_building)
        recycle(std::move(b));
    m_building.clear();

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
    for (auto& s : m_buildingStates) {
        const StateKey key{s->token, s->layer};
        dropStateLocked(key);
        StateSlot slot;
        slot.age = m_nextAge++;
        m_stateBytes += stateBytes(*s);
        slot.state = std::move(s);
        m_stateAges.emplace(slot.age, key);
        m_states.emplace(key, std::move(slot));
    }
    m_buildingStates.clear();
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
    // Room for what is resident but not counted (one free slab per block size, the worker's
    // transient buffers): 1/64 of the cap (16 MiB at 1 GiB), or the slabs if larger, never more
    // than 1/32 of the cap.
    const uint64_t reserve = std::min(m_capBytes / 32, std::max(m_capBytes / 64, m_pool->granularityBytes()));
    const uint64_t limit = m_capBytes - reserve;
    const uint64_t used0 = usedLocked() + m_pool->excessFreeBytes();
    if (used0 <= limit)
        return;
    // Drop entries worth the excess. Pooled slack is measured once: it shrinks as new blocks
    // reuse the freed ones, not while dropping.
    const uint64_t target = limit - limit / 50;
    const uint64_t entries0 = m_frameBytes + m_stateBytes;
    const uint64_t toFree = used0 - target;
    auto used = [&] { return target + toFree - std::min(toFree, entries0 - (m_frameBytes + m_stateBytes)); };
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
