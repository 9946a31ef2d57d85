// MoeSource: what the MoE and attention views draw besides the TraceModel (tokens, token text,
// the SSM probes hidden attention is computed from): the run's routing and attention weights
// (a RoutingRecorder snapshot, or read from a trace), and up to two corpora's routing
// aggregates. Owned by the MoePanel (GUI) or the CLI's figure command; figures only read it.
#pragma once

#include <QString>

#include <functional>
#include <vector>

#include "analysis/hidden_attention.h"
#include "analysis/moe_analysis.h"

namespace archlens::ui {

struct CorpusRoute {
    QString name, source;
    analysis::RouteAccumulator route;
    bool complete = true; // false: cancelled part way
};

struct MoeSource {
    analysis::RoutingData routing;
    std::vector<CorpusRoute> corpora;              // 0, 1 or 2 (side by side)
    std::function<QString(int32_t)> tokenText;     // id -> text, for top tokens per expert
    int64_t hiddenAttentionCap = analysis::kDefaultHiddenAttentionCap;
    // > 0: a mean over channels costs about W²·E·N/2 multiply-adds for W tokens; the GUI keeps it
    // under this many (a result within seconds on its worker) by showing fewer tokens. 0: no
    // limit (CLI).
    double hiddenAttentionWork = 0;
    // true (GUI): hidden attention is computed on the HiddenAttentionWorker and the figure only
    // draws results; false (CLI): computed in place, synchronously.
    bool hiddenAttentionAsync = false;
    quint64 version = 0;                           // bumped whenever anything above changes
};

} // namespace archlens::ui
