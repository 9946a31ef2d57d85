// Trainable attention decoders with the Hugging Face parameter names, so a checkpoint saved
// here loads with loadModel and gives the same logits:
//   llama    LlamaForCausalLM: RMSNorm, attention with rotary (rotate_half) and grouped KV
//            heads, SwiGLU MLP, final norm, lm_head tied or not (model-formats §6);
//   mixtral  MixtralForCausalLM: the same attention, then the sparse MoE block (router
//            linear, softmax, top-k renormalised, SwiGLU experts w1/w3/w2) (§7);
//   jamba    JambaForCausalLM: Mamba mixers (with the δ/B/C RMSNorms) and attention without
//            positional encoding by attn_layer_period/offset, MoE (raw top-k weights) or a
//            SwiGLU MLP by expert_layer_period/offset (§9).
// MoE models add transformers' load-balancing loss (load_balancing_loss_func over the router
// rows of every MoE layer of the whole batch) times router_aux_loss_coef to the objective,
// as MixtralForCausalLM / JambaForCausalLM do with output_router_logits true. Because that
// loss pools the whole batch, MoE models keep every sequence's activations until the batch's
// routing counts are known, then run the backwards.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "training/train_model.h"

namespace archlens::train {

struct DecoderTrainConfig {
    std::string arch = "llama"; // llama | mixtral | jamba
    int64_t V = 0, D = 0, layers = 0, H = 0, Hkv = 0, I = 0;
    double eps = 1e-5, ropeTheta = 10000.0;
    int64_t maxPositions = 2048;
    bool tied = true;
    // MoE (mixtral: every layer; jamba: by the expert schedule)
    int64_t experts = 0, topK = 2;
    double auxCoef = 0.001;   // router_aux_loss_coef
    bool routerAux = true;    // output_router_logits: add the aux loss to the objective
    // Jamba
    int64_t attnPeriod = 8, attnOffset = 4, expertPeriod = 2, expertOffset = 1;
    int64_t N = 16, K = 4, expand = 2, R = 0; // Mamba mixer; R 0: ceil(D / 16)

    int64_t headDim() const { return D / H; }
    int64_t dtRank() const { return R > 0 ? R : (D + 15) / 16; }
    bool isAttention(int64_t layer) const { return arch != "jamba" || layer % attnPeriod == attnOffset; }
    bool isMoe(int64_t layer) const;
    std::string architecture() const; // LlamaForCausalLM, ...
    void validate() const;            // Error(InvalidArgument) naming the bad value
    nlohmann::ordered_json toHfConfig() const;
    // From config.json (Error(Unsupported/Config) naming the key for what training cannot do).
    static DecoderTrainConfig fromHfConfig(const std::filesystem::path& dir);
};

class DecoderTrainModel : public TrainModel {
public:
    explicit DecoderTrainModel(DecoderTrainConfig cfg); // parameters zero
    // transformers' initialisation (linear and embedding weights N(0, 0.02), norms 1; the Mamba
    // mixers as Mamba: A_log = log(1..N), dt log-uniform in [1e-3, 0.1], D = 1), seeded.
    static DecoderTrainModel randomInit(const DecoderTrainConfig& cfg, uint64_t seed);
    static DecoderTrainModel load(const std::filesystem::path& dir);

    const DecoderTrainConfig& config() const { return m_cfg; }
    ParamStore& params() override { return m_params; }
    const ParamStore& params() const override { return m_params; }
    std::string architecture() const override { return m_cfg.architecture(); }
    int64_t vocabSize() const override { return m_cfg.V; }
    nlohmann::ordered_json sizeJson() const override;
    BatchStats lossAndGrad(const int32_t* ids, const int32_t* targets, int64_t B, int64_t T, float* grads,
                           ThreadPool* pool) const override;
    std::vector<float> logits(const int32_t* ids, int64_t T) const override;
    void save(const std::filesystem::path& dir,
              const std::map<std::string, std::string>& metadata = {}) const override;

    struct Acts;
    struct Scratch;

private:
    struct LayerIdx {
        int norm1 = -1, norm2 = -1;
        int wq = -1, wk = -1, wv = -1, wo = -1;                                   // attention
        int inProj = -1, convW = -1, convB = -1, xProj = -1, dtW = -1, dtB = -1;  // Mamba
        int aLog = -1, dSkip = -1, outProj = -1, dtNorm = -1, bNorm = -1, cNorm = -1;
        int wg = -1, wu = -1, wd = -1;                                            // SwiGLU MLP
        int router = -1;                                                          // MoE
        std::vector<int> eg, eu, ed;
    };
    void allocate();
    void forwardSeq(const int32_t* ids, int64_t T, Acts& a, Scratch& s) const;
    // a.dlogits holds ∂L/∂logits; auxGrad (X) is ∂L/∂probs of the aux loss per expert (or null).
    void backwardSeq(const int32_t* ids, int64_t T, Acts& a, Scratch& s, float* g, const float* auxGrad) const;
    void attentionFwd(const LayerIdx& P, int64_t T, const float* x, float* out, Acts& a, int64_t l) const;
    void attentionBwd(const LayerIdx& P, int64_t T, const float* x, const float* dout, float* dx, Acts& a,
                      Scratch& s, int64_t l, float* g) const;
    void moeFwd(const LayerIdx& P, int64_t T, const float* x, float* out, Acts& a, int64_t l) const;
    void moeBwd(const LayerIdx& P, int64_t T, const float* x, const float* dout, float* dx, Acts& a, Scratch& s,
                int64_t l, float* g, const float* auxGrad) const;
    const float* head() const { return m_params.data(m_head >= 0 ? m_head : m_emb); }
    int moeLayers() const;

    DecoderTrainConfig m_cfg;
    ParamStore m_params;
    int m_emb = -1, m_normF = -1, m_head = -1;
    std::vector<LayerIdx> m_layers;
    std::vector<double> m_invFreq; // rotary inverse frequencies (float32 values, as the loader's)
};

} // namespace archlens::train
