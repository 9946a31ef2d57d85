// Filling a TraceModel from the engine's two session kinds, shared by the worker thread, the
// headless `archlens-cli figure` and the tests: the run's facts (RunMeta), the vocabulary's
// text for predictions, and a one-shot fill (reset, tokens, segments, frames) from a
// RunSession or a TraceSession.
#pragma once

#include <QString>
#include <QStringList>

#include <optional>

#include "runtime/run_session.h"
#include "session/trace_model.h"
#include "tokenizer/tokenizer.h"

namespace archlens {
class TraceSession;
}

namespace archlens::ui {

// The text of every id of a tokenizer's vocabulary ("#id" past it, or without one).
VocabTexts vocabTexts(const Tokenizer* tokenizer, int64_t vocabRows);
QString tokenTextOf(const VocabTexts& vocab, int32_t id);

// Resets `model` onto `session`'s store and places everything it holds now (no time budget).
void fillFromSession(TraceModel& model, RunSession& session, const RunMeta& meta, const VocabTexts& vocab);

#if ARCHLENS_HAVE_HDF5
// A trace's facts as the figures print them; `path` becomes meta.source.
RunMeta traceRunMeta(const TraceSession& trace, const QString& path);
// Predicted tokens are named by the model folder's tokenizer when it is still there, else by
// the text the trace recorded for that id, else "#id".
VocabTexts traceVocab(const TraceSession& trace);
QStringList traceTokenTexts(const TraceSession& trace);
// Resets `model` onto the trace's store with its tokens and segments (frames come with load()).
void startFromTrace(TraceModel& model, TraceSession& trace, const QString& path);
#endif

} // namespace archlens::ui
