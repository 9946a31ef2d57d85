// AdamW (torch.optim.AdamW semantics: decoupled weight decay p -= lr·wd·p, bias-corrected
// moments), the warm-up + cosine learning-rate schedule and global-norm gradient clipping.
// The optimizer state saves as safetensors (<param>.exp_avg / <param>.exp_avg_sq) next to
// the model, so a run resumes exactly where it stopped.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "training/mamba_train_model.h"

namespace archlens::train {

struct AdamWOptions {
    double beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weightDecay = 0.1;
};

class AdamW {
public:
    AdamW(const ParamStore& params, AdamWOptions opts);
    // One update of every trainable parameter with gradients `grads` (numel floats).
    void step(ParamStore& params, const float* grads, double lr);
    int64_t steps() const { return m_steps; }
    void save(const std::filesystem::path& path, const ParamStore& params,
              const std::map<std::string, std::string>& metadata) const;
    // Error(Format) when the file does not match the parameters; returns the file's metadata.
    std::map<std::string, std::string> load(const std::filesystem::path& path, const ParamStore& params);

private:
    AdamWOptions m_opts;
    int64_t m_steps = 0;
    std::vector<float> m_m, m_v;
};

// Linear warm-up from 0 over `warmup` steps to `peak`, then cosine decay to `minLr` at
// `total`. `step` is 0-based (the learning rate of the step about to run).
double scheduleLr(int64_t step, int64_t total, int64_t warmup, double peak, double minLr);

// Scales g so its global L2 norm is at most maxNorm (torch clip_grad_norm_); returns the norm
// before clipping. maxNorm <= 0 only measures.
double clipGradNorm(float* g, int64_t n, double maxNorm);

} // namespace archlens::train
