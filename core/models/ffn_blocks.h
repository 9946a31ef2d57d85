// Feed-forward blocks shared by the decoders:
//   MlpBlock   SwiGLU  down(SiLU(gate x) ⊙ up x)       (Llama, Qwen2-MoE dense layers, Jamba dense layers)
//              GELU    down(GELU(up x + b) ) + b        (GPT-NeoX dense_h_to_4h / dense_4h_to_h)
//   MoeBlock   router logits = W_g x; p = softmax over all X experts (fp32); top-k by p;
//              weights = p_topk, renormalised to sum 1 when `renormalize` (Mixtral; OLMoE and
//              Qwen2-MoE per norm_topk_prob; never Jamba); out = Σ w_e · SwiGLU_e(x)
//              [+ sigmoid(W_sg x) · SwiGLU_shared(x)  (Qwen2-MoE shared expert)]
// The MoE block records moe.* probes and adds its routing to running stats (probes/moe_stats.h).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "backends/backend.h"
#include "models/weights.h"
#include "probes/moe_stats.h"
#include "probes/probes.h"

namespace archlens {

struct MlpWeights {
    Tensor gate, up, down;            // SwiGLU: (I, D), (I, D), (D, I); GELU: up (I, D), down (D, I)
    Tensor gateBias, upBias, downBias;
};

class MlpBlock {
public:
    enum class Kind { SwiGlu, Gelu };
    MlpBlock(Kind kind, MlpWeights w, GeluKind gelu = GeluKind::Erf);
    void forward(Backend& be, const Tensor& x, Tensor& out) const; // (T, D) -> (T, D)
    int64_t hidden() const { return m_w.up.defined() ? m_w.up.dim(0) : 0; }

private:
    Kind m_kind;
    MlpWeights m_w;
    GeluKind m_gelu;
};

// `<prefix>{gate,up,down}_proj.weight` with (I, D) / (D, I) shapes (+ biases when `bias`).
MlpWeights bindSwiGlu(WeightBinder& wb, const std::string& prefix, int64_t D, int64_t I, bool bias = false);

struct MoeConfig {
    int64_t D = 0, X = 0, k = 0, I = 0; // I: per-expert hidden size
    bool renormalize = true;
    int64_t sharedI = 0;                // 0: no shared expert
};

struct ExpertTensors {
    Tensor gate, up, down; // (I, D), (I, D), (D, I)
};

struct MoeWeights {
    Tensor router;                    // (X, D)
    std::vector<ExpertTensors> experts;
    ExpertTensors shared;             // Qwen2-MoE shared expert (undefined otherwise)
    Tensor sharedGate;                // (1, D)
};

// Names of the routed experts: per expert `<experts>{e}.<gate|up|down>.weight`, or
// transformers v5's fused `<experts>gate_up_proj` (X, 2I, D) + `<experts>down_proj` (X, D, I).
struct ExpertNames {
    std::string experts; // "model.layers.3.block_sparse_moe.experts."
    std::string gate, up, down; // "w1", "w3", "w2" (Mixtral) or "gate_proj", "up_proj", "down_proj"
};
std::vector<ExpertTensors> bindExperts(WeightBinder& wb, const ExpertNames& names, const MoeConfig& c);

class MoeBlock {
public:
    MoeBlock(MoeConfig cfg, MoeWeights w);
    MoeBlock(const MoeBlock&) = delete;
    MoeBlock& operator=(const MoeBlock&) = delete;
    const MoeConfig& config() const { return m_cfg; }
    // x (T, D) -> out (T, D). `stats` (may be null) accumulates this call's routing; the probes
    // expert_load and load_balancing_loss report those accumulated stats.
    void forward(Backend& be, const Tensor& x, MoeRouterStats* stats, ProbeSink* sink, int layer, int64_t pos,
                 Tensor& out) const;

private:
    MoeConfig m_cfg;
    MoeWeights m_w;
    std::vector<ExpertWeights> m_experts; // pointers into m_w
    std::vector<ExpertWeights> m_shared;
};

} // namespace archlens
