// Stable probe names: the vocabulary shared by models (which record), sinks (which ask),
// trace files (dataset paths) and views. Shapes use the glossary letters:
// T tokens, E d_inner, N d_state, X experts, k top-k, H heads.
#pragma once

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "tensor/tensor.h"

namespace archlens {

enum class Probe : uint8_t {
    SsmX,          // ssm.x          (T, E)    scan input after conv + SiLU
    SsmDelta,      // ssm.delta      (T, E)    Δ after softplus (bias included)
    SsmB,          // ssm.B          (T, N)
    SsmC,          // ssm.C          (T, N)
    SsmState,      // ssm.state      (T, E, N) h after each token
    SsmStateNorm,  // ssm.state_norm (T, E)    ‖h_t‖₂ over N, per channel
    SsmY,          // ssm.y          (T, E)    after the D skip, before gating
    SsmGate,       // ssm.gate       (T, E)    SiLU(z)
    // Mixture-of-experts and attention probes (recorded by the architectures that have them).
    MoeRouterLogits,  // moe.router_logits (T, X)
    MoeRouterProbs,   // moe.router_probs  (T, X)
    MoeTopkExperts,   // moe.topk_experts  (T, k) int32
    MoeTopkWeights,   // moe.topk_weights  (T, k)
    MoeExpertLoad,    // moe.expert_load   (X) int64  (token, slot) picks over the recorded calls
    MoeRouterEntropy, // moe.router_entropy (T)      nats, over the full softmax
    MoeSharedGate,    // moe.shared_gate   (T)       sigmoid gate of the shared expert (Qwen2-MoE)
    MoeLoadBalancingLoss, // moe.load_balancing_loss (1) this layer's rows only, as load_balancing_loss_func
    AttnWeights,      // attn.weights      (H, T, T) post-softmax; quadratic, only when named
    Count
};

constexpr int kProbeCount = int(Probe::Count);

std::string_view probeName(Probe p);                  // "ssm.delta"
std::optional<Probe> probeFromName(std::string_view); // inverse; nullopt if unknown
std::string_view probeGroup(Probe p);                 // "ssm", "moe", "attn"
std::string_view probeLeaf(Probe p);                  // "delta" (dataset name inside the group)
bool probeIsTokenMajor(Probe p);                      // first axis is T (appendable)
std::vector<Probe> allProbes();
// Every probe but the quadratic ones (attn.weights): what `--probes all` means.
std::vector<Probe> defaultProbes();

// Which (layer, probe) pairs a consumer wants. Empty layer set = every layer.
struct ProbeSelection {
    std::set<int> layers;   // empty: all
    std::set<Probe> probes; // empty: none

    bool wants(int layer, Probe p) const
    {
        return probes.count(p) && (layers.empty() || layers.count(layer));
    }
    bool wantsAnyGroup(int layer, std::string_view group) const;
    // "all" or "0,3,5"; "ssm.delta,ssm.B" or "all". Errors name the bad item.
    static std::set<int> parseLayers(std::string_view spec, int layerCount);
    static std::set<Probe> parseProbes(std::string_view spec);
};

// A sink is asked before anything is copied, so an unwatched run costs nothing.
class ProbeSink {
public:
    virtual ~ProbeSink() = default;
    virtual bool wants(int layer, Probe p) const = 0;
    // value's first axis covers tokens [tokenBegin, tokenBegin + T) for token-major probes.
    // The tensor is only valid during the call: copy what you keep.
    virtual void record(int layer, Probe p, int64_t tokenBegin, const Tensor& value) = 0;
    // Per-layer constants that let a trace replay the scan: "A" (E, N) and "D" (E).
    // Sent once per forward whenever any probe of that layer's group is wanted.
    virtual void recordConstant(int layer, std::string_view group, std::string_view name, const Tensor& value)
    {
        (void)layer, (void)group, (void)name, (void)value;
    }
    // Model-level values that belong to no layer, e.g. "load_balancing_loss" over every MoE
    // layer (see probes/moe_stats.h). Sent after each forward call that had a sink.
    virtual void recordModelValue(std::string_view name, double value) { (void)name, (void)value; }
};

} // namespace archlens
