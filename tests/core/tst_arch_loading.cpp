// Loading the attention and MoE architectures: facts read from headers only, transformers
// v5 layouts (rope_parameters, fused experts), and bad input — a wrong expert count, a
// missing expert tensor, an unknown rope scaling type, an impossible Jamba schedule, a
// model too large for memory — giving a clear Error that names the key or tensor.
#include <gtest/gtest.h>

#include <cstring>
#include <fstream>

#include <nlohmann/json.hpp>

#include "formats/safetensors.h"
#include "models/model.h"
#include "test_support.h"

using namespace archlens;
namespace fs = std::filesystem;

namespace {

std::shared_ptr<Backend> cpu() { return std::shared_ptr<Backend>(makeCpuReferenceBackend()); }

struct CaseCopy {
    test::TempDir tmp;
    fs::path dir;
    explicit CaseCopy(const std::string& name)
    {
        dir = tmp.path() / name;
        fs::create_directories(dir);
        for (const char* f : {"config.json", "model.safetensors"})
            fs::copy(test::referenceCase(name) / f, dir / f);
    }
    nlohmann::json config() const
    {
        std::ifstream in(dir / "config.json");
        return nlohmann::json::parse(in);
    }
    void writeConfig(const nlohmann::json& j) const { std::ofstream(dir / "config.json") << j.dump(2); }
    // Rewrites the weights, letting `edit` drop (return false) or rename tensors.
    template <typename F>
    void rewriteWeights(F edit) const
    {
        const Checkpoint ckpt = Checkpoint::open(dir);
        std::vector<std::pair<std::string, Tensor>> keep;
        for (std::string name : ckpt.names()) {
            Tensor t = ckpt.get(name).clone();
            if (edit(name, t))
                keep.emplace_back(name, t);
        }
        writeSafetensors(dir / "model.safetensors", keep);
    }
};

struct LoadError {
    std::string what;
    ErrorCode code = ErrorCode::Internal;
};

LoadError loadError(const fs::path& dir)
{
    try {
        loadModel(dir, cpu());
    } catch (const Error& e) {
        return {e.what(), e.code()};
    }
    return {"no error"};
}

bool mentions(const std::string& s, const std::string& what) { return s.find(what) != std::string::npos; }

TEST(ArchLoading, DescribeCountsWhatLoadingBinds)
{
    for (const char* name : {"llama_gqa", "llama_tied", "neox_sequential", "olmoe", "qwen2_moe", "jamba"}) {
        const ModelInfo info = describeModel(test::referenceCase(name));
        const Checkpoint ckpt = Checkpoint::open(test::referenceCase(name));
        // every stored tensor is a parameter here (F32 files: 4 bytes each; the F16 one: 2)
        const uint64_t bytesPerParam = info.weightDType == "F16" ? 2 : 4;
        EXPECT_EQ(uint64_t(info.parameters) * bytesPerParam, ckpt.totalBytes()) << name;
        EXPECT_GT(info.kvCacheBytesPerToken, 0u) << name;
        EXPECT_EQ(info.layerMixer.size(), size_t(info.layers)) << name;
    }
    // Pythia's legacy buffers (BOOL masks, masked_bias, inv_freq) are stored but are not parameters
    const ModelInfo neox = describeModel(test::referenceCase("neox_parallel"));
    EXPECT_LT(uint64_t(neox.parameters) * 4, Checkpoint::open(test::referenceCase("neox_parallel")).totalBytes());

    const ModelInfo mixtral = describeModel(test::referenceCase("mixtral"));
    EXPECT_EQ(mixtral.experts, 3);
    EXPECT_EQ(mixtral.expertsPerToken, 2);
    // one of the three experts (3·I·D each, I = D = 32) is idle per token in each of 2 layers
    EXPECT_EQ(mixtral.parameters - mixtral.activeParameters, 2 * 3 * 32 * 32);
    EXPECT_EQ(mixtral.kvCacheBytesPerToken, uint64_t(2 * 2 * 2 * 8 * 4)); // layers · (K,V) · Hkv · Dh · F32
    EXPECT_EQ(mixtral.layerFfn, (std::vector<std::string>{"moe", "moe"}));

    const ModelInfo jamba = describeModel(test::referenceCase("jamba"));
    EXPECT_EQ(jamba.layerMixer,
              (std::vector<std::string>{"mamba", "attention", "mamba", "mamba", "attention", "mamba"}));
    EXPECT_EQ(jamba.layerFfn, (std::vector<std::string>{"moe", "mlp", "moe", "mlp", "moe", "mlp"}));
    EXPECT_EQ(jamba.stateBytesPerSequence, uint64_t(4 * 96 * (8 + 3) * 4)); // 4 Mamba layers · E·(N + K−1) · F32
    EXPECT_EQ(jamba.kvCacheBytesPerToken, uint64_t(2 * 2 * 2 * 12 * 4));
}

TEST(ArchLoading, TransformersV5LayoutGivesTheSameLogits)
{
    // rope_parameters instead of rope_theta, experts fused as gate_up_proj (X, 2I, D) and
    // down_proj (X, D, I) under mlp.
    CaseCopy c("mixtral");
    auto j = c.config();
    j["rope_parameters"] = {{"rope_type", "default"}, {"rope_theta", j["rope_theta"]}};
    j["rope_theta"] = 1.0e4; // must be ignored in favour of rope_parameters
    c.writeConfig(j);
    const Checkpoint orig = Checkpoint::open(test::referenceCase("mixtral"));
    const int64_t X = 3, I = 32, D = 32;
    std::vector<std::pair<std::string, Tensor>> out;
    for (const auto& name : orig.names())
        if (name.find("block_sparse_moe") == std::string::npos)
            out.emplace_back(name, orig.get(name).clone());
    for (int layer = 0; layer < 2; ++layer) {
        const std::string p = fmt::format("model.layers.{}.block_sparse_moe.", layer);
        const std::string q = fmt::format("model.layers.{}.mlp.", layer);
        out.emplace_back(q + "gate.weight", orig.get(p + "gate.weight").clone());
        Tensor gu = Tensor::empty({X, 2 * I, D}), dn = Tensor::empty({X, D, I});
        for (int64_t e = 0; e < X; ++e) {
            const auto w = [&](const char* n) { return orig.get(fmt::format("{}experts.{}.{}.weight", p, e, n)); };
            std::memcpy(gu.f32() + e * 2 * I * D, w("w1").f32(), size_t(I * D) * 4);
            std::memcpy(gu.f32() + e * 2 * I * D + I * D, w("w3").f32(), size_t(I * D) * 4);
            std::memcpy(dn.f32() + e * D * I, w("w2").f32(), size_t(D * I) * 4);
        }
        out.emplace_back(q + "experts.gate_up_proj", gu);
        out.emplace_back(q + "experts.down_proj", dn);
    }
    writeSafetensors(c.dir / "model.safetensors", out);

    auto golden = SafetensorsFile::open(test::referenceCase("mixtral") / "golden.safetensors");
    auto model = loadModel(c.dir, cpu());
    const Tensor ids = golden->tensor("input_ids");
    auto state = model->newState();
    const Tensor logits = model->forward(std::vector<int32_t>(ids.i32(), ids.i32() + ids.numel()), *state, nullptr,
                                         ForwardMode::Chunk, true);
    EXPECT_LE(test::relError(logits, golden->tensor("logits")), 1e-4);
    EXPECT_EQ(model->info().parameters, describeModel(test::referenceCase("mixtral")).parameters);
}

TEST(ArchLoading, WrongExpertCountNamesKeyAndRouter)
{
    CaseCopy c("mixtral");
    auto j = c.config();
    for (int wrong : {2, 4}) {
        j["num_local_experts"] = wrong;
        c.writeConfig(j);
        const auto e = loadError(c.dir);
        EXPECT_EQ(e.code, ErrorCode::Config) << e.what;
        EXPECT_TRUE(mentions(e.what, "num_local_experts")) << e.what;
        EXPECT_TRUE(mentions(e.what, "model.layers.0.block_sparse_moe.gate.weight")) << e.what;
        EXPECT_TRUE(mentions(e.what, "3 rows")) << e.what;
        // describe (what `info` runs) refuses it the same way
        EXPECT_THROW(describeModel(c.dir), Error);
    }
    CaseCopy jb("jamba");
    j = jb.config();
    j["num_experts"] = 2;
    jb.writeConfig(j);
    auto e = loadError(jb.dir);
    EXPECT_TRUE(mentions(e.what, "num_experts")) << e.what;
    EXPECT_TRUE(mentions(e.what, "model.layers.0.feed_forward.router.weight")) << e.what;

    CaseCopy o("olmoe");
    j = o.config();
    j["num_experts_per_tok"] = 6; // more than the 5 experts
    o.writeConfig(j);
    e = loadError(o.dir);
    EXPECT_TRUE(mentions(e.what, "num_experts_per_tok")) << e.what;
}

TEST(ArchLoading, MissingExpertTensorNamesIt)
{
    CaseCopy c("mixtral");
    c.rewriteWeights([](const std::string& n, Tensor&) { return n != "model.layers.1.block_sparse_moe.experts.2.w2.weight"; });
    auto e = loadError(c.dir);
    EXPECT_EQ(e.code, ErrorCode::Format) << e.what;
    EXPECT_TRUE(mentions(e.what, "model.layers.1.block_sparse_moe.experts.2.w2.weight")) << e.what;

    CaseCopy q("qwen2_moe");
    q.rewriteWeights([](const std::string& n, Tensor&) { return n != "model.layers.2.mlp.shared_expert_gate.weight"; });
    e = loadError(q.dir);
    EXPECT_TRUE(mentions(e.what, "model.layers.2.mlp.shared_expert_gate.weight")) << e.what;
}

TEST(ArchLoading, UnknownRopeScalingTypeNamesIt)
{
    CaseCopy c("llama_gqa");
    auto j = c.config();
    j["rope_scaling"] = {{"type", "longrope"}, {"factor", 2.0}};
    c.writeConfig(j);
    auto e = loadError(c.dir);
    EXPECT_EQ(e.code, ErrorCode::Unsupported) << e.what;
    EXPECT_TRUE(mentions(e.what, "rope_scaling.type")) << e.what;
    EXPECT_TRUE(mentions(e.what, "longrope")) << e.what;

    j.erase("rope_scaling");
    j["rope_parameters"] = {{"rope_type", "su"}, {"rope_theta", 10000.0}};
    c.writeConfig(j);
    e = loadError(c.dir);
    EXPECT_TRUE(mentions(e.what, "rope_parameters.rope_type")) << e.what;
    EXPECT_TRUE(mentions(e.what, "\"su\"")) << e.what;

    // a known type missing its parameters names the missing key
    j.erase("rope_parameters");
    j["rope_scaling"] = {{"rope_type", "llama3"}, {"factor", 4.0}, {"high_freq_factor", 2.0},
                         {"original_max_position_embeddings", 16}};
    c.writeConfig(j);
    e = loadError(c.dir);
    EXPECT_EQ(e.code, ErrorCode::Config) << e.what;
    EXPECT_TRUE(mentions(e.what, "rope_scaling.low_freq_factor")) << e.what;

    j["rope_scaling"] = {{"type", "linear"}};
    c.writeConfig(j);
    e = loadError(c.dir);
    EXPECT_TRUE(mentions(e.what, "rope_scaling.factor")) << e.what;
}

TEST(ArchLoading, ImpossibleJambaScheduleNamesTheKey)
{
    CaseCopy c("jamba");
    const auto base = c.config();
    struct Bad {
        const char* key;
        int value;
    };
    for (const Bad& b : {Bad{"attn_layer_offset", 3}, Bad{"attn_layer_offset", -1}, Bad{"attn_layer_period", 0},
                         Bad{"expert_layer_offset", 2}, Bad{"expert_layer_period", -2}}) {
        auto j = base;
        j[b.key] = b.value;
        c.writeConfig(j);
        const auto e = loadError(c.dir);
        EXPECT_EQ(e.code, ErrorCode::Config) << b.key << ": " << e.what;
        EXPECT_TRUE(mentions(e.what, b.key)) << e.what;
    }
    // a possible but different schedule asks for tensors the checkpoint does not have
    auto j = base;
    j["attn_layer_offset"] = 0;
    c.writeConfig(j);
    const auto e = loadError(c.dir);
    EXPECT_TRUE(mentions(e.what, "model.layers.0.self_attn.q_proj.weight")) << e.what;
}

TEST(ArchLoading, EosTokenListTakesTheFirst)
{
    CaseCopy c("llama_gqa");
    auto j = c.config();
    j["eos_token_id"] = {5, 7}; // as Llama 3 configs write it
    c.writeConfig(j);
    EXPECT_EQ(describeModel(c.dir).eosTokenId, 5);
}

TEST(ArchLoading, NeoxHeadsMustDivideHidden)
{
    CaseCopy c("neox_parallel");
    auto j = c.config();
    j["num_attention_heads"] = 5;
    c.writeConfig(j);
    const auto e = loadError(c.dir);
    EXPECT_TRUE(mentions(e.what, "num_attention_heads")) << e.what;
}

TEST(ArchLoading, TooLargeForMemoryIsRefusedWithTheNumbers)
{
    ModelInfo info = describeModel(test::referenceCase("llama_gqa"));
    auto be = cpu();
    EXPECT_NO_THROW(checkFitsMemory(info, *be));
    info.parameters = int64_t(1) << 40;
    info.loadedBytes = uint64_t(info.parameters) * 4;
    try {
        checkFitsMemory(info, *be);
        FAIL() << "no error";
    } catch (const Error& e) {
        EXPECT_EQ(e.code(), ErrorCode::Backend);
        EXPECT_TRUE(mentions(e.what(), std::to_string(info.loadedBytes))) << e.what();
        EXPECT_TRUE(mentions(e.what(), "available")) << e.what();
        EXPECT_TRUE(mentions(e.what(), "MemAvailable")) << e.what();
    }
}

} // namespace
