// GPT-NeoX / Pythia (GPTNeoXForCausalLM), model-formats §5:
//   parallel   h = h + Attn(LN₁(h)) + MLP(LN₂(h))      (use_parallel_residual, the default)
//   sequential a = h + Attn(LN₁(h)); h = a + MLP(LN₂(a))
// LayerNorm with bias; MLP = dense_4h_to_h(GELU(dense_h_to_4h x)); attention with biases,
// rotary on the first rotary_pct of each head. The fused query_key_value is laid out per head
// ([H, 3, Dh] rows), split here into q, k and v at load. Legacy buffers in old files
// (attention.bias BOOL masks, attention.masked_bias, rotary_emb.inv_freq) are never bound.
#include <cmath>
#include <cstring>

#include <fmt/format.h>

#include "formats/safetensors.h"
#include "models/decoder.h"

namespace archlens {

namespace {

// Rows of head j's part (0 q, 1 k, 2 v) from a per-head fused (H·3·Dh, cols) tensor.
Tensor splitFused(const Tensor& fused, int64_t H, int64_t Dh, int part)
{
    if (!fused.defined())
        return {};
    const int64_t cols = fused.rank() == 2 ? fused.dim(1) : 1;
    Shape shape = fused.rank() == 2 ? Shape{H * Dh, cols} : Shape{H * Dh};
    Tensor out = Tensor::empty(shape);
    const size_t rowBytes = size_t(Dh * cols) * sizeof(float);
    for (int64_t j = 0; j < H; ++j)
        std::memcpy(out.f32() + j * Dh * cols, fused.f32() + (j * 3 + part) * Dh * cols, rowBytes);
    return out;
}

DecoderSpec buildNeox(const HfConfig& c, WeightBinder& wb)
{
    const int64_t D = positiveInt(c, "hidden_size");
    const int64_t layers = positiveInt(c, "num_hidden_layers");
    const int64_t H = positiveInt(c, "num_attention_heads");
    const int64_t I = positiveInt(c, "intermediate_size", 4 * D);
    const int64_t V = positiveInt(c, "vocab_size");
    if (D % H != 0)
        c.fail("num_attention_heads", fmt::format("{} does not divide hidden_size {}", H, D));
    const int64_t Dh = D / H;
    const double eps = c.getDouble("layer_norm_eps", 1e-5);
    const bool parallel = c.getBool("use_parallel_residual", true);
    const bool bias = c.getBool("attention_bias", true);
    const bool tied = c.getBool("tie_word_embeddings", false);
    const std::string act = c.getString("hidden_act", "gelu");
    GeluKind gelu = GeluKind::Erf;
    if (act == "gelu_new" || act == "gelu_fast" || act == "gelu_pytorch_tanh")
        gelu = GeluKind::Tanh;
    else if (act != "gelu")
        c.fail("hidden_act", fmt::format("expected gelu, gelu_new, gelu_fast or gelu_pytorch_tanh, found \"{}\"", act));
    const double fraction = c.has("partial_rotary_factor") ? c.getDouble("partial_rotary_factor")
                                                           : c.getDouble("rotary_pct", 0.25);

    AttentionConfig ac;
    ac.D = D;
    ac.H = H;
    ac.Hkv = H;
    ac.Dh = Dh;
    ac.rope = readRopeConfig(c, Dh, fraction, 10000, "rotary_emb_base");
    ac.scale = float(1.0 / std::sqrt(double(Dh)));

    auto layerNorm = [&](const std::string& name) {
        return NormWeights{wb.get(name + ".weight", {D}), wb.get(name + ".bias", {D}), float(eps), true};
    };
    DecoderSpec s;
    s.D = D;
    s.V = V;
    s.parallelResidual = parallel;
    s.embedding = wb.get("gpt_neox.embed_in.weight", {V, D});
    for (int64_t i = 0; i < layers; ++i) {
        const std::string p = fmt::format("gpt_neox.layers.{}.", i);
        DecoderLayer L;
        L.inputNorm = layerNorm(p + "input_layernorm");
        L.ffnNorm = layerNorm(p + "post_attention_layernorm");
        const Tensor qkv = wb.get(p + "attention.query_key_value.weight", {3 * D, D});
        const Tensor qkvBias = bias ? wb.get(p + "attention.query_key_value.bias", {3 * D}) : Tensor();
        AttentionWeights w;
        w.q = splitFused(qkv, H, Dh, 0);
        w.k = splitFused(qkv, H, Dh, 1);
        w.v = splitFused(qkv, H, Dh, 2);
        w.qBias = splitFused(qkvBias, H, Dh, 0);
        w.kBias = splitFused(qkvBias, H, Dh, 1);
        w.vBias = splitFused(qkvBias, H, Dh, 2);
        w.o = wb.get(p + "attention.dense.weight", {D, D});
        if (bias)
            w.oBias = wb.get(p + "attention.dense.bias", {D});
        L.attention = std::make_unique<AttentionBlock>(ac, std::move(w));
        MlpWeights m;
        m.up = wb.get(p + "mlp.dense_h_to_4h.weight", {I, D});
        m.upBias = wb.get(p + "mlp.dense_h_to_4h.bias", {I});
        m.down = wb.get(p + "mlp.dense_4h_to_h.weight", {D, I});
        m.downBias = wb.get(p + "mlp.dense_4h_to_h.bias", {D});
        L.mlp = std::make_unique<MlpBlock>(MlpBlock::Kind::Gelu, std::move(m), gelu);
        s.layers.push_back(std::move(L));
    }
    s.finalNorm = layerNorm("gpt_neox.final_layer_norm");
    s.lmHead = bindOutputHead(wb, "embed_out.weight", s.embedding, V, D, tied);
    s.info.tiedEmbeddings = !wb.has("embed_out.weight");
    s.info.bosTokenId = tokenIdKey(c, "bos_token_id", 0);
    s.info.eosTokenId = tokenIdKey(c, "eos_token_id", 2);
    s.info.facts = {{"heads", fmt::format("{} × {} dims", H, Dh)},
                    {"intermediate", std::to_string(I)},
                    {"rotary", ac.rope.describe()},
                    {"residual", parallel ? "parallel (attention and MLP read the same input)" : "sequential"},
                    {"activation", act},
                    {"layer_norm eps", fmt::format("{:g}", eps)}};
    return s;
}

} // namespace

ModelFactory gptNeoxFactory()
{
    return decoderFactory("gpt_neox", {"GPTNeoXForCausalLM"}, {"gpt_neox"}, buildNeox);
}

} // namespace archlens
