// Model: one architecture bound to a checkpoint's weights, running on a Backend.
// Config (immutable hyper-parameters), weights (views or widened copies), state
// (conv/SSM state, KV cache) and scratch are kept apart; a state can be cloned, which is
// how scrubbing checkpoints and side-by-side sessions work.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "backends/backend.h"
#include "probes/probes.h"
#include "tensor/tensor.h"

namespace archlens {

struct ModelInfo {
    std::string architecture; // config architectures[0] (or the recognised layout's name)
    std::string modelType;    // config model_type ("mamba")
    std::filesystem::path path;
    int64_t layers = 0;
    int64_t dModel = 0;
    int64_t vocabRows = 0;    // embedding rows stored (= logits width)
    int64_t parameters = 0;   // tied weights counted once
    int64_t activeParameters = 0; // per token (differs for MoE)
    std::string weightDType;  // as stored: F32, BF16, F16
    uint64_t storedBytes = 0; // tensor bytes in the checkpoint files
    uint64_t loadedBytes = 0; // host bytes after widening to F32 (mapped F32 counts too)
    bool tiedEmbeddings = false;
    std::vector<std::string> layerMixer; // per layer: "mamba" | "attention"
    std::vector<std::string> layerFfn;   // per layer: "none" | "mlp" | "moe"
    // Mamba dims (0 when the model has no SSM layers)
    int64_t dInner = 0, dState = 0, dConv = 0, dtRank = 0;
    uint64_t stateBytesPerSequence = 0; // recurrent state (conv + ssm) at F32
    // Attention dims (0 when the model has no attention layers)
    int64_t heads = 0, kvHeads = 0, headDim = 0;
    uint64_t kvCacheBytesPerToken = 0;  // K and V of every attention layer at F32
    // Mixture of experts (0 when no layer has routed experts)
    int64_t experts = 0, expertsPerToken = 0; // X, k
    int64_t bosTokenId = -1, eosTokenId = -1;
    // Extra facts for `info`, in display order.
    std::vector<std::pair<std::string, std::string>> facts;
};

class ModelState {
public:
    virtual ~ModelState() = default;
    virtual std::unique_ptr<ModelState> clone() const = 0;
    // Named tensors ("layers.3.conv_state", "layers.3.ssm_state"), for checkpoints and tests.
    virtual std::vector<std::pair<std::string, Tensor>> tensors() const = 0;
    int64_t position = 0; // tokens consumed so far
};

enum class ForwardMode {
    Auto,      // chunk path for several tokens, recurrent step for one
    Chunk,     // full-sequence path even for one token
    Recurrent, // one recurrent step per token
};

class Model {
public:
    virtual ~Model() = default;
    virtual const ModelInfo& info() const = 0;
    virtual Backend& backend() const = 0;
    virtual std::unique_ptr<ModelState> newState() const = 0;

    // Feeds `ids` after whatever `state` has consumed. Returns logits (T, V) for every
    // token, or (1, V) for the last one only when allLogits is false. Probes go to `sink`
    // (may be null) with absolute token positions.
    virtual Tensor forward(std::span<const int32_t> ids, ModelState& state, ProbeSink* sink, ForwardMode mode,
                           bool allLogits) = 0;
};

// Loads the model in `dir` (config.json + safetensors) through the registry.
// Errors: Io (no such folder), Config, Format, Shape, Unsupported (architecture).
std::unique_ptr<Model> loadModel(const std::filesystem::path& dir, std::shared_ptr<Backend> backend);
// The same facts without reading any weights (headers only), for `info` on huge checkpoints.
ModelInfo describeModel(const std::filesystem::path& dir);
// Bytes the model takes once loaded: weights widened to F32 plus one sequence's recurrent state.
uint64_t memoryNeeded(const ModelInfo& info);
// Error(Backend) with both numbers when memoryNeeded(info) exceeds backend.memoryAvailable().
// loadModel calls it before binding any weight.
void checkFitsMemory(const ModelInfo& info, const Backend& backend);

} // namespace archlens
