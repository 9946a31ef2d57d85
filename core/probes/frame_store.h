// FrameStore: the bounded store between a running session (producer, one worker thread) and
// its views (consumers, usually the UI thread). It is the ProbeSink a session's model writes
// into, and keeps, per token, a frame of the light probes a consumer asked for (ssm.x, delta,
// B, C, state_norm, y, gate per layer) plus the model's top-k next-token predictions, and,
// separately, heavy ssm.state frames (E, N) for the tokens and layers asked for.
//
// Memory: everything it holds is counted against a cap (default 1 GiB, adjustable while
// running; the session adds its state checkpoints as "reserved" bytes). Over the cap it drops
// ssm.state frames first, oldest inserted first, then light frames, oldest first, down to 98% of
// the cap (so a run at the cap drops in batches). What counts is what stays resident: frames,
// states, bookkeeping, reserved bytes, and pooled memory left free by drops, with 1/64 of the
// cap (at most 1/32) kept free for what no counter sees (one free slab per block size, the
// worker's transient buffers); the tokens
// the views show (the pinned range) are never dropped, nor are the checkpoints. Dropped frames
// can be recomputed by the session (RunSession::recompute / processRequests) from the nearest
// checkpoint, bit-identical to what was dropped.
//
// Thread-safety contract:
//  * Producer side (beginTokens, wants, record, recordConstant, finishTokens, clear, truncate,
//    setReservedBytes, setPinned): the session's worker thread only. Partially built frames
//    live there and are invisible to consumers until finishTokens publishes them.
//  * Consumer side (frame, frames, state, takeNewFrames, missing, usage, revision, constant,
//    selection, setSelection, setCapBytes, requestRecompute): any thread. Each call takes one
//    short internal lock, copies shared pointers out and releases it; the frames are immutable
//    once published, so a consumer reads them without the lock for as long as it holds the
//    pointer (a held pointer keeps its frame's memory alive even after the store dropped it).
//  * setSelection takes effect at the next beginTokens, never in the middle of a forward call.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <vector>

#include "probes/block_pool.h"
#include "probes/probes.h"
#include "tensor/tensor.h"

namespace archlens {

// The light per-token probes a frame can hold, in slot order.
constexpr std::array<Probe, 7> kFrameProbes = {Probe::SsmX,         Probe::SsmDelta, Probe::SsmB,   Probe::SsmC,
                                               Probe::SsmStateNorm, Probe::SsmY,     Probe::SsmGate};
constexpr int kFrameProbeCount = int(kFrameProbes.size());
int frameProbeSlot(Probe p); // index into kFrameProbes, -1 for probes a frame does not hold

// [begin, end) along the token axis.
struct TokenRange {
    int64_t begin = 0, end = 0;
    bool empty() const { return end <= begin; }
    bool contains(int64_t t) const { return t >= begin && t < end; }
    bool intersects(const TokenRange& o) const { return begin < o.end && o.begin < end; }
    int64_t size() const { return empty() ? 0 : end - begin; }
    bool operator==(const TokenRange&) const = default;
};

struct TopToken {
    int32_t id = -1;
    float logit = 0.f;
    float probability = 0.f; // softmax over the whole vocabulary
};

// What one token's forward produced. Published frames are immutable. The frame object, its
// index, its top-k and its recorded rows live in pooled blocks (block_pool.h: dropping and
// refilling frames for hours must not fragment memory).
struct TokenFrame {
    int64_t token = -1; // absolute position in the session
    int32_t id = -1;    // the token id at that position
    std::span<const TopToken> top; // the model's predictions for token + 1, best first

    // The probe's values for this token ((E) or (N)); empty when it was not recorded.
    std::span<const float> probe(int layer, Probe p) const;
    bool has(int layer, Probe p) const { return !probe(layer, p).empty(); }
    int layerCount() const { return int(index.size() / kFrameProbeCount); }

    struct Slice {
        uint32_t offset = 0, size = 0;
    };
    std::span<const float> data;  // every recorded row, back to back
    std::span<const Slice> index;  // (layer, slot) -> slice of data
    PooledBlock storage;           // owns top, index and data
};

// h after one token in one layer, (E, N) row-major.
struct StateFrame {
    int64_t token = -1;
    int layer = -1;
    int64_t E = 0, N = 0;
    std::span<const float> h; // (E, N)
    PooledBlock storage;      // owns h
};

using FramePtr = std::shared_ptr<const TokenFrame>;
using StatePtr = std::shared_ptr<const StateFrame>;

// What a consumer asks the store to keep.
struct FrameSelection {
    // Light probes and their layers (empty layers = all). Adding Probe::SsmState turns on
    // state frames for these layers, at the tokens in stateTokens.
    ProbeSelection probes;
    std::vector<TokenRange> stateTokens; // empty: every token
    int topK = 5;                        // predictions kept per token (0: none)

    // Every light probe of every layer, no state frames, top-5.
    static FrameSelection lightDefaults();
};

struct FrameStoreUsage {
    uint64_t capBytes = 0;
    uint64_t usedBytes = 0;     // frames + states + reserved + bookkeeping + slack
    uint64_t frameBytes = 0;    // light frames (payload and bookkeeping, approximately)
    uint64_t stateBytes = 0;    // ssm.state frames
    uint64_t reservedBytes = 0; // the session's checkpoints
    uint64_t bookkeepingBytes = 0; // the token index and the new-frame list
    uint64_t slackBytes = 0;    // free pooled memory beyond one slab per block size (see block_pool.h)
    uint64_t pooledBytes = 0;   // memory mapped for the store's blocks (live and free, any holder)
    int64_t frames = 0, states = 0;
    int64_t droppedFrames = 0, droppedStates = 0; // evicted so far
};

// How the producer's next forward call should be recorded (set by the session).
struct RecordWindow {
    TokenRange tokens;          // rows outside are ignored
    TokenRange forceStates;     // ssm.state of every layer is kept here, whatever the selection
    bool onlyMissing = false;   // replay: skip tokens whose frame is already published
    bool selectionStates = true; // keep the ssm.state frames the selection asks for
};

// A consumer's request to refill dropped frames (served by the session's worker).
struct RecomputeRequest {
    TokenRange tokens;
    bool states = false; // also the ssm.state frames the selection asks for in that range
};

class FrameStore final : public ProbeSink {
public:
    static constexpr uint64_t kDefaultCapBytes = uint64_t(1) << 30;

    FrameStore(int layerCount, FrameSelection selection = FrameSelection::lightDefaults(),
               uint64_t capBytes = kDefaultCapBytes);

    // ---- consumers: any thread, one short lock per call ----
    FramePtr frame(int64_t token) const;                          // null when absent
    std::vector<FramePtr> frames(TokenRange range) const;         // one per token, null where absent
    StatePtr state(int64_t token, int layer) const;               // null when absent
    std::vector<StatePtr> states(TokenRange range, int layer) const; // one per token, null where absent
    std::vector<FramePtr> takeNewFrames();                        // published since the last call, in order
    std::vector<TokenRange> missing(TokenRange range) const;      // gaps without a light frame
    bool hasState(int64_t token, int layer) const;
    FrameStoreUsage usage() const;
    uint64_t revision() const { return m_revision.load(); }      // bumped on every publish or drop
    int64_t publishedEnd() const;                                 // 1 + the highest token published
    Tensor constant(int layer, const std::string& name) const;    // "A" (E, N), "D" (E); undefined if absent
    int layerCount() const { return m_layerCount; }
    FrameSelection selection() const;
    void setSelection(FrameSelection selection);                  // applies from the next forward call
    void setCapBytes(uint64_t capBytes);                          // evicts at once when lowered
    void requestRecompute(RecomputeRequest request);
    std::vector<RecomputeRequest> takeRequests();

    // ---- producer: the session's worker thread ----
    void beginTokens(const RecordWindow& window);
    bool wants(int layer, Probe p) const override;
    void record(int layer, Probe p, int64_t tokenBegin, const Tensor& value) override;
    void recordConstant(int layer, std::string_view group, std::string_view name, const Tensor& value) override;
    // Publishes the frames of tokens [tokenBegin, tokenBegin + ids.size()) with their ids and, when
    // logits (T, V) are given, their top-k predictions; then evicts down to the cap.
    void finishTokens(int64_t tokenBegin, std::span<const int32_t> ids, const Tensor* logits);
    void setReservedBytes(uint64_t bytes);
    void setPinned(TokenRange range); // never evicted (the token the views show)
    void truncate(int64_t end);       // drops every frame and state at tokens >= end
    void clear();

private:
    struct FrameSlot {
        FramePtr frame;
        uint64_t age = 0;
        uint64_t bytes = 0;
    };
    struct StateSlot {
        StatePtr state;
        uint64_t age = 0;
    };
    using StateKey = std::pair<int64_t, int>;

    bool stateWanted(int layer, int64_t token) const;
    uint64_t usedLocked() const;
    bool skipLight(int64_t token) const;
    void evictLocked();
    void dropFrameLocked(int64_t token);
    void dropStateLocked(const StateKey& key);
    void bumpRevision() { m_revision.fetch_add(1); }

    const int m_layerCount;
    const std::shared_ptr<PoolSet> m_pool; // frames, states and the maps' nodes
    template <class K, class V>
    using PoolMap = std::map<K, V, std::less<K>, PoolAllocator<std::pair<const K, V>>>;

    // worker-only
    FrameSelection m_active; // selection frozen for the current forward call
    RecordWindow m_window;
    struct Building {
        std::vector<std::vector<float>> rows; // (layer, slot)
    };
    std::map<int64_t, Building> m_building;
    std::vector<Building> m_spare; // emptied buildings whose row capacity is reused (no heap churn)
    void recycle(Building&& b);
    std::vector<std::shared_ptr<StateFrame>> m_buildingStates; // reused; cleared after each call
    std::vector<bool> m_present; // onlyMissing: which window tokens were already published

    mutable std::mutex m_mutex; // guards everything below
    FrameSelection m_selection;
    uint64_t m_capBytes;
    uint64_t m_reservedBytes = 0;
    uint64_t m_frameBytes = 0, m_stateBytes = 0;
    int64_t m_frameCount = 0;
    int64_t m_droppedFrames = 0, m_droppedStates = 0;
    uint64_t m_nextAge = 1;
    std::vector<FrameSlot> m_frames; // index = token
    PoolMap<StateKey, StateSlot> m_states;
    PoolMap<uint64_t, int64_t> m_frameAges;  // age -> token
    PoolMap<uint64_t, StateKey> m_stateAges; // age -> (token, layer)
    std::vector<std::pair<int64_t, uint64_t>> m_new; // (token, age) published since takeNewFrames
    std::map<std::pair<int, std::string>, Tensor> m_constants;
    std::vector<RecomputeRequest> m_requests;
    TokenRange m_pinned;
    std::atomic<uint64_t> m_revision{0};
};

} // namespace archlens
