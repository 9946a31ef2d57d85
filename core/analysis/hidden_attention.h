// Mamba's hidden attention (Ali, Zimerman & Wolf 2024, "The Hidden Attention of Mamba Models"):
// unrolling the selective scan h_t = exp(Δ_t A) ⊙ h_{t-1} + Δ_t B_t x_t, y_t = C_t·h_t + D x_t
// from a zero state gives y_t[c] − D[c] x_t[c] = Σ_{s≤t} α_c[t, s] x_s[c] with
//   α_c[t, s] = Σ_n C_t[n] · exp(A[c, n] · Σ_{r=s+1..t} Δ_r[c]) · Δ_s[c] · B_s[n],
// the weight of the scan input x_s (after conv + SiLU) in the output y_t, without the D skip and
// the gate. Computed from recorded values only (a trace or frames), never from the model.
// Independent reference: tests/reference/hidden_attention_ref.py (exp of a cumulative sum in
// float64; here per-step decays are multiplied, also in double).
//
// Cost O(W²·N) per channel for a window of W tokens; the window is exact for every pair it
// shows, because α_c[t, s] depends only on tokens s..t (sources before the window are left out,
// not approximated). Callers cap W (kDefaultHiddenAttentionCap) and say so.
#pragma once

#include <atomic>
#include <cstdint>
#include <span>
#include <vector>

namespace archlens::analysis {

constexpr int64_t kDefaultHiddenAttentionCap = 1024;

// Views of recorded values, row-major: delta (T, E), B (T, N), C (T, N), A (E, N).
struct ScanInputs {
    int64_t T = 0, E = 0, N = 0;
    const float* delta = nullptr;
    const float* B = nullptr;
    const float* C = nullptr;
    const float* A = nullptr;
};

// The token window [begin, end) a view of tokens [0, upTo] shows with at most `cap` tokens: the
// last `cap` tokens ending at upTo (inclusive). capped is true when tokens were left out.
struct AttentionWindow {
    int64_t begin = 0, end = 0;
    bool capped = false;
    int64_t size() const { return end - begin; }
};
AttentionWindow hiddenAttentionWindow(int64_t upTo, int64_t cap = kDefaultHiddenAttentionCap);

// α_c over the window: (W, W) row-major, [t − begin][s − begin], zero above the diagonal.
// Error(InvalidArgument) for a channel or window outside the inputs.
std::vector<double> hiddenAttention(const ScanInputs& in, int64_t channel, AttentionWindow w);

// The mean of the raw α_c over `channels` (empty: every channel), (W, W). *cancel is checked
// between channels: once set, the result is empty (the GUI's worker drops stale requests).
std::vector<double> hiddenAttentionMean(const ScanInputs& in, std::span<const int64_t> channels, AttentionWindow w,
                                        const std::atomic<bool>* cancel = nullptr);

// Each row divided by its Σ_s |α[t, s]| (rows of zeros stay zero): what the view draws, so every
// query token's row reads as shares of its total influence.
void normaliseRowsByAbsSum(std::vector<double>& m, int64_t W);

} // namespace archlens::analysis
