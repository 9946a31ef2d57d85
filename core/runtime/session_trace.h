// Sessions to and from HDF5 traces (schema in formats/trace.h and README "Trace files").
//
// saveSessionTrace replays the session's whole computed range from token 0 through its recorded
// segments (so the file holds exactly what the live run computed, whatever the FrameStore has
// dropped) into a TraceWriter, adds its checkpoints as /checkpoints/{t}/... and its segments as
// /session/segments, and renames the file into place only when complete.
//
// TraceSession opens a trace as a read-only, replayable session: no model is needed. Light
// frames (and top-k when /logits is present) are read into a FrameStore on demand, the same
// store type a live RunSession fills, so views draw both alike; the state h after any token is
// read from ssm/state when recorded, else rebuilt from the nearest checkpoint (or zeros) by the
// scan itself from x, Δ, B and A, using each segment's expression order, which reproduces the
// live run's states bit for bit. Like RunSession, it is driven from one worker thread; consumers
// read its store() from any thread.
//
// Both need HDF5: without ARCHLENS_HDF5 they throw Error(Unsupported).
#pragma once

#include <atomic>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "analysis/scan_analysis.h"
#include "formats/trace.h"
#include "runtime/run_session.h"

namespace archlens {

struct SessionTraceOptions {
    // prompt, modelPath, revision as the caller knows them; model_type, architecture, backend,
    // weight_dtype, compute_dtype, prompt_length and seed are filled from the session when empty.
    TraceMeta meta;
    std::vector<std::string> tokenText; // one per token; empty: "#<id>"
    // Which probes to write; default: the session's FrameSelection, with ssm.state only when it
    // asks for every token (a trace's ssm/state has one row per token).
    std::optional<ProbeSelection> probes;
    bool logits = true;      // /logits [T, V]
    bool checkpoints = true; // /checkpoints/{t}/...
};

// Error(Cancelled) when *cancel stops it (no file is left behind), Error(Io) for the file.
void saveSessionTrace(RunSession& session, const std::filesystem::path& path, const SessionTraceOptions& options = {},
                      const std::function<void(RunProgress)>& progress = {}, const std::atomic<bool>* cancel = nullptr);

class TraceSession {
public:
    explicit TraceSession(const std::filesystem::path& path, uint64_t capBytes = FrameStore::kDefaultCapBytes);
    ~TraceSession();
    TraceSession(const TraceSession&) = delete;
    TraceSession& operator=(const TraceSession&) = delete;

    const TraceReader& reader() const;
    const TraceMeta& meta() const;
    const std::vector<int32_t>& tokens() const;
    const std::vector<std::string>& tokenText() const;
    int layerCount() const;
    FrameStore& store() { return *m_store; }
    std::shared_ptr<FrameStore> sharedStore() const { return m_store; }
    const std::vector<Segment>& segments() const { return m_segments; } // empty for traces of the CLI
    std::vector<int64_t> checkpointPositions() const { return m_checkpoints; }

    // Publishes the light frames of `range` that the store lacks; with `states`, also every
    // layer's h at those tokens when the trace recorded ssm/state (rebuilding them through the
    // scan would cost a replay per token; jumpTo does that for one token).
    void load(TokenRange range, bool states = false);
    bool hasRecordedStates() const;
    // The views' token becomes t: its frame and every layer's h_t and h_{t-1} (the scan
    // stepper's) are published (pinned).
    ScrubView jumpTo(int64_t t);
    // h after token t in `layer` (E, N). Error(Format) when the trace has neither ssm/state nor
    // x, delta, B and A for the layer.
    Tensor stateAfter(int64_t t, int layer) const;
    // The layer's recorded scan tensors over every token (for analysis::scanStepAt and friends);
    // states are read only when includeStates (T·E·N floats).
    analysis::ScanTensors scanTensors(int layer, bool includeStates = false) const;
    // The scan stepper's numbers for one channel at token t: h_{t-1} from stateAfter(t - 1), the
    // rest from the trace's rows at t, in orderAt(t) (so h_new is bit-identical to the live run's).
    analysis::ScanStepNumbers stepAt(int layer, int64_t channel, int64_t t) const;
    // Which expression order reproduces token t's scan (chunk for traces without segments: the
    // CLI records through the chunk path).
    analysis::ScanOrder orderAt(int64_t t) const;

private:
    void publish(TokenRange range, bool states);
    struct Impl;
    std::unique_ptr<Impl> m_impl;
    std::shared_ptr<FrameStore> m_store;
    std::vector<Segment> m_segments;
    std::vector<int64_t> m_checkpoints;
};

} // namespace archlens
