// The Mamba-1 mixer (model-formats §3.4), shared by Mamba and Jamba's Mamba layers:
//   in_proj -> x | z; causal depthwise conv; SiLU; x_proj -> δ | B | C;
//   [Jamba: δ, B, C each RMSNorm-ed over its own last dim]
//   Δ = softplus(dt_proj(δ) + b_dt); selective scan with A = −exp(A_log) and D skip;
//   y ⊙ SiLU(z); out_proj.
// The chunk form (causalConv1d + selectiveScan over T tokens) and the recurrent form (the
// decoder's step ops, T = 1) read and update the same state, so they can be mixed freely.
#pragma once

#include <cstdint>
#include <string>

#include "backends/backend.h"
#include "models/weights.h"
#include "probes/probes.h"

namespace archlens {

struct MambaMixerConfig {
    int64_t D = 0, E = 0, N = 0, K = 0, R = 0;
    bool projBias = false, convBias = true;
    bool innerNorms = false; // Jamba: dt/B/C RMSNorms
    float innerNormEps = 1e-6f;
};

struct MambaMixerWeights {
    Tensor inProj, inProjBias, convW, convB, xProj, dtProj, dtBias, A, D, outProj, outProjBias;
    Tensor dtNorm, bNorm, cNorm; // Jamba only
};

// Binds `<prefix>{in_proj,conv1d,x_proj,dt_proj,out_proj}.*`, A_log (turned into A), D, and
// with innerNorms `<prefix>{dt,b,c}_layernorm.weight`.
MambaMixerWeights bindMambaMixer(WeightBinder& wb, const std::string& prefix, const MambaMixerConfig& c);

struct MambaLayerState {
    Tensor conv; // (E, K−1) the last K−1 pre-conv inputs
    Tensor ssm;  // (E, N)
};

class MambaMixer {
public:
    MambaMixer(MambaMixerConfig cfg, MambaMixerWeights w);
    const MambaMixerConfig& config() const { return m_cfg; }
    MambaLayerState newState() const;
    uint64_t stateBytes() const { return uint64_t(m_cfg.E * (m_cfg.N + m_cfg.K - 1)) * sizeof(float); }
    // hn (T, D) normalised input -> out (T, D); recurrent needs T = 1. Records the ssm.*
    // probes (and the ssm A/D constants) for tokens [pos, pos + T).
    void forward(Backend& be, const Tensor& hn, MambaLayerState& state, bool recurrent, ProbeSink* sink, int layer,
                 int64_t pos, Tensor& out) const;

private:
    MambaMixerConfig m_cfg;
    MambaMixerWeights m_w;
};

} // namespace archlens
