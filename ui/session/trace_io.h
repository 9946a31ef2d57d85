// Trace files from the GUI: save what a session holds (through core's TraceWriter) and replay
// a trace into a LiveSink as if a model were running, so every view works without the model.
// Interim: when the runtime's trace save/open (with /checkpoints) lands, these delegate to it.
#pragma once

#include <QString>

#include <array>
#include <atomic>
#include <filesystem>
#include <functional>
#include <vector>

#include "session/live_sink.h"

namespace archlens::ui {

// A consistent, thread-safe copy of a TraceModel (chunk pointers, not data).
struct TraceSnapshot {
    RunMeta meta;
    std::vector<int32_t> ids;
    QStringList texts;
    std::vector<std::array<SeriesView, 8>> layers; // SsmX .. SsmGate
    std::vector<std::vector<float>> A, D;
};
TraceSnapshot snapshotOf(const TraceModel& model);

bool traceSupported(); // false in builds without HDF5

// Writes the snapshot; logits (T, vocab) are written when given. A state series with rows
// dropped by the memory cap is left out (the other probes are complete). Throws archlens::Error.
void writeTrace(const std::filesystem::path& path, const TraceSnapshot& snap, const std::vector<float>* logits,
                int64_t vocab);

// Replays a trace into the sink in blocks of tokens, calling onBlock after each (the worker
// signals the UI from there). Top-5 predictions come from /logits when present. Returns the
// token count. Throws archlens::Error with the reader's typed errors.
int replayTrace(const std::filesystem::path& path, LiveSink& sink, const std::atomic<bool>& cancel,
                const std::function<void(int done, int total)>& onBlock);

} // namespace archlens::ui
