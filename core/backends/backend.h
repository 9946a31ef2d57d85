// The Backend interface every model runs through. A model never touches raw loops for
// its heavy lifting: it calls these ops, so the CPU reference, the fast CPU path and the
// CUDA plugin can be swapped without rewriting a model. Tensors are row-major and
// contiguous; the CPU backends compute in F32.
//
// Shapes use the glossary letters: T tokens, D d_model, E d_inner (channels), N d_state,
// K conv width, V vocab, H heads, Dh head dim, X experts, k top-k.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/sysinfo.h"
#include "tensor/tensor.h"

namespace archlens {

enum class Op {
    Linear,
    Embedding,
    RmsNorm,
    LayerNorm,
    Add,
    Mul,
    Silu,
    Gelu,
    CausalConv1d,
    CausalConv1dStep,
    SelectiveScan,
    SelectiveScanStep,
    Rotary,
    Attention,
    RouterTopK,
    ExpertFfn,
    Sample,
    Count
};
const char* opName(Op op);

// Everything the selective scan consumes and (optionally) exposes. Outputs marked
// "optional" are written only when non-null: an unwatched scan stores nothing extra.
struct ScanArgs {
    const Tensor* x = nullptr;      // (T, E) after conv + SiLU
    const Tensor* dt = nullptr;     // (T, E) dt_proj output before bias and softplus
    const Tensor* dtBias = nullptr; // (E) added before softplus; may be null
    const Tensor* A = nullptr;      // (E, N) = -exp(A_log)
    const Tensor* B = nullptr;      // (T, N)
    const Tensor* C = nullptr;      // (T, N)
    const Tensor* D = nullptr;      // (E) skip; may be null
    const Tensor* z = nullptr;      // (T, E) gate input; y *= SiLU(z) when non-null
    Tensor* state = nullptr;        // (E, N) in: h_{-1}; out: h_{T-1}
    Tensor* y = nullptr;            // (T, E) output (gated when z is given)
    // optional probe outputs
    Tensor* deltaOut = nullptr;     // (T, E) Δ = softplus(dt + bias)
    Tensor* statesOut = nullptr;    // (T, E, N) h_t after each token
    Tensor* stateNormOut = nullptr; // (T, E) ‖h_t‖₂ over N
    Tensor* yPreGateOut = nullptr;  // (T, E) C·h + D x, before gating
    Tensor* gateOut = nullptr;      // (T, E) SiLU(z)
};

struct AttentionArgs {
    const Tensor* q = nullptr; // (T, H, Dh)  queries for positions [pastLength, pastLength + T)
    const Tensor* k = nullptr; // (S, Hkv, Dh) keys for positions [0, S), S = pastLength + T
    const Tensor* v = nullptr; // (S, Hkv, Dh)
    Tensor* out = nullptr;     // (T, H, Dh)
    int64_t pastLength = 0;
    float scale = 1.f;          // usually 1/sqrt(Dh)
    int64_t slidingWindow = 0;  // 0: none; else a query at p sees keys in (p - window, p]
    Tensor* weightsOut = nullptr; // optional (H, T, S) post-softmax
};

struct RouterArgs {
    const Tensor* logits = nullptr; // (T, X)
    int k = 1;
    bool renormalize = true; // top-k weights divided by their sum
    Tensor* probs = nullptr;      // (T, X) softmax over all experts
    Tensor* topkIds = nullptr;    // (T, k) I32, by weight descending
    Tensor* topkWeights = nullptr;// (T, k)
};

// One SwiGLU expert: down(silu(gate x) * up x). Weights are nn.Linear layout [out, in].
struct ExpertWeights {
    const Tensor* gate = nullptr; // (I, D)  w1
    const Tensor* down = nullptr; // (D, I)  w2
    const Tensor* up = nullptr;   // (I, D)  w3
};

struct SamplingParams {
    float temperature = 0.f; // 0: greedy
    int topK = 0;            // 0: off
    float topP = 1.f;        // 1: off
};

enum class GeluKind { Erf, Tanh };

class Backend {
public:
    virtual ~Backend() = default;
    virtual std::string name() const = 0;        // "cpu", "cpu-reference", "cuda"
    virtual std::string description() const = 0; // for the status bar and traces
    virtual bool supports(Op op) const = 0;
    // Bytes the backend can still allocate for weights and state, or nullopt when unknown.
    // CPU backends: the host's MemAvailable; a device backend reports its own memory.
    virtual std::optional<uint64_t> memoryAvailable() const
    {
        const uint64_t bytes = availableHostBytes();
        return bytes ? std::optional<uint64_t>(bytes) : std::nullopt;
    }
    // CPU backends: threads used and the kernels' instruction set ("avx512"); a backend
    // without such settings reports 1 and "" and ignores setThreads.
    virtual int threads() const { return 1; }
    virtual void setThreads(int threads) {}
    virtual std::string isa() const { return {}; }

    // y (T, out) = x (T, in) · W (out, in)ᵀ + b (out)
    virtual void linear(const Tensor& x, const Tensor& w, const Tensor* b, Tensor& y) = 0;
    // out (T, D) = table[ids]; ids outside [0, rows) are an Error(InvalidArgument)
    virtual void embedding(const std::vector<int32_t>& ids, const Tensor& table, Tensor& out) = 0;
    // y (T, D) = w ⊙ x / sqrt(mean(x²) + eps)
    virtual void rmsNorm(const Tensor& x, const Tensor& w, float eps, Tensor& y) = 0;
    // y (T, D) = (x - mean) / sqrt(var + eps) ⊙ w + b
    virtual void layerNorm(const Tensor& x, const Tensor& w, const Tensor* b, float eps, Tensor& y) = 0;
    virtual void add(const Tensor& a, const Tensor& b, Tensor& out) = 0; // elementwise, same shape
    virtual void mul(const Tensor& a, const Tensor& b, Tensor& out) = 0;
    virtual void silu(const Tensor& x, Tensor& y) = 0;
    virtual void gelu(const Tensor& x, Tensor& y, GeluKind kind) = 0;

    // Causal depthwise conv over a chunk. x (T, E); w (E, K) (w[:, K-1] multiplies the
    // current input); b (E) or null; history (E, K-1) holds the K-1 inputs before this
    // chunk, oldest first (zeros at the start) and is updated to the chunk's last K-1.
    virtual void causalConv1d(const Tensor& x, const Tensor& w, const Tensor* b, Tensor& history, Tensor& y) = 0;
    // One token, the decoder's recurrent form: y (E) = Σ_{k<K-1} history[:, k] w[:, k]
    // + x w[:, K-1] + b, then history (E, K-1) shifts left by one and takes x.
    virtual void causalConv1dStep(const Tensor& x, const Tensor& w, const Tensor* b, Tensor& history, Tensor& y) = 0;

    // Selective scan over a chunk of T tokens (see ScanArgs).
    virtual void selectiveScan(const ScanArgs& args) = 0;
    // One token (T = 1) in the decoder's recurrent form.
    virtual void selectiveScanStep(const ScanArgs& args) = 0;

    // Rotary embedding in the rotate_half convention on the first rotaryDims of each head.
    // x (T, H, Dh) in place; positions start at `position`. invFreq (rotaryDims / 2).
    // mscale multiplies cos and sin (YaRN attention scaling); 1 otherwise.
    virtual void rotary(Tensor& x, int64_t position, int64_t rotaryDims, const std::vector<float>& invFreq,
                        float mscale) = 0;
    virtual void attention(const AttentionArgs& args) = 0;
    virtual void routerTopK(const RouterArgs& args) = 0;
    // out (T, D) = Σ_j topkWeights[t, j] · expert[topkIds[t, j]](x[t]); x (T, D).
    virtual void expertFfn(const Tensor& x, const Tensor& topkIds, const Tensor& topkWeights,
                           const std::vector<ExpertWeights>& experts, Tensor& out) = 0;
    // Draws a token from logits (V). `rngState` is advanced (splitmix64 sequence), so a
    // seed gives the same tokens on every backend.
    virtual int32_t sample(const Tensor& logits, const SamplingParams& params, uint64_t& rngState) = 0;

    // ---- device residency (docs/design.md, "Backends and device memory") ----
    // The ops above take host-visible Tensors, so a device backend must see its inputs from
    // the host side. These hooks are the smallest addition that lets it keep data resident
    // without changing any op's signature; every default is what a CPU backend does.
    //
    // A tensor for activations and state that this backend's ops read and write without a
    // copy. CPU backends: Tensor::empty. The CUDA backend: CUDA managed memory from a pool, so
    // host code (probes, views, columns()) can still read and write it; every op returns only
    // after its results are visible to the host. Tensors from Tensor::empty stay valid input
    // everywhere (the CUDA backend then copies them in and out per op).
    virtual Tensor newTensor(const Shape& shape, DType dtype = DType::F32) { return Tensor::empty(shape, dtype); }
    // Weight dtypes linear() and expertFfn() take as they are (CPU backends: F32 only, callers
    // widen at load; CUDA: F32, F16 and BF16, accumulating in F32).
    virtual bool acceptsWeightDType(DType dtype) const { return dtype == DType::F32; }
    // A backend that caches device copies of weights (CUDA uploads each weight once, on first
    // use, and keeps the host tensor alive meanwhile) forgets them: call after changing weights
    // in place, or to release device memory. Weights are otherwise assumed immutable.
    virtual void weightsChanged() {}
    // Benchmarks: a device clock (CUDA events on the backend's stream). timerStart() marks a
    // point; timerSeconds() marks another, waits for it and returns the device time between
    // the two. nullopt: this backend has no device clock, time on the host.
    virtual void timerStart() {}
    virtual std::optional<double> timerSeconds() { return std::nullopt; }
    // Most device memory this backend has held at once (0 for CPU backends).
    virtual uint64_t peakDeviceBytes() const { return 0; }
};

// The CPU reference backend: plain readable loops, kept as the oracle for every other one.
std::unique_ptr<Backend> makeCpuReferenceBackend();

} // namespace archlens
