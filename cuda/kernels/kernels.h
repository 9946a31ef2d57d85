// Launchers of the CUDA backend's kernels, one op per .cu file in this folder. This header
// is all a .cu file includes besides the CUDA headers: plain pointers and sizes, no
// archlens classes, no Eigen, no fmt. Every pointer is device-accessible (device or managed
// memory), row-major and contiguous, F32 unless the name says otherwise. Launchers enqueue
// on `stream` and return; the caller checks cudaGetLastError and synchronises.
#pragma once

#include <cstddef>
#include <cstdint>

#include <cuda_runtime.h>

namespace archlens::cuda {

// ---- elementwise.cu -------------------------------------------------------
enum class Elementwise { Add, Mul, Silu, GeluErf, GeluTanh };
// out = a (op) b for Add/Mul; out = f(a) for the activations (b unused)
void launchElementwise(Elementwise op, const float* a, const float* b, float* out, int64_t n, cudaStream_t stream);

// ---- convert.cu -------------------------------------------------------------
// F32 <-> F16/BF16 (dtype: 1 F16, 2 BF16, as archlens::DType), round to nearest even.
void launchF32ToHalf(const float* in, void* out, int64_t n, int dtype, cudaStream_t stream);
// y (T, out) += bias (out), broadcast over rows
void launchAddBias(float* y, const float* bias, int64_t rows, int64_t cols, cudaStream_t stream);

// ---- embedding.cu -----------------------------------------------------------
// out (T, D) = table[ids[t]]; ids already range-checked on the host. tableDtype as convert.cu (0 F32).
void launchEmbedding(const int32_t* ids, int64_t T, const void* table, int tableDtype, int64_t D, float* out,
                     cudaStream_t stream);

// ---- rms_norm.cu / layer_norm.cu --------------------------------------------
void launchRmsNorm(const float* x, const float* w, float eps, int64_t T, int64_t D, float* y, cudaStream_t stream);
void launchLayerNorm(const float* x, const float* w, const float* b, float eps, int64_t T, int64_t D, float* y,
                     cudaStream_t stream);

// ---- causal_conv1d.cu / causal_conv1d_step.cu -------------------------------
// x (T, E), w (E, K), b (E) or null, history (E, K-1) read; y (T, E) and newHistory (E, K-1)
// written (newHistory must not alias history).
void launchCausalConv1d(const float* x, const float* w, const float* b, const float* history, int64_t T, int64_t E,
                        int64_t K, float* y, float* newHistory, cudaStream_t stream);
// One token: x (E); history (E, K-1) shifted in place.
void launchCausalConv1dStep(const float* x, const float* w, const float* b, float* history, int64_t E, int64_t K,
                            float* y, cudaStream_t stream);

// ---- selective_scan.cu / selective_scan_step.cu -----------------------------
struct ScanPointers {
    const float* x = nullptr;      // (T, E)
    const float* dt = nullptr;     // (T, E) before bias and softplus
    const float* dtBias = nullptr; // (E) or null
    const float* A = nullptr;      // (E, N)
    const float* B = nullptr;      // (T, N)
    const float* C = nullptr;      // (T, N)
    const float* D = nullptr;      // (E) or null
    const float* z = nullptr;      // (T, E) or null
    float* state = nullptr;        // (E, N) in and out
    float* y = nullptr;            // (T, E)
    float* deltaOut = nullptr;     // optional (T, E)
    float* statesOut = nullptr;    // optional (T, E, N)
    float* stateNormOut = nullptr; // optional (T, E)
    float* yPreGateOut = nullptr;  // optional (T, E)
    float* gateOut = nullptr;      // optional (T, E), written only with z
    int64_t T = 0, E = 0, N = 0;
};
// Tokens per chunk of the time-parallel scan, and the F32 scratch it needs (0: one pass).
int64_t scanChunkLength(int64_t T, int64_t E, int multiprocessors);
size_t scanScratchFloats(int64_t T, int64_t E, int64_t N, int64_t chunk);
void launchSelectiveScan(const ScanPointers& p, int64_t chunk, float* scratch, cudaStream_t stream);
// T = 1, the decoder's recurrent form
void launchSelectiveScanStep(const ScanPointers& p, cudaStream_t stream);

// ---- rotary.cu --------------------------------------------------------------
// x (T, H, Dh) in place, rotate_half on the first rotaryDims of each head.
void launchRotary(float* x, int64_t T, int64_t H, int64_t Dh, int64_t position, int64_t rotaryDims,
                  const float* invFreq, float mscale, cudaStream_t stream);

// ---- attention.cu -----------------------------------------------------------
struct AttentionPointers {
    const float* q = nullptr; // (T, H, Dh)
    const float* k = nullptr; // (S, Hkv, Dh)
    const float* v = nullptr; // (S, Hkv, Dh)
    float* out = nullptr;     // (T, H, Dh)
    float* weightsOut = nullptr; // optional (H, T, S)
    int64_t T = 0, S = 0, H = 0, Hkv = 0, Dh = 0, pastLength = 0, slidingWindow = 0;
    float scale = 1.f;
};
constexpr int64_t kAttentionMaxHeadDim = 256;
// Key splits for the decode path (flash-decoding), and its scratch in floats.
int attentionSplits(const AttentionPointers& p, int multiprocessors);
size_t attentionScratchFloats(const AttentionPointers& p, int splits);
void launchAttention(const AttentionPointers& p, int splits, float* scratch, cudaStream_t stream);

// ---- router_topk.cu ---------------------------------------------------------
// logits (T, X); probs (T, X) always written (scratch when the probe is not asked for);
// ids (T, k) and weights (T, k) or null; k <= kRouterMaxTopK.
constexpr int kRouterMaxTopK = 64;
void launchRouterTopK(const float* logits, int64_t T, int64_t X, int k, bool renormalize, float* probs, int32_t* ids,
                      float* weights, cudaStream_t stream);

// ---- expert_ffn.cu ----------------------------------------------------------
// Expert dispatch: rows[i] = x[tokens[i]] for the tokens routed to one expert (gather), and
// out[tokens[i]] += weights[i] * y[i] after it (scatter; one expert at a time, so no races).
void launchGatherRows(const float* x, const int32_t* tokens, int64_t count, int64_t D, float* rows,
                      cudaStream_t stream);
void launchScatterAddRows(const float* y, const int32_t* tokens, const float* weights, int64_t count, int64_t D,
                          float* out, cudaStream_t stream);
// act (rows, I) = silu(gate) * up, in place over gate
void launchSiluMul(float* gate, const float* up, int64_t n, cudaStream_t stream);

} // namespace archlens::cuda
