// Reductions over a mixture-of-experts router: per-token entropy, expert load and the
// load-balancing loss exactly as transformers' load_balancing_loss_func computes it
// (models/mixtral/modeling_mixtral.py; ../shared/docs/model-formats.md §7):
//   aux = X · Σ_e f_e · P_e,  f_e = picks of e over all top-k slots / rows,
//                             P_e = mean router probability of e over the rows.
// Rows are (token, MoE layer) pairs: the model-level value concatenates every MoE layer's
// router rows, a layer's own value uses only its rows. Both come from the same running
// sums, so they stay exact when the rows arrive over several forward calls.
#pragma once

#include <cstdint>
#include <vector>

#include "tensor/tensor.h"

namespace archlens {

// Entropy in nats of each row of probs (T, X) -> (T); 0·log 0 counts as 0.
Tensor routerEntropy(const Tensor& probs);

// Running sums for one router (or several, merged). Accumulated in double, reported in F32.
struct MoeRouterStats {
    int64_t experts = 0;            // X
    int64_t rows = 0;               // router rows seen (tokens × layers)
    std::vector<int64_t> picks;     // (X) (row, slot) picks per expert
    std::vector<double> probSum;    // (X) Σ over rows of the full-softmax probability

    explicit MoeRouterStats(int64_t X = 0);
    // probs (T, X) full softmax; topkIds (T, k) I32.
    void add(const Tensor& probs, const Tensor& topkIds);
    void merge(const MoeRouterStats& other);
    Tensor expertLoad() const;      // (X) I64
    double loadBalancingLoss() const; // 0 when no rows were seen
};

} // namespace archlens
