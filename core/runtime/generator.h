// Generation: prefill the prompt through the chunk path, then one recurrent step per new
// token. Tokens stream out through a callback; cancellation is checked between tokens.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "backends/backend.h"
#include "models/model.h"

namespace archlens {

struct GenerateOptions {
    int maxNewTokens = 32;
    SamplingParams sampling;       // temperature 0 = greedy
    uint64_t seed = 0;             // used only when sampling
    int64_t stopTokenId = -1;      // stop after emitting this id (-1: never)
    ProbeSink* sink = nullptr;     // receives prompt and generated tokens' probes
    const std::atomic<bool>* cancel = nullptr;
    // Called for each new token with its logits row (V); return false to stop.
    std::function<bool(int32_t id, const Tensor& logits)> onToken;
};

struct GenerateResult {
    std::vector<int32_t> tokens; // the new tokens only
    bool cancelled = false;
};

GenerateResult generate(Model& model, ModelState& state, std::span<const int32_t> prompt, const GenerateOptions& opts);

} // namespace archlens
