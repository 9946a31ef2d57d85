// Rotary position embedding settings read from config.json, and the inverse frequencies
// each scaling type gives, as transformers' modeling_rope_utils.py computes them:
//   default  θ_i = theta^(−2i/rd)
//   linear   θ_i / factor
//   dynamic  (NTK) theta' = theta·(factor·L/M − (factor − 1))^(rd/(rd−2)) with L the
//            sequence length of the call (positions 0..L−1) when L > M = max_position_embeddings;
//            keys already in a cache keep the rotation they were given (as transformers' cache does)
//   llama3   wavelength bands around original_max_position_embeddings (model-formats §6)
//   yarn     ramp between interpolated and extrapolated frequencies, cos/sin × attention factor
// Keys: top-level rope_theta + rope_scaling {type|rope_type, factor, ...}, or transformers v5's
// rope_parameters {rope_type, rope_theta, ...}. Any other type is an Error(Unsupported) naming it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "formats/hf_config.h"

namespace archlens {

struct RopeConfig {
    int64_t rotaryDims = 0; // rd: leading dims of each head that rotate (0: no rotary at all)
    double theta = 10000;
    std::string type = "default";
    double factor = 1;
    int64_t maxPositions = 2048;       // max_position_embeddings
    std::vector<float> invFreq;        // (rd/2) for every type but dynamic beyond maxPositions
    float attentionScaling = 1;        // multiplies cos and sin (yarn)

    // Frequencies for a forward call whose last position is seqLen − 1.
    std::vector<float> invFreqFor(int64_t seqLen) const;
    std::string describe() const; // "yarn (factor 4, theta 10000)" for info
};

// headDim: Dh; rotaryFraction: partial rotary (NeoX rotary_pct). thetaDefault: the
// architecture's class default when no key names it. Extra theta keys (NeoX's
// rotary_emb_base) are tried first when given.
RopeConfig readRopeConfig(const HfConfig& c, int64_t headDim, double rotaryFraction, double thetaDefault,
                          const char* legacyThetaKey = nullptr);

} // namespace archlens
