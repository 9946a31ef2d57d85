// RunSession: one sequence being run through a model for the scan explorer: the prompt, the
// tokens generated after it, the live model state, a FrameStore of what the views watch, and
// state checkpoints for scrubbing back to any token.
//
// Paths and exactness. The live run is a list of segments, each one forward call in one
// ForwardMode: prefill feeds the prompt in chunks (prefillChunk tokens, the chunk path by
// default, or the recurrent path with prefillMode = Recurrent); step() and generate() feed one
// token through the recurrent path. Segments never cross a multiple of the checkpoint interval
// K, and after the segment that reaches a multiple of K the live state is cloned (a checkpoint).
// Scrubbing and recomputing dropped frames restore the nearest checkpoint <= t and replay the
// recorded segments from there with the same modes, the same boundaries and the same token ids,
// so every replayed value is bit-identical to the value the live run produced (one thread, same
// backend). Consequences:
//   * a session whose every segment is recurrent (prefillMode = Recurrent, then step/generate)
//     shows at every t exactly the state of a full recurrent run from the start;
//   * a session prefilled through the chunk path shows the chunk path's values for the prompt
//     (within 1e-5 relative of the recurrent path's) and the recurrent path's from there on.
// stateAfter() and rewind() inside a chunk segment cut the chunk at t (a shorter chunk), which is
// within 1e-5 of, not bit-identical to, the longer chunk the live run computed.
//
// Thread-safety contract: a RunSession is driven from ONE worker thread; none of its methods
// may be called concurrently. Consumers on other threads (the UI) only touch store(), whose
// reading methods take one short lock and hand out immutable frames (see frame_store.h), and
// the cancel flags they pass in (std::atomic<bool>, checked between chunks of at most
// prefillChunk tokens and between generated tokens).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <span>
#include <vector>

#include "analysis/scan_analysis.h"
#include "backends/backend.h"
#include "models/model.h"
#include "probes/frame_store.h"

namespace archlens {

struct SessionOptions {
    int64_t checkpointInterval = 256;             // K: a state checkpoint every K tokens
    int64_t prefillChunk = 64;                    // tokens per forward call while prefilling
    ForwardMode prefillMode = ForwardMode::Chunk; // Chunk or Recurrent (Auto means Chunk)
    SamplingParams sampling;                      // temperature 0: greedy
    uint64_t seed = 0;                            // sampling seed (reset by setPrompt)
    int64_t stopTokenId = -1;                     // generate() stops after emitting it (-1: never)
    uint64_t memoryCapBytes = FrameStore::kDefaultCapBytes; // frames + states + checkpoints
    // Checkpoints may take at most this share of the cap; past it every other one is dropped
    // and K doubles (replays get longer, memory stays bounded).
    double checkpointShare = 0.25;
    FrameSelection frames = FrameSelection::lightDefaults();
};

// One forward call of the live run (consecutive recurrent tokens are merged into one run:
// feeding them one by one or together is the same computation).
struct Segment {
    int64_t begin = 0, end = 0;
    ForwardMode mode = ForwardMode::Recurrent; // Chunk or Recurrent
};

// Which expression order reproduces token t's scan, given the run's segments (chunk where no
// segment covers t: the CLI records through the chunk path).
analysis::ScanOrder scanOrderAt(const std::vector<Segment>& segments, int64_t t);

// What the views show at one token after a scrub.
struct ScrubView {
    int64_t token = -1;
    FramePtr frame;              // light probes and top-k at the token
    std::vector<StatePtr> states; // per layer: h after the token (E, N)
};

struct RunProgress {
    int64_t done = 0, total = 0; // tokens
};

struct RunOutcome {
    int64_t tokens = 0;     // tokens fed (or generated) by this call
    bool cancelled = false;
};

class RunSession {
public:
    RunSession(Model& model, SessionOptions options = {});
    RunSession(const RunSession&) = delete;
    RunSession& operator=(const RunSession&) = delete;

    Model& model() const { return m_model; }
    const SessionOptions& options() const { return m_opts; }
    FrameStore& store() { return *m_store; }
    const FrameStore& store() const { return *m_store; }
    // The store outlives the session for consumers that hold it (a UI still drawing the last run).
    std::shared_ptr<FrameStore> sharedStore() const { return m_store; }

    // Replaces the token list with `ids` and resets state, frames, checkpoints and the sampler.
    void setPrompt(std::vector<int32_t> ids);
    void setSampling(SamplingParams sampling, uint64_t seed); // applies to the next sampled token
    const std::vector<int32_t>& tokens() const { return m_tokens; }
    int64_t promptLength() const { return m_promptLength; }
    int64_t computedEnd() const { return m_state->position; } // tokens the live state has consumed
    int64_t cursor() const { return m_cursor; }                // the token the views show (-1: none)

    // Feeds the prompt tokens not yet consumed (up to `end`, default all) in chunks of
    // prefillChunk through prefillMode, reporting progress after each chunk and stopping between
    // chunks when *cancel is set (the session stays consistent; call again to resume).
    RunOutcome prefill(const std::function<void(RunProgress)>& progress = {},
                       const std::atomic<bool>* cancel = nullptr, int64_t end = -1);
    // One token forward through the recurrent path: the next prompt token, or, past the prompt,
    // a token sampled from the last logits (SamplingParams + seed). Returns its position.
    int64_t step();
    // Prefills what is left of the prompt, then samples up to n tokens, calling onToken(position,
    // id) after each (return false to stop); stops at stopTokenId or when *cancel is set.
    RunOutcome generate(int64_t n, const std::function<bool(int64_t, int32_t)>& onToken = {},
                        const std::atomic<bool>* cancel = nullptr);

    // Scrub: the views' token becomes t. Inside the computed range the state at t is rebuilt
    // from the nearest checkpoint (see the exactness notes above) and its ssm.state frames (all
    // layers, at t and at t - 1, which the scan stepper shows as h_{t-1}; both pinned) and any
    // dropped light frames between the checkpoint and t are published; t past the
    // computed range but inside the prompt prefills up to it. Error(InvalidArgument) past the
    // known tokens, Error(Cancelled) when *cancel stops the replay.
    ScrubView jumpTo(int64_t t, const std::atomic<bool>* cancel = nullptr);
    // Refills dropped light frames in `range` (and the selection's ssm.state frames there when
    // `states`) by replaying from checkpoints. Returns false when cancelled.
    bool recompute(TokenRange range, bool states, const std::atomic<bool>* cancel = nullptr);
    // Serves the consumers' FrameStore::requestRecompute calls.
    void processRequests(const std::atomic<bool>* cancel = nullptr);

    // A copy of the whole model state after token t (after consuming tokens [0, t]).
    std::unique_ptr<ModelState> stateAfter(int64_t t, const std::atomic<bool>* cancel = nullptr);
    // Drops every token after t: the live state becomes stateAfter(t), checkpoints, segments and
    // frames past t go, and generation continues from t + 1 (the sampler's seed state is kept).
    void rewind(int64_t t);

    // Replays the whole computed range from token 0 through the recorded segments (bit-identical
    // to the live run), sending probes to `sink` (may be null) and each forward call's ids and
    // logits (T, V) to onCall; used to save a session whatever its store has dropped. Returns
    // false when cancelled.
    using CallFn = std::function<void(int64_t begin, std::span<const int32_t> ids, const Tensor& logits)>;
    bool replayAll(ProbeSink* sink, const CallFn& onCall, const std::function<void(RunProgress)>& progress = {},
                   const std::atomic<bool>* cancel = nullptr);

    // A second consumer of the live run's probes beside the store, e.g. the GUI's routing
    // recorder (analysis::RoutingRecorder): it sees every forward call of the live run exactly
    // once (prefill, step, generate, and the prefill a jumpTo past the computed range does), and
    // never a replay (scrubbing, recompute, stateAfter, replayAll), so what it keeps per token
    // is the live run's value and is written once; rewind(t) calls dropTokens(t + 1) so it can
    // forget the tokens that went. The tap is not owned and must outlive the session or be
    // unset (nullptr) first; it is called on the session's thread.
    void setTap(ProbeSink* tap, std::function<void(int64_t end)> dropTokens = {})
    {
        m_tap = tap;
        m_tapDrop = std::move(dropTokens);
    }
    ProbeSink* tap() const { return m_tap; }

    // Checkpoints: positions p (a checkpoint holds the state after tokens [0, p)).
    std::vector<int64_t> checkpointPositions() const;
    const ModelState* checkpoint(int64_t position) const; // null when none at exactly p
    int64_t checkpointInterval() const { return m_interval; }
    uint64_t checkpointBytes() const { return m_checkpointBytes; }
    const std::vector<Segment>& segments() const { return m_segments; }

private:
    void reset();
    // Runs ids [begin, end) through the live state as one segment in `mode`, publishes frames.
    void runSegment(int64_t end, ForwardMode mode);
    void noteSegment(int64_t begin, int64_t end, ForwardMode mode);
    void maybeCheckpoint();
    void thinCheckpoints();
    int64_t segmentLimit(int64_t begin, int64_t want) const; // stops at the next multiple of K
    // Replays from the checkpoint <= from until at least `until` tokens are consumed, recording
    // frames through `window` (null: no frames). Returns the replayed state and the logits of its
    // last token, or a null state if cancelled.
    struct ReplayResult {
        std::unique_ptr<ModelState> state;
        Tensor lastLogits; // (1, V)
    };
    ReplayResult replay(int64_t from, int64_t until, const RecordWindow* window,
                                       const std::atomic<bool>* cancel, bool cutChunks = false);
    std::unique_ptr<ModelState> stateAfterImpl(int64_t t, const std::atomic<bool>* cancel);

    Model& m_model;
    SessionOptions m_opts;
    std::shared_ptr<FrameStore> m_store;
    std::vector<int32_t> m_tokens;
    int64_t m_promptLength = 0;
    std::unique_ptr<ModelState> m_state;
    Tensor m_lastLogits; // (1, V) after the last consumed token
    uint64_t m_rng = 0;
    int64_t m_cursor = -1;
    int64_t m_interval = 256;
    std::vector<Segment> m_segments;
    std::map<int64_t, std::unique_ptr<ModelState>> m_checkpoints;
    uint64_t m_checkpointBytes = 0;
    ProbeSink* m_tap = nullptr;
    std::function<void(int64_t)> m_tapDrop;
};

} // namespace archlens
