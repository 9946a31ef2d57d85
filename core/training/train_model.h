// What the trainer sees of a trainable model: one flat parameter store (Hugging Face names),
// the batch loss with its gradient, the logits of one sequence and a checkpoint in the
// Hugging Face layout that loadModel reads. MambaTrainModel (mamba_train_model.h) and
// DecoderTrainModel (decoder_train_model.h: Llama, Mixtral, Jamba) implement it;
// loadTrainModel picks the class from config.json's architectures.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/thread_pool.h"
#include "tensor/tensor.h"

namespace archlens::train {

struct ParamInfo {
    std::string name; // Hugging Face / PEFT name
    Shape shape;      // as stored in the checkpoint
    int64_t offset = 0, numel = 0;
    bool trainable = true;
    bool decay = true; // AdamW weight decay applies (matrices; not norms, biases, A_log, D)
};

class ParamStore {
public:
    int add(const std::string& name, const Shape& shape, bool decay);
    int find(const std::string& name) const; // −1 when absent
    const ParamInfo& info(int i) const { return m_params[size_t(i)]; }
    ParamInfo& info(int i) { return m_params[size_t(i)]; }
    int count() const { return int(m_params.size()); }
    int64_t numel() const { return int64_t(m_values.size()); }
    float* data(int i) { return m_values.data() + m_params[size_t(i)].offset; }
    const float* data(int i) const { return m_values.data() + m_params[size_t(i)].offset; }
    std::vector<float>& values() { return m_values; }
    const std::vector<float>& values() const { return m_values; }
    // Owned F32 copies of the named parameters accepted by `keep`.
    template<class F> std::vector<std::pair<std::string, Tensor>> tensors(F keep) const
    {
        std::vector<std::pair<std::string, Tensor>> out;
        for (const auto& p : m_params)
            if (keep(p)) {
                Tensor t = Tensor::empty(p.shape);
                std::copy(m_values.begin() + p.offset, m_values.begin() + p.offset + p.numel, t.f32());
                out.emplace_back(p.name, t);
            }
        return out;
    }

private:
    std::vector<ParamInfo> m_params;
    std::vector<float> m_values;
    std::map<std::string, int> m_index;
};

struct BatchStats {
    double lossSum = 0;       // summed cross-entropy over counted positions
    int64_t counted = 0;      // positions with a target
    int64_t correct = 0;      // counted positions whose argmax is the target
    int64_t sequences = 0;
    int64_t exactSequences = 0; // sequences whose counted positions are all correct
    // MoE models: transformers' load-balancing loss over every router row of the batch (all
    // MoE layers pooled); the trained objective is meanLoss() + auxCoef · auxLoss.
    double auxLoss = 0, auxCoef = 0;
    double meanLoss() const { return counted ? lossSum / double(counted) : 0.0; }
    // Sums the per-sequence counts of another part of the batch (not the MoE fields).
    BatchStats& operator+=(const BatchStats& o)
    {
        lossSum += o.lossSum;
        counted += o.counted;
        correct += o.correct;
        sequences += o.sequences;
        exactSequences += o.exactSequences;
        return *this;
    }
};

class TrainModel {
public:
    virtual ~TrainModel() = default;
    virtual ParamStore& params() = 0;
    virtual const ParamStore& params() const = 0;
    // config.json's architectures[0] (MambaForCausalLM, LlamaForCausalLM, ...).
    virtual std::string architecture() const = 0;
    virtual int64_t vocabSize() const = 0;
    // Sizes for the model card (d_model, layers, ...; "parameters" is added by the caller).
    virtual nlohmann::ordered_json sizeJson() const = 0;
    // B sequences of T tokens (row-major (B, T)); targets (B, T), < 0 = ignored. The loss is the
    // mean over counted positions of the whole batch (plus auxCoef · auxLoss for MoE models);
    // when grads is non-null (params().numel() floats) its gradient is ACCUMULATED into grads
    // (trainable parameters only). Parallel over sequences; reproducible for a thread count.
    virtual BatchStats lossAndGrad(const int32_t* ids, const int32_t* targets, int64_t B, int64_t T, float* grads,
                                   ThreadPool* pool) const = 0;
    // Logits (T, V) of one sequence.
    virtual std::vector<float> logits(const int32_t* ids, int64_t T) const = 0;
    // config.json + model.safetensors, each written atomically; metadata goes into the file.
    virtual void save(const std::filesystem::path& dir,
                      const std::map<std::string, std::string>& metadata = {}) const = 0;
    // PEFT adapter of a LoRA run; Error(Unsupported) for models without LoRA support.
    virtual void saveAdapter(const std::filesystem::path& dir, const std::string& baseModel,
                             const std::map<std::string, std::string>& metadata = {}) const;
};

// The training model of a checkpoint folder, by config.json's architectures (model_type as a
// fallback): MambaForCausalLM, LlamaForCausalLM, MixtralForCausalLM, JambaForCausalLM.
std::unique_ptr<TrainModel> loadTrainModel(const std::filesystem::path& dir);

} // namespace archlens::train
