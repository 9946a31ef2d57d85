// GPT-NeoX, Llama (every rope scaling), Mixtral, OLMoE, Qwen2-MoE and Jamba against the
// independent PyTorch reference (tests/reference/make_goldens_arch.py): logits and every
// probe the golden has (attention weights, router statistics, Jamba's SSM internals), the
// model-level load-balancing loss, incremental decoding against the full-sequence forward,
// and greedy generation.
#include <gtest/gtest.h>

#include <set>

#include <fmt/format.h>

#include "backends/backend.h"
#include "formats/safetensors.h"
#include "models/model.h"
#include "runtime/generator.h"
#include "test_support.h"

using namespace archlens;
using archlens::test::CaptureSink;
using archlens::test::relError;

namespace {

struct Case {
    const char* name;
    const char* modelType;
    // Tokens for which transformers' incremental form equals its full form (0: all). Dynamic
    // NTK rope re-bases per call once positions pass max_position_embeddings.
    int64_t incrementalTokens = 0;
};

const Case kCases[] = {
    {"llama_gqa", "llama"},
    {"llama_bf16", "llama"},
    {"llama_tied", "llama"},
    {"llama_rope_linear", "llama"},
    {"llama_rope_dynamic", "llama", 8},
    {"llama_rope_llama3", "llama"},
    {"llama_rope_yarn", "llama"},
    {"neox_parallel", "gpt_neox"},
    {"neox_sequential", "gpt_neox"},
    {"mixtral", "mixtral"},
    {"olmoe", "olmoe"},
    {"olmoe_norm", "olmoe"},
    {"qwen2_moe", "qwen2_moe"},
    {"jamba", "jamba"},
};

constexpr double kTol = 1e-4;

std::vector<int32_t> ids(const Tensor& t) { return std::vector<int32_t>(t.i32(), t.i32() + t.numel()); }

bool integerEqual(const Tensor& a, const Tensor& b)
{
    if (a.numel() != b.numel() || a.dtype() != b.dtype())
        return false;
    return std::memcmp(a.raw(), b.raw(), a.nbytes()) == 0;
}

ProbeSelection everything()
{
    ProbeSelection sel;
    for (Probe p : allProbes())
        sel.probes.insert(p);
    return sel;
}

// "layers.3.moe.router_logits" -> (3, moe.router_logits); nullopt for the ssm constants.
std::optional<std::pair<int, Probe>> probeOfGolden(const std::string& name)
{
    if (name.rfind("layers.", 0) != 0)
        return std::nullopt;
    const size_t dot = name.find('.', 7);
    const int layer = std::stoi(name.substr(7, dot - 7));
    const auto probe = probeFromName(name.substr(dot + 1));
    if (!probe)
        return std::nullopt;
    return std::make_pair(layer, *probe);
}

class ArchReference : public ::testing::TestWithParam<Case> {
protected:
    void SetUp() override
    {
        dir = test::referenceCase(GetParam().name);
        golden = SafetensorsFile::open(dir / "golden.safetensors");
        model = loadModel(dir, std::shared_ptr<Backend>(makeCpuReferenceBackend()));
        input = ids(golden->tensor("input_ids"));
    }
    bool hasGolden(const std::string& name) const { return golden->contains(name); }

    std::filesystem::path dir;
    std::shared_ptr<SafetensorsFile> golden;
    std::unique_ptr<Model> model;
    std::vector<int32_t> input;
};

TEST_P(ArchReference, FullForwardMatchesLogitsAndEveryProbe)
{
    EXPECT_EQ(model->info().modelType, GetParam().modelType);
    CaptureSink sink(everything());
    auto state = model->newState();
    const Tensor logits = model->forward(input, *state, &sink, ForwardMode::Chunk, true);
    EXPECT_LE(relError(logits, golden->tensor("logits")), kTol);

    std::set<std::pair<int, Probe>> expected;
    int compared = 0;
    for (const auto& [name, info] : golden->tensors()) {
        const auto key = probeOfGolden(name);
        if (!key) {
            // ssm.A / ssm.D constants of Jamba's Mamba layers
            if (name.rfind("layers.", 0) == 0) {
                const size_t dot = name.find('.', 7);
                const Tensor* c = sink.constant(name.substr(7, dot - 7) + name.substr(dot));
                ASSERT_NE(c, nullptr) << name;
                EXPECT_LE(relError(*c, golden->tensor(name)), 1e-6) << name;
                ++compared;
            }
            continue;
        }
        expected.insert(*key);
        const Tensor* got = sink.get(key->first, key->second);
        ASSERT_NE(got, nullptr) << name << " was not recorded";
        const Tensor want = golden->tensor(name);
        ASSERT_EQ(got->numel(), want.numel()) << name;
        if (want.dtype() == DType::I32 || want.dtype() == DType::I64)
            EXPECT_TRUE(integerEqual(*got, want)) << name;
        else
            EXPECT_LE(relError(*got, want), kTol) << name;
        ++compared;
    }
    EXPECT_GT(compared, 0);
    // nothing recorded where the reference has no such block (layer schedules, shared gate)
    for (const auto& key : sink.keys())
        EXPECT_TRUE(expected.count(key)) << "unexpected " << probeName(key.second) << " in layer " << key.first;
}

TEST_P(ArchReference, ModelLevelLoadBalancingLoss)
{
    CaptureSink sink(everything());
    auto state = model->newState();
    model->forward(input, *state, &sink, ForwardMode::Chunk, true);
    const auto& values = sink.modelValues();
    if (!hasGolden("load_balancing_loss")) {
        EXPECT_EQ(values.count("load_balancing_loss"), 0u);
        EXPECT_EQ(model->info().experts, 0);
        return;
    }
    ASSERT_EQ(values.count("load_balancing_loss"), 1u);
    const double want = golden->tensor("load_balancing_loss").f32()[0];
    EXPECT_NEAR(values.at("load_balancing_loss"), want, kTol * std::fabs(want));
    EXPECT_GT(model->info().experts, 0);
    EXPECT_LT(model->info().activeParameters, model->info().parameters);
}

TEST_P(ArchReference, IncrementalDecodeMatchesFullSequence)
{
    const int64_t limit = GetParam().incrementalTokens;
    const std::vector<int32_t> seq = limit > 0 ? std::vector<int32_t>(input.begin(), input.begin() + limit) : input;
    const int64_t T = int64_t(seq.size());
    ProbeSelection sel = everything();
    sel.probes.erase(Probe::AttnWeights); // (H, T, S) per call: compared in the full forward only
    CaptureSink fullSink(sel), incSink(sel), stepSink(sel);
    auto full = model->newState();
    const Tensor want = model->forward(seq, *full, &fullSink, ForwardMode::Chunk, true);

    // chunked prefill, then one token at a time
    auto inc = model->newState();
    const size_t cut = size_t(T / 2);
    const Tensor first = model->forward(std::span(seq).first(cut), *inc, &incSink, ForwardMode::Chunk, true);
    EXPECT_LE(relError(first, want.rows(0, int64_t(cut))), 1e-5);
    for (size_t t = cut; t < seq.size(); ++t) {
        const Tensor row = model->forward(std::span(seq).subspan(t, 1), *inc, &incSink, ForwardMode::Recurrent, true);
        EXPECT_LE(relError(row, want.rows(int64_t(t), int64_t(t) + 1)), 1e-5) << "token " << t;
    }
    EXPECT_EQ(inc->position, T);

    // the recurrent form from the start
    auto step = model->newState();
    const Tensor stepped = model->forward(seq, *step, &stepSink, ForwardMode::Recurrent, true);
    EXPECT_LE(relError(stepped, want), 1e-5);

    for (const auto& key : fullSink.keys()) {
        const Tensor* w = fullSink.get(key.first, key.second);
        for (const CaptureSink* s : {&incSink, &stepSink}) {
            const Tensor* g = s->get(key.first, key.second);
            ASSERT_NE(g, nullptr) << probeName(key.second);
            if (g->dtype() == DType::I32 || g->dtype() == DType::I64)
                EXPECT_TRUE(integerEqual(*g, *w)) << probeName(key.second) << " layer " << key.first;
            else
                EXPECT_LE(relError(*g, *w), 1e-5) << probeName(key.second) << " layer " << key.first;
        }
    }
    for (const CaptureSink* s : {&incSink, &stepSink})
        for (const auto& [name, value] : fullSink.modelValues())
            EXPECT_NEAR(s->modelValues().at(name), value, 1e-6 * std::fabs(value)) << name;

    // the caches left behind agree
    const auto a = full->tensors(), b = inc->tensors();
    ASSERT_EQ(a.size(), b.size());
    for (size_t i = 0; i < a.size(); ++i)
        EXPECT_LE(relError(b[i].second, a[i].second), 1e-5) << a[i].first;
}

TEST_P(ArchReference, GreedyGenerationMatches)
{
    auto state = model->newState();
    GenerateOptions g;
    g.maxNewTokens = 8;
    const auto result = generate(*model, *state, input, g);
    EXPECT_EQ(result.tokens, ids(golden->tensor("generated_ids")));
}

TEST_P(ArchReference, ClonedStateContinuesIdentically)
{
    auto s1 = model->newState();
    model->forward(input, *s1, nullptr, ForwardMode::Chunk, false);
    auto s2 = s1->clone();
    const int32_t next[1] = {input.front()};
    const Tensor x = model->forward(next, *s1, nullptr, ForwardMode::Recurrent, true);
    const Tensor y = model->forward(next, *s2, nullptr, ForwardMode::Recurrent, true);
    EXPECT_TRUE(test::bitEqual(x, y));
}

INSTANTIATE_TEST_SUITE_P(Golden, ArchReference, ::testing::ValuesIn(kCases),
                         [](const auto& p) { return std::string(p.param.name); });

// transformers run entirely in bfloat16 lands within 2e-2 of our F32 compute on BF16 weights.
TEST(ArchReferenceBf16, LlamaWithinBf16ComputeTolerance)
{
    const auto dir = test::referenceCase("llama_bf16");
    auto golden = SafetensorsFile::open(dir / "golden.safetensors");
    auto model = loadModel(dir, std::shared_ptr<Backend>(makeCpuReferenceBackend()));
    EXPECT_EQ(model->info().weightDType, "BF16");
    auto state = model->newState();
    const Tensor logits = model->forward(ids(golden->tensor("input_ids")), *state, nullptr, ForwardMode::Chunk, true);
    EXPECT_LE(relError(logits, golden->tensor("bf16compute.logits")), 2e-2);
}

} // namespace
