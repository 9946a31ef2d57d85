// Mixture-of-experts routing and attention weights as the MoE and attention views show them,
// computed from recorded probes only (a live run's frames or a trace), never from the model:
// expert counts, balance readouts (coefficient of variation, max violation, mean router entropy,
// load-balancing loss, collapse warnings), expert co-activation, and corpus aggregates with the
// top tokens per expert. Qt-free; the GUI and archlens-cli report the same numbers.
//
// Shapes (glossary): T tokens, X experts, k top-k, H heads. topk ids are by weight descending,
// so slot 0 is the top-1 expert. A "pick" is one (token, slot) pair, as moe.expert_load counts.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "probes/probes.h"

namespace archlens::analysis {

// One MoE layer's router over a run; rows appended as forward calls arrive.
struct LayerRouting {
    int64_t experts = 0, topK = 0;  // X, k
    std::vector<float> probs;       // (T, X) full softmax
    std::vector<int32_t> topk;      // (T, k) chosen experts, by weight descending
    std::vector<float> weights;     // (T, k) the weights the expert outputs are summed with
    std::vector<float> entropy;     // (T) nats
    std::vector<float> sharedGate;  // (T) Qwen2-MoE's shared-expert gate, else empty
    // Tokens with both probabilities and choices recorded.
    int64_t tokens() const;
    int32_t top1(int64_t t) const { return topk[size_t(t * topK)]; }
};

// One attention layer's post-softmax weights, grown as decoding steps arrive (a step's (H, t, S)
// rows extend the matrix to (H, S, S); entries s > t stay 0). Stored (H, stride, stride) with
// stride >= tokens doubling as it grows, so a decoding step copies its own rows, not the matrix.
struct LayerAttention {
    int64_t heads = 0, tokens = 0, stride = 0;
    std::vector<float> weights; // (H, stride, stride)
    float at(int64_t h, int64_t t, int64_t s) const { return weights[size_t((h * stride + t) * stride + s)]; }
};

struct RoutingData {
    std::vector<std::string> layerMixer; // per layer: "mamba" | "attention"
    std::vector<std::string> layerFfn;   // per layer: "none" | "mlp" | "moe"
    int64_t promptLength = 0;            // tokens before this are the prompt, the rest generated
    int64_t attentionCap = 0;            // > 0: attention weights kept for the first attentionCap tokens only
    std::map<int, LayerRouting> moe;
    std::map<int, LayerAttention> attn;

    const LayerRouting* routing(int layer) const;
    const LayerAttention* attention(int layer) const;
    std::vector<int> moeLayers() const;       // layers with recorded routing, ascending
    std::vector<int> attentionLayers() const; // layers with recorded attention weights
    int64_t tokens() const;                   // the most tokens any layer holds
};

// A ProbeSink that keeps moe.router_probs, moe.topk_experts, moe.topk_weights,
// moe.router_entropy, moe.shared_gate and (optionally, it is quadratic) attn.weights. The
// worker records under a short lock; the UI takes copies with snapshot().
class RoutingRecorder : public ProbeSink {
public:
    explicit RoutingRecorder(bool attention = true);
    // Attention weights are H·T² floats per layer: keep them for the first n tokens only
    // (0: no cap). RoutingData::attentionCap says so once tokens were left out.
    void setAttentionTokenCap(int64_t n) { m_attentionCap = n; }
    void reset(std::vector<std::string> layerMixer, std::vector<std::string> layerFfn, int64_t promptLength);
    void setPromptLength(int64_t n);
    bool wants(int layer, Probe p) const override;
    void record(int layer, Probe p, int64_t tokenBegin, const Tensor& value) override;
    void dropTokens(int64_t end); // rows at tokens >= end go (a rewound session)
    RoutingData snapshot() const;
    uint64_t version() const { return m_version.load(); }

private:
    mutable std::mutex m_mutex;
    bool m_attention;
    int64_t m_attentionCap = 0;
    RoutingData m_data;
    std::atomic<uint64_t> m_version{0};
};

// Forwards to two sinks (either may be null): e.g. the scan explorer's sink and a RoutingRecorder.
class TeeSink : public ProbeSink {
public:
    TeeSink(ProbeSink* a, ProbeSink* b) : m_a(a), m_b(b) {}
    bool wants(int layer, Probe p) const override;
    void record(int layer, Probe p, int64_t tokenBegin, const Tensor& value) override;
    void recordConstant(int layer, std::string_view group, std::string_view name, const Tensor& value) override;
    void recordModelValue(std::string_view name, double value) override;

private:
    ProbeSink* m_a;
    ProbeSink* m_b;
};

// ---- readouts ----

// Picks per expert (X) over tokens [t0, t1) (t1 < 0: to the end).
std::vector<int64_t> expertCounts(const LayerRouting& r, int64_t t0 = 0, int64_t t1 = -1);

// Balance of one layer. With mean = picks / X: cv = population std / mean, maxViolation =
// max / mean − 1. idle: experts with no picks; overloaded: more than twice the uniform share.
struct BalanceReadout {
    int64_t experts = 0, picks = 0, rows = 0;
    double cv = 0, maxViolation = 0, meanEntropy = 0, loadBalancingLoss = 0;
    std::vector<int64_t> idle, overloaded;
    bool collapse() const { return !idle.empty() || !overloaded.empty(); }
    std::string warning() const; // '' when balanced enough; else names the experts
};
BalanceReadout balanceReadout(std::span<const int64_t> counts, double meanEntropy, double loadBalancingLoss);
// Over tokens [t0, t1): counts from topk, mean entropy, and transformers' load_balancing_loss_func
// over those rows (the same running sums as probes/moe_stats).
BalanceReadout layerBalance(const LayerRouting& r, int64_t t0 = 0, int64_t t1 = -1);

// (X, X) symmetric: [i][j] = tokens in [t0, t1) whose top-k holds both i and j (i ≠ j); the
// diagonal is 0 (a pair needs two experts).
std::vector<int64_t> coactivation(const LayerRouting& r, int64_t t0 = 0, int64_t t1 = -1);

// Jensen-Shannon divergence between two expert-load distributions (counts normalised to
// shares), in bits: 0 for the same shares, 1 for disjoint experts. Comparing two corpora's
// loads in one layer measures how much the experts specialise by domain. Error when the counts
// differ in length or a side has no picks.
double jensenShannonBits(std::span<const int64_t> a, std::span<const int64_t> b);

// ---- corpora ----

// Routing statistics over many chunks of a corpus (archlens-cli route, the GUI's corpus panel).
class RouteAccumulator {
public:
    struct Layer {
        int64_t experts = 0, rows = 0;
        std::vector<int64_t> counts;    // (X) picks
        std::vector<double> probSum;    // (X) Σ router probability over rows
        double entropySum = 0;
        std::vector<std::unordered_map<int32_t, int64_t>> tokenPicks; // per expert: token id -> picks
    };
    // One chunk's routing; ids are the chunk's tokens (for the top tokens per expert).
    void add(const RoutingData& chunk, std::span<const int32_t> ids);
    const std::map<int, Layer>& layers() const { return m_layers; }
    int64_t tokens() const { return m_tokens; }
    int64_t chunks() const { return m_chunks; }
    BalanceReadout balance(int layer) const;
    // The n tokens routed to `expert` most often (any slot), most first; ties by id.
    std::vector<std::pair<int32_t, int64_t>> topTokens(int layer, int64_t expert, size_t n) const;

private:
    std::map<int, Layer> m_layers;
    int64_t m_tokens = 0, m_chunks = 0;
};

} // namespace archlens::analysis
