// One Mamba-1 mixer (model-formats §3.4) for training: in_proj → causal conv → SiLU → x_proj →
// (Jamba: RMSNorms on δ, B and C) → dt_proj + softplus → selective scan → gate → out_proj,
// composed from the checked ops of train_ops.h, with the activations the backward needs kept
// in reusable buffers (resized, never reallocated once the sizes are reached). The decoder
// training model (Jamba's Mamba layers) runs on it. MambaTrainModel keeps its own copy of
// this sequence because it threads LoRA through every projection.
#pragma once

#include <cstdint>
#include <vector>

namespace archlens::train {

struct MambaMixerDims {
    int64_t D = 0, E = 0, N = 0, K = 4, R = 0;
    bool innerNorms = false; // Jamba: RMSNorm on δ (R), B (N) and C (N) after x_proj
    double eps = 1e-6;       // of the inner norms
};

// Weights (row-major, torch layout); the norm pointers only with innerNorms.
struct MambaMixerWeights {
    const float *inProj = nullptr, *convW = nullptr, *convB = nullptr, *xProj = nullptr, *dtW = nullptr,
                *dtB = nullptr, *aLog = nullptr, *dSkip = nullptr, *outProj = nullptr;
    const float *dtNorm = nullptr, *bNorm = nullptr, *cNorm = nullptr;
};
// Gradient destinations (accumulated); null skips.
struct MambaMixerGrads {
    float *inProj = nullptr, *convW = nullptr, *convB = nullptr, *xProj = nullptr, *dtW = nullptr, *dtB = nullptr,
          *aLog = nullptr, *dSkip = nullptr, *outProj = nullptr;
    float *dtNorm = nullptr, *bNorm = nullptr, *cNorm = nullptr;
};

// What one sequence's forward keeps for its backward.
struct MambaMixerActs {
    int64_t chunk = 1;
    std::vector<float> xz, xc, xs, dbc, dtIn, bIn, cIn, dtN, bN, cN, rDt, rB, rC, dtraw, delta, y, yg, chunks, A;
};

// Scratch of the backward (one per worker).
struct MambaMixerScratch {
    std::vector<float> dxz, dxc, dxs, ddbc, ddtN, dbN, dcN, ddtIn, dbIn, dcIn, ddt, ddelta, dy, dyg, work, dA, scanH;
};

// out (T, D) = mixer(u (T, D)).
void mambaMixerForward(const MambaMixerDims& d, const MambaMixerWeights& w, int64_t T, const float* u, float* out,
                       MambaMixerActs& a, MambaMixerScratch& s);
// du += ∂L/∂u given dout (T, D); parameter gradients accumulated into g.
void mambaMixerBackward(const MambaMixerDims& d, const MambaMixerWeights& w, int64_t T, const float* u,
                        const float* dout, const MambaMixerActs& a, MambaMixerScratch& s, float* du,
                        const MambaMixerGrads& g);

} // namespace archlens::train
