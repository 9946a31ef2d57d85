#include "models/synthetic.h"

#include <cmath>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "formats/hf_config.h"
#include "formats/safetensors.h"
#include "models/registry.h"

namespace archlens {

namespace {

// Headroom beyond the weights for activations, scratch and the process itself.
constexpr uint64_t kHeadroomBytes = uint64_t(512) << 20;

// The state-spaces Mamba-1 family (transformers' *-hf configs): vocab 50280 (50277 padded
// to a multiple of 8), d_state 16, expand 2, d_conv 4, dt_rank ⌈d_model/16⌉, tied head,
// conv bias, no in/out projection bias.
SyntheticModelSpec mamba(const char* name, const char* mirrors, int64_t dModel, int64_t layers)
{
    MambaInitOptions o;
    o.dModel = dModel;
    o.layers = layers;
    o.dState = 16;
    o.expand = 2;
    o.dConv = 4;
    o.vocabSize = 50280;
    const int64_t D = dModel, E = 2 * D, N = 16, K = 4, R = (D + 15) / 16, V = o.vocabSize;
    const int64_t perLayer = D + 2 * E * D + E * K + E + E * (R + 2 * N) + R * E + E + E * N + E + D * E;
    SyntheticModelSpec s;
    s.name = name;
    s.mirrors = mirrors;
    s.architecture = "MambaForCausalLM";
    s.parameters = V * D + layers * perLayer + D;
    s.hostBytes = uint64_t(s.parameters + layers * E * N) * sizeof(float); // + A = −exp(A_log)
    s.build = [o](uint64_t seed) {
        MambaInitOptions withSeed = o;
        withSeed.seed = seed;
        return makeRandomMamba(withSeed);
    };
    return s;
}

// Random weights for the decoder shapes: uniform in ±1/√fan_in for matrices (fast to draw,
// and activations stay O(1) through the layers), ones for norm scales, zeros for biases.
// The numbers are meaningless; only the shapes (and so the timings) mirror the checkpoint.
class RandomTensors {
public:
    explicit RandomTensors(uint64_t seed)
        : m_state(seed * 0x9e3779b97f4a7c15ull + 0x632be59bd9b4e019ull)
    {
    }
    Tensor matrix(const Shape& shape)
    {
        Tensor t = Tensor::empty(shape);
        const float bound = 1.f / std::sqrt(float(shape.back()));
        for (float& v : t.span()) {
            m_state ^= m_state >> 12; // xorshift64*
            m_state ^= m_state << 25;
            m_state ^= m_state >> 27;
            const uint64_t r = m_state * 0x2545f4914f6cdd1dull;
            v = (float(r >> 40) * (2.f / 16777216.f) - 1.f) * bound;
        }
        return t;
    }
    static Tensor filled(const Shape& shape, float value)
    {
        Tensor t = Tensor::empty(shape);
        t.fill(value);
        return t;
    }

private:
    uint64_t m_state;
};

// GPT-NeoX as Pythia ships it: parallel residual, rotary on a quarter of each head (base
// 10000), LayerNorm with biases, untied embed_out, vocab 50304 (padded).
SyntheticModelSpec neox(const char* name, const char* mirrors, int64_t dModel, int64_t layers, int64_t heads)
{
    const int64_t D = dModel, I = 4 * D, V = 50304;
    const int64_t perLayer = 4 * D + 3 * D * D + 3 * D + D * D + D + I * D + I + D * I + D;
    SyntheticModelSpec s;
    s.name = name;
    s.mirrors = mirrors;
    s.architecture = "GPTNeoXForCausalLM";
    s.parameters = 2 * V * D + layers * perLayer + 2 * D;
    s.hostBytes = uint64_t(s.parameters) * sizeof(float); // q, k, v split from the fused tensor, none kept twice
    s.build = [=](uint64_t seed) {
        RandomTensors rnd(seed);
        RandomCheckpoint c;
        c.config = { { "architectures", { "GPTNeoXForCausalLM" } }, { "model_type", "gpt_neox" },
            { "hidden_size", D }, { "num_hidden_layers", layers }, { "num_attention_heads", heads },
            { "intermediate_size", I }, { "vocab_size", V }, { "rotary_pct", 0.25 }, { "rotary_emb_base", 10000 },
            { "max_position_embeddings", 2048 }, { "layer_norm_eps", 1e-5 }, { "use_parallel_residual", true },
            { "hidden_act", "gelu" }, { "tie_word_embeddings", false }, { "bos_token_id", 0 },
            { "eos_token_id", 0 }, { "torch_dtype", "float32" } };
        auto& t = c.tensors;
        t.emplace_back("gpt_neox.embed_in.weight", rnd.matrix({ V, D }));
        for (int64_t i = 0; i < layers; ++i) {
            const std::string p = fmt::format("gpt_neox.layers.{}.", i);
            for (const char* n : { "input_layernorm", "post_attention_layernorm" }) {
                t.emplace_back(p + n + ".weight", RandomTensors::filled({ D }, 1.f));
                t.emplace_back(p + n + ".bias", RandomTensors::filled({ D }, 0.f));
            }
            t.emplace_back(p + "attention.query_key_value.weight", rnd.matrix({ 3 * D, D }));
            t.emplace_back(p + "attention.query_key_value.bias", RandomTensors::filled({ 3 * D }, 0.f));
            t.emplace_back(p + "attention.dense.weight", rnd.matrix({ D, D }));
            t.emplace_back(p + "attention.dense.bias", RandomTensors::filled({ D }, 0.f));
            t.emplace_back(p + "mlp.dense_h_to_4h.weight", rnd.matrix({ I, D }));
            t.emplace_back(p + "mlp.dense_h_to_4h.bias", RandomTensors::filled({ I }, 0.f));
            t.emplace_back(p + "mlp.dense_4h_to_h.weight", rnd.matrix({ D, I }));
            t.emplace_back(p + "mlp.dense_4h_to_h.bias", RandomTensors::filled({ D }, 0.f));
        }
        t.emplace_back("gpt_neox.final_layer_norm.weight", RandomTensors::filled({ D }, 1.f));
        t.emplace_back("gpt_neox.final_layer_norm.bias", RandomTensors::filled({ D }, 0.f));
        t.emplace_back("embed_out.weight", rnd.matrix({ V, D }));
        return c;
    };
    return s;
}

// Mixtral: Llama attention (grouped-query, rotary θ = 1e6), RMSNorm, a sparse MoE block of X
// SwiGLU experts with top-k routing, untied head, vocab 32000.
SyntheticModelSpec mixtral(const char* name, const char* mirrors, int64_t dModel, int64_t layers, int64_t heads,
    int64_t kvHeads, int64_t inter, int64_t experts, int64_t topK)
{
    const int64_t D = dModel, V = 32000, Dh = D / heads, KV = kvHeads * Dh, I = inter, X = experts;
    const int64_t perLayer = 2 * D + D * D + 2 * KV * D + D * D + X * D + X * 3 * I * D;
    SyntheticModelSpec s;
    s.name = name;
    s.mirrors = mirrors;
    s.architecture = "MixtralForCausalLM";
    s.parameters = 2 * V * D + layers * perLayer + D;
    s.hostBytes = uint64_t(s.parameters) * sizeof(float);
    s.build = [=](uint64_t seed) {
        RandomTensors rnd(seed);
        RandomCheckpoint c;
        c.config = { { "architectures", { "MixtralForCausalLM" } }, { "model_type", "mixtral" }, { "hidden_size", D },
            { "num_hidden_layers", layers }, { "num_attention_heads", heads }, { "num_key_value_heads", kvHeads },
            { "intermediate_size", I }, { "vocab_size", V }, { "num_local_experts", X },
            { "num_experts_per_tok", topK }, { "rope_theta", 1e6 }, { "rms_norm_eps", 1e-5 },
            { "max_position_embeddings", 32768 }, { "hidden_act", "silu" }, { "tie_word_embeddings", false },
            { "bos_token_id", 1 }, { "eos_token_id", 2 }, { "torch_dtype", "float32" } };
        auto& t = c.tensors;
        t.emplace_back("model.embed_tokens.weight", rnd.matrix({ V, D }));
        for (int64_t i = 0; i < layers; ++i) {
            const std::string p = fmt::format("model.layers.{}.", i);
            t.emplace_back(p + "input_layernorm.weight", RandomTensors::filled({ D }, 1.f));
            t.emplace_back(p + "self_attn.q_proj.weight", rnd.matrix({ D, D }));
            t.emplace_back(p + "self_attn.k_proj.weight", rnd.matrix({ KV, D }));
            t.emplace_back(p + "self_attn.v_proj.weight", rnd.matrix({ KV, D }));
            t.emplace_back(p + "self_attn.o_proj.weight", rnd.matrix({ D, D }));
            t.emplace_back(p + "post_attention_layernorm.weight", RandomTensors::filled({ D }, 1.f));
            t.emplace_back(p + "block_sparse_moe.gate.weight", rnd.matrix({ X, D }));
            for (int64_t e = 0; e < X; ++e) {
                const std::string q = fmt::format("{}block_sparse_moe.experts.{}.", p, e);
                t.emplace_back(q + "w1.weight", rnd.matrix({ I, D }));
                t.emplace_back(q + "w3.weight", rnd.matrix({ I, D }));
                t.emplace_back(q + "w2.weight", rnd.matrix({ D, I }));
            }
        }
        t.emplace_back("model.norm.weight", RandomTensors::filled({ D }, 1.f));
        t.emplace_back("lm_head.weight", rnd.matrix({ V, D }));
        return c;
    };
    return s;
}

} // namespace

const std::vector<SyntheticModelSpec>& syntheticModels()
{
    static const std::vector<SyntheticModelSpec> table = {
        mamba("mamba-130m", "state-spaces/mamba-130m-hf", 768, 24),
        mamba("mamba-370m", "state-spaces/mamba-370m-hf", 1024, 48),
        mamba("mamba-790m", "state-spaces/mamba-790m-hf", 1536, 48),
        mamba("mamba-1.4b", "state-spaces/mamba-1.4b-hf", 2048, 48),
        mamba("mamba-2.8b", "state-spaces/mamba-2.8b-hf", 2560, 64),
        neox("pythia-160m", "EleutherAI/pythia-160m", 768, 12, 12),
        neox("pythia-410m", "EleutherAI/pythia-410m", 1024, 24, 16),
        mixtral("mixtral-tiny", "mistralai/Mixtral-8x7B-v0.1 scaled down (d_model 512, 8 layers, 8 experts)", 512, 8, 8,
            2, 1792, 8, 2),
        mixtral("mixtral-8x7b", "mistralai/Mixtral-8x7B-v0.1", 4096, 32, 32, 8, 14336, 8, 2),
    };
    return table;
}

const SyntheticModelSpec& findSyntheticModel(const std::string& name)
{
    std::vector<std::string> names;
    for (const auto& s : syntheticModels()) {
        if (s.name == name)
            return s;
        names.push_back(s.name);
    }
    throw Error(ErrorCode::InvalidArgument, fmt::format("no synthetic model '{}'", name), "--synthetic",
        fmt::format("known: {} (only architectures this build can run)", fmt::join(names, ", ")));
}

std::unique_ptr<Model> makeSyntheticModel(
    const std::string& name, std::shared_ptr<Backend> backend, uint64_t seed, uint64_t availableBytes)
{
    const SyntheticModelSpec& spec = findSyntheticModel(name);
    const uint64_t needed = spec.hostBytes + kHeadroomBytes;
    if (availableBytes != 0 && needed > availableBytes)
        throw Error(ErrorCode::InvalidArgument,
            fmt::format("{} ({:.2f}B parameters) needs about {:.1f} GiB of host memory as F32 weights "
                        "(+{:.1f} GiB headroom), but only {:.1f} GiB is available",
                spec.name, double(spec.parameters) / 1e9, double(spec.hostBytes) / double(1 << 30),
                double(kHeadroomBytes) / double(1 << 30), double(availableBytes) / double(1 << 30)),
            "--synthetic", "pick a smaller synthetic model");
    RandomCheckpoint ckpt = spec.build(seed);
    const std::filesystem::path label = "<synthetic " + spec.name + ">";
    const HfConfig config = HfConfig::fromJson(nlohmann::json(ckpt.config), label / "config.json");
    const Checkpoint checkpoint = Checkpoint::fromTensors(label, ckpt.tensors);
    ckpt.tensors.clear();
    return findModelFactory(config).create(config, checkpoint, std::move(backend));
}

} // namespace archlens
