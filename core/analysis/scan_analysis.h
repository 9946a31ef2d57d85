// Numbers the scan explorer's views show, computed from recorded values only (a trace, or
// frames gathered from a FrameStore), never from the model: memory horizons, Δ spikes, and the
// step-by-step arithmetic of one channel of the selective scan at one token. Qt-free.
//
// Conventions (README "Trace files"): delta, x, gate, y are (T, E); B, C are (T, N); A is (E, N)
// (= -exp(A_log), negative); D is (E); states are (T, E, N), h after each token. The scan is
//   h_t = exp(Δ_t A) ⊙ h_{t-1} + Δ_t B_t x_t,   y_t = C_t · h_t + D x_t,   out_t = y_t · gate_t.
// Bad arguments (shapes, indices, f outside (0, 1), m <= 0, negative Δ) are Error(InvalidArgument)
// or Error(Shape) naming the value.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "probes/frame_store.h"
#include "tensor/tensor.h"

namespace archlens::analysis {

// ---- gathering ----

// The (T, width) matrix of one probe of one layer over a run of frames (e.g. FrameStore::frames).
// Error(InvalidArgument) naming the first token whose frame or probe is missing.
Tensor gatherProbe(std::span<const FramePtr> frames, int layer, Probe probe);

// ---- memory horizon ----

// H(c, s): the smallest k >= 1 with exp(Σ_{r=s+1..s+k} Δ_r[c] · max_n A[c, n]) < f, i.e. how many
// future tokens it takes the slowest-decaying state dimension of channel c to forget all but a
// fraction f of what token s wrote, with the real future Δ. When the sequence ends first,
// tokens = T - s and atLeast = true ("at least T - s").
struct Horizon {
    int64_t tokens = 0;
    bool atLeast = false;
    bool operator==(const Horizon&) const = default;
};

constexpr double kDefaultForgetFraction = 0.01;

Horizon memoryHorizon(const Tensor& delta, const Tensor& A, int64_t channel, int64_t source,
                      double f = kDefaultForgetFraction);
// H(c, s) for every s in [0, T), in O(T) (Δ >= 0 makes the decayed sums monotone).
std::vector<Horizon> memoryHorizons(const Tensor& delta, const Tensor& A, int64_t channel,
                                    double f = kDefaultForgetFraction);

// ---- Δ spikes ----

// Δ_t[c] > m × median_t(Δ[c]) marks a "reset" (the channel forgets quickly at that token).
// The median of an even count is the mean of the two middle values.
struct DeltaSpikes {
    int64_t T = 0, E = 0;
    double multiple = 0;
    std::vector<double> median;  // (E)
    std::vector<uint8_t> mask;   // (T, E) row-major, 1 at a spike
    std::vector<std::pair<int64_t, int64_t>> spikes; // (t, c), by t then c
    bool isSpike(int64_t t, int64_t c) const { return mask[size_t(t * E + c)] != 0; }
};

constexpr double kDefaultSpikeMultiple = 5.0;

DeltaSpikes deltaSpikes(const Tensor& delta, double multiple = kDefaultSpikeMultiple);

// ---- scan stepper ----

// Which float expression order to reproduce: the recurrent step computes the input term as
// (Δ·x)·B[n], the chunk scan as (Δ·B[n])·x; with the matching order the stepper's h equals the
// recorded ssm.state bit for bit.
enum class ScanOrder { Recurrent, Chunk };

// One channel at one token.
struct ScanStepInput {
    float delta = 0.f;
    float x = 0.f;
    std::vector<float> A;     // (N) A[c, :]
    std::vector<float> B, C;  // (N) B_t, C_t
    std::vector<float> hPrev; // (N) h_{t-1}[c, :]; empty: zeros (the first token)
    std::optional<float> D;   // D[c]
    std::optional<float> gate; // SiLU(z_t[c])
    ScanOrder order = ScanOrder::Recurrent;
};

struct ScanStepNumbers {
    // per state dimension n
    std::vector<float> decay;        // exp(Δ A[c, n])
    std::vector<float> hOld;         // h_{t-1}[c, n]
    std::vector<float> decayed;      // decay · h_old
    std::vector<float> input;        // Δ B[n] x
    std::vector<float> hNew;         // decayed + input
    std::vector<float> contribution; // C[n] · h_new[n]
    float readout = 0.f;             // Σ_n contribution (in n order, as the scan sums)
    float Dx = 0.f;                  // D · x (0 without D)
    float yPreGate = 0.f;            // readout + Dx   (the ssm.y probe)
    std::optional<float> gate;       // SiLU(z)
    float y = 0.f;                   // after gating (yPreGate when there is no gate)
};

ScanStepNumbers scanStep(const ScanStepInput& in);

// Recorded tensors of one layer (a trace's /layers/{i}/ssm, or gatherProbe over frames covering
// tokens [0, T)). D, gate and states may be undefined.
struct ScanTensors {
    Tensor x, delta, B, C, A, D, gate, states;
};

// The stepper at (channel, token): h_{t-1} from states when recorded, else replayed through the
// scan from h = 0 at token 0 (see replayChannel).
ScanStepNumbers scanStepAt(const ScanTensors& s, int64_t channel, int64_t token,
                           ScanOrder order = ScanOrder::Recurrent);
// h[c, :] after tokens [begin, end) starting from h0 (empty: zeros), from x, delta, B and A.
std::vector<float> replayChannel(const ScanTensors& s, int64_t channel, int64_t begin, int64_t end,
                                 std::span<const float> h0 = {}, ScanOrder order = ScanOrder::Recurrent);

// ---- heatmap downsampling ----

enum class DownsampleMode {
    MaxAbs, // per bin the value of largest magnitude, sign kept (first one on ties)
    MinMax, // per bin the minimum (values) and the maximum (maxValues)
};

struct Downsampled {
    int64_t rows = 0, cols = 0;
    std::vector<float> values;       // (rows, cols): MaxAbs peaks, or MinMax minima
    std::vector<float> maxValues;    // (rows, cols): MinMax maxima; empty for MaxAbs
    std::vector<int64_t> rowStarts;  // rows + 1 bin edges into the source rows
    std::vector<int64_t> colStarts;  // cols + 1 bin edges into the source columns
};

// Reduces a row-major [rows, cols] matrix to at most [maxRows, maxCols]: bin i of n source rows
// over b bins covers [floor(i n / b), floor((i + 1) n / b)). NaNs are ignored unless a bin holds
// nothing else (then NaN).
Downsampled downsample(std::span<const float> data, int64_t rows, int64_t cols, int64_t maxRows, int64_t maxCols,
                       DownsampleMode mode = DownsampleMode::MaxAbs);

} // namespace archlens::analysis
