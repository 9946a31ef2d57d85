// A decoder-only language model assembled from shared blocks; every architecture we run is
// one of these with its own config reading and weight names (mamba.cpp, llama.cpp,
// gpt_neox.cpp, mixtral.cpp, olmoe.cpp, qwen2_moe.cpp, jamba.cpp):
//   h = E[ids]
//   per layer:  sequential  h = h + Mixer(Norm_in(h));  h = h + FFN(Norm_ffn(h))
//               parallel    h = h + Mixer(Norm_in(h)) + FFN(Norm_ffn(h))      (GPT-NeoX)
//   logits = Norm_f(h) · Wₗₘᵀ
// Mixer = attention (KV cache) or Mamba (conv + SSM state); FFN = none, dense MLP or MoE.
// The chunk path runs the whole call through each layer; the recurrent path runs one token
// through every layer at a time; both use the same layer loop and state.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "models/attention_block.h"
#include "models/ffn_blocks.h"
#include "models/mamba_mixer.h"
#include "models/model.h"
#include "models/registry.h"

namespace archlens {

struct DecoderLayer {
    NormWeights inputNorm, ffnNorm;
    std::unique_ptr<AttentionBlock> attention; // exactly one of attention / mamba
    std::unique_ptr<MambaMixer> mamba;
    std::unique_ptr<MlpBlock> mlp;             // at most one of mlp / moe
    std::unique_ptr<MoeBlock> moe;
};

struct DecoderSpec {
    int64_t D = 0, V = 0;
    Tensor embedding, lmHead; // lmHead may share the embedding's storage (tied)
    NormWeights finalNorm;
    std::vector<DecoderLayer> layers;
    bool parallelResidual = false;
    // Filled by the architecture: names, token ids, facts; the rest is derived from the layers.
    ModelInfo info;
};

// Reads the config and binds every weight through `wb` (headers only when !wb.loading()).
using DecoderBuilder = std::function<DecoderSpec(const HfConfig&, WeightBinder&)>;

// A registry entry whose describe() and create() both run `build`.
ModelFactory decoderFactory(std::string name, std::vector<std::string> architectures,
                            std::vector<std::string> modelTypes, DecoderBuilder build);

// The output head: `lm_head.weight` (or `headName`) when stored; else the embedding when
// `tied`; else Error(Format) naming the missing tensor.
Tensor bindOutputHead(WeightBinder& wb, const std::string& headName, const Tensor& embedding, int64_t V, int64_t D,
                      bool tied);

// bos/eos ids: an integer, or the first of a list (Llama 3 lists several eos ids); else fallback.
int64_t tokenIdKey(const HfConfig& c, const char* key, int64_t fallback);

// Common config checks with errors naming the key.
int64_t positiveInt(const HfConfig& c, const char* key, int64_t fallback);
int64_t positiveInt(const HfConfig& c, const char* key);

} // namespace archlens
