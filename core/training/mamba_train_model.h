// A trainable Mamba-1 (MambaForCausalLM maths, model-formats §3.4) with its own parameters
// and gradients in flat arrays, so the optimizer, clipping and saving see one vector.
// Parameter names and shapes are the Hugging Face ones, so a checkpoint saved here loads with
// loadModel, and one written by transformers loads here. Optional LoRA adapters (PEFT layout,
// model-formats §11) on in_proj / x_proj / dt_proj / out_proj / embeddings live in the same
// store under PEFT's names (without the "base_model.model." prefix).
//
// Restrictions: in/out_proj without bias (use_bias false, as every -hf checkpoint), conv bias
// on, RMSNorm. Batches run one sequence per task on the thread pool, each task accumulating
// into its own gradient buffer, summed in a fixed order (reproducible for a thread count).
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/thread_pool.h"
#include "models/mamba_init.h"
#include "tensor/tensor.h"
#include "training/train_model.h"

namespace archlens::train {

struct MambaTrainConfig {
    int64_t V = 0, D = 0, layers = 0, E = 0, N = 0, K = 4, R = 0;
    double eps = 1e-5;
    bool tied = true;
    nlohmann::ordered_json toHfConfig() const;
};

struct LoraOptions {
    int64_t r = 8;
    double alpha = 8;
    bool rslora = false;
    std::vector<std::string> targets; // PEFT target_modules entries
    uint64_t seed = 0;
    // PEFT's lora_dropout: while training (lossAndGrad with grads), each LoRA linear's branch
    // sees dropout(x), a mask drawn from (seed, the sequence's tokens, layer, module), so a run
    // is reproducible and a fixed batch has a fixed mask. Evaluation, logits() and a merged
    // model never drop. As in PEFT, the embeddings' adapter has no dropout.
    double dropout = 0;
};

// What a set of target_modules entries selects in a model (validated).
struct LoraCoverage {
    std::vector<std::string> modules; // full module paths
    int64_t layersCovered = 0, layers = 0;
    std::vector<std::string> peftRefused; // entries PEFT refuses for Mamba (out_proj, conv1d)
};

class MambaTrainModel : public TrainModel {
public:
    explicit MambaTrainModel(MambaTrainConfig cfg); // parameters zero
    // Mamba's initialisation (makeRandomMamba), the same numbers writeRandomMamba writes.
    static MambaTrainModel randomInit(const MambaInitOptions& opts);
    // config.json + model.safetensors in the HF layout (F32/F16/BF16 widened to F32).
    static MambaTrainModel load(const std::filesystem::path& dir);

    const MambaTrainConfig& config() const { return m_cfg; }
    ParamStore& params() override { return m_params; }
    const ParamStore& params() const override { return m_params; }
    std::string architecture() const override { return "MambaForCausalLM"; }
    int64_t vocabSize() const override { return m_cfg.V; }
    nlohmann::ordered_json sizeJson() const override;

    // B sequences of T tokens (row-major (B, T)); targets (B, T), < 0 = ignored. Loss is the
    // mean over counted positions of the whole batch; when grads is non-null (numel() floats)
    // its gradient is ACCUMULATED into grads (trainable parameters only).
    BatchStats lossAndGrad(const int32_t* ids, const int32_t* targets, int64_t B, int64_t T, float* grads,
                           ThreadPool* pool) const override;
    // Logits (T, V) of one sequence.
    std::vector<float> logits(const int32_t* ids, int64_t T) const override;
    // The same, calling `tap` per layer with the scan's inputs: Δ (T, E) and B, C (T, N each,
    // rows `ldBC` floats apart).
    using ScanTap = std::function<void(int64_t layer, int64_t T, const float* delta, const float* B, const float* C,
                                       int64_t ldBC)>;
    std::vector<float> logits(const int32_t* ids, int64_t T, const ScanTap& tap) const;

    // config.json + model.safetensors (base weights; LoRA tensors are never written here).
    void save(const std::filesystem::path& dir,
              const std::map<std::string, std::string>& metadata = {}) const override;
    std::vector<std::pair<std::string, Tensor>> baseTensors() const;

    // ---- LoRA (PEFT) ----
    // Validates target_modules against this model: an entry that matches nothing is an
    // Error(InvalidArgument) (PEFT would silently ignore it); conv1d / lm_head are
    // Error(Unsupported). Matching is PEFT's: full path equal, or ending with "." + entry.
    LoraCoverage resolveTargets(const std::vector<std::string>& targets) const;
    // Adds adapters (A: Kaiming-uniform, B: 0; embeddings A: 0, B: N(0,1)) and freezes the base.
    LoraCoverage addLora(const LoraOptions& opts);
    bool hasLora() const { return m_loraR > 0; }
    const LoraOptions& loraOptions() const { return m_lora; }
    double loraScaling() const;
    // adapter_config.json + adapter_model.safetensors with PEFT's key names.
    void saveAdapter(const std::filesystem::path& dir, const std::string& baseModel,
                     const std::map<std::string, std::string>& metadata = {}) const override;
    // Loads an adapter PEFT (or saveAdapter) wrote; refuses DoRA, rank/alpha patterns, biases.
    void loadAdapter(const std::filesystem::path& dir);
    // W += s·B·A (embeddings: E += s·(B·A)ᵀ; a tied head is untied first so the output layer
    // keeps the base embedding, as PEFT's unmerged model computes). unmerge undoes it.
    void mergeLora();
    void unmergeLora();
    bool loraMerged() const { return m_merged; }

private:
    struct LoraRef {
        int A = -1, B = -1;
    };
    struct LayerIdx {
        int norm, inProj, convW, convB, xProj, dtW, dtB, aLog, dSkip, outProj;
        LoraRef lora[4]; // in_proj, x_proj, dt_proj, out_proj
    };
    struct Acts;
    void allocate();
    void forwardSeq(const int32_t* ids, int64_t T, Acts& a) const;
    void backwardSeq(const int32_t* ids, int64_t T, Acts& a, float* g) const;
    // lx / ldlx: the LoRA branch's input (x, or dropout(x) while training); keep: the
    // dropout's per-element factor (0 or 1/(1-p)), null without dropout.
    void linFwd(int64_t M, int64_t in, int64_t out, const float* x, int64_t ldx, const float* lx, int64_t ldlx, int w,
                const LoraRef& l, float* u, float* y, int64_t ldy) const;
    void linBwd(int64_t M, int64_t in, int64_t out, const float* x, int64_t ldx, const float* lx, int64_t ldlx,
                const float* keep, int w, const LoraRef& l, const float* u, const float* dy, int64_t lddy, float* dx,
                int64_t lddx, float* g, float* du) const;
    const float* loraInput(Acts& a, int64_t layer, int k, int64_t M, int64_t in, const float* x, int64_t ldx,
                           int64_t& ld) const;
    std::vector<std::string> modulePaths() const;
    int layerOfPath(const std::string& path) const;
    void attachLora(const std::vector<std::string>& modules, int64_t r);
    const float* head() const { return m_params.data(m_head >= 0 ? m_head : m_emb); }

    MambaTrainConfig m_cfg;
    ParamStore m_params;
    int m_emb = -1, m_normF = -1, m_head = -1; // m_head −1: tied to the embedding
    std::vector<LayerIdx> m_layers;
    LoraRef m_embLora;
    LoraOptions m_lora;
    int64_t m_loraR = 0;
    bool m_merged = false, m_untiedForMerge = false;
};

} // namespace archlens::train
