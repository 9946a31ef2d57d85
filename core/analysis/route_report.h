// Corpus routing statistics (archlens-cli route, the GUI's corpus panel): a model runs over a
// corpus in sequential chunks of at most `chunk` tokens (each chunk from a fresh state, so the
// cost stays linear and the attention of Transformer layers stays bounded), a RoutingRecorder
// catches every MoE layer's choices, and a RouteAccumulator sums them. Reports:
//   CSV, long form: corpus,layer,expert,count,share   (share = count / the layer's picks)
//   HDF5: /route/{corpus}/layers/{i}/expert_load int64 [X] with attributes cv, max_violation,
//         mean_router_entropy, load_balancing_loss, rows; /route/{corpus} attributes tokens,
//         chunks, source. (README "archlens-cli route".)
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "analysis/moe_analysis.h"

namespace archlens {
class Model;
}

namespace archlens::analysis {

constexpr int64_t kDefaultRouteChunk = 512;

// Reads a corpus: one text file, or every regular file under a folder (recursively, sorted by
// path, hidden files skipped). Error(Io) naming the path; Error(InvalidArgument) when empty.
std::vector<std::pair<std::filesystem::path, std::string>> readCorpus(const std::filesystem::path& path);

// Runs `ids` through the model chunk by chunk into acc. progress(done, total) is called after
// each chunk; returning false cancels (the chunks done so far stay in acc). Returns whether it
// ran to the end. Error(InvalidArgument) for an id outside the model's vocabulary.
bool routeTokens(Model& model, std::span<const int32_t> ids, RouteAccumulator& acc, int64_t chunk = kDefaultRouteChunk,
                 const std::function<bool(int64_t, int64_t)>& progress = {});

struct NamedRoute {
    std::string name;   // the corpus label (file or folder name)
    std::string source; // the path it was read from
    const RouteAccumulator* route = nullptr;
};
std::string routeCsv(const std::vector<NamedRoute>& corpora);
// Error(Unsupported) in a build without HDF5; Error(Io) naming the file.
void writeRouteH5(const std::filesystem::path& path, const std::vector<NamedRoute>& corpora);

} // namespace archlens::analysis

namespace archlens::analysis {
// The moe/ and attn/ datasets of a trace (README "Trace files") as RoutingData, with the layer
// kinds (layer_mixer, layer_ffn) and prompt_length from its attributes. Error(Unsupported)
// without HDF5; the trace reader's typed errors otherwise.
RoutingData readRoutingTrace(const std::filesystem::path& path);
} // namespace archlens::analysis
