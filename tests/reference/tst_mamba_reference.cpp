// Our Mamba-1 against the independent PyTorch reference (tests/reference/make_goldens.py):
// logits and every probe of every layer, both forward paths, chunked prefill, greedy
// generation, and bit-identical replays.
#include <gtest/gtest.h>

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
    double tolerance;
};

const Case kCases[] = {
    {"mamba_f32_tied", 1e-4},        {"mamba_f32_untied_bias", 1e-4}, {"mamba_f32_noconvbias", 1e-4},
    {"mamba_bf16", 1e-4},            {"mamba_original_layout", 1e-4}, {"mamba_sharded", 1e-4},
};

const std::pair<Probe, const char*> kProbeKeys[] = {
    {Probe::SsmX, "x"},         {Probe::SsmDelta, "delta"},          {Probe::SsmB, "B"}, {Probe::SsmC, "C"},
    {Probe::SsmState, "state"}, {Probe::SsmStateNorm, "state_norm"}, {Probe::SsmY, "y"}, {Probe::SsmGate, "gate"},
};

std::vector<int32_t> ids(const Tensor& t)
{
    return std::vector<int32_t>(t.i32(), t.i32() + t.numel());
}

class MambaReference : public ::testing::TestWithParam<Case> {
protected:
    void SetUp() override
    {
        const auto dir = test::referenceCase(GetParam().name);
        golden = SafetensorsFile::open(dir / "golden.safetensors");
        model = loadModel(dir, std::shared_ptr<Backend>(makeCpuReferenceBackend()));
        input = ids(golden->tensor("input_ids"));
    }
    std::shared_ptr<SafetensorsFile> golden;
    std::unique_ptr<Model> model;
    std::vector<int32_t> input;
};

TEST_P(MambaReference, ChunkPathMatchesLogitsAndEveryProbe)
{
    CaptureSink sink;
    auto state = model->newState();
    const Tensor logits = model->forward(input, *state, &sink, ForwardMode::Chunk, true);
    const double tol = GetParam().tolerance;
    EXPECT_LE(relError(logits, golden->tensor("logits")), tol);
    for (int layer = 0; layer < model->info().layers; ++layer) {
        for (auto [probe, key] : kProbeKeys) {
            const Tensor* got = sink.get(layer, probe);
            ASSERT_NE(got, nullptr) << probeName(probe) << " layer " << layer;
            const Tensor want = golden->tensor(fmt::format("layers.{}.ssm.{}", layer, key));
            ASSERT_EQ(got->numel(), want.numel()) << probeName(probe);
            EXPECT_LE(relError(*got, want), tol) << probeName(probe) << " layer " << layer;
        }
        const Tensor* A = sink.constant(fmt::format("{}.ssm.A", layer));
        const Tensor* D = sink.constant(fmt::format("{}.ssm.D", layer));
        ASSERT_TRUE(A && D);
        EXPECT_LE(relError(*A, golden->tensor(fmt::format("layers.{}.ssm.A", layer))), 1e-6);
        EXPECT_LE(relError(*D, golden->tensor(fmt::format("layers.{}.ssm.D", layer))), 1e-6);
    }
}

TEST_P(MambaReference, RecurrentPathAgreesWithChunkPath)
{
    CaptureSink chunkSink, stepSink;
    auto s1 = model->newState();
    auto s2 = model->newState();
    const Tensor chunk = model->forward(input, *s1, &chunkSink, ForwardMode::Chunk, true);
    const Tensor step = model->forward(input, *s2, &stepSink, ForwardMode::Recurrent, true);
    EXPECT_LE(relError(step, chunk), 1e-5);
    EXPECT_LE(relError(step, golden->tensor("logits")), GetParam().tolerance);
    for (int layer = 0; layer < model->info().layers; ++layer)
        for (auto [probe, key] : kProbeKeys)
            EXPECT_LE(relError(*stepSink.get(layer, probe), *chunkSink.get(layer, probe)), 1e-5) << key;
    // the states left behind agree too
    auto t1 = s1->tensors();
    auto t2 = s2->tensors();
    ASSERT_EQ(t1.size(), t2.size());
    for (size_t i = 0; i < t1.size(); ++i)
        EXPECT_LE(relError(t2[i].second, t1[i].second), 1e-5) << t1[i].first;
}

TEST_P(MambaReference, ChunkedPrefillContinuesFromState)
{
    auto whole = model->newState();
    const Tensor full = model->forward(input, *whole, nullptr, ForwardMode::Chunk, true);
    auto split = model->newState();
    const size_t cut = input.size() / 2 + 1;
    const Tensor first = model->forward(std::span(input).first(cut), *split, nullptr, ForwardMode::Chunk, true);
    const Tensor second = model->forward(std::span(input).subspan(cut), *split, nullptr, ForwardMode::Chunk, true);
    EXPECT_LE(relError(first, full.rows(0, int64_t(cut))), 1e-5);
    EXPECT_LE(relError(second, full.rows(int64_t(cut), int64_t(input.size()))), 1e-5);
    EXPECT_EQ(split->position, int64_t(input.size()));
}

TEST_P(MambaReference, GreedyGenerationMatches)
{
    auto state = model->newState();
    GenerateOptions g;
    g.maxNewTokens = 8;
    const auto result = generate(*model, *state, input, g);
    EXPECT_EQ(result.tokens, ids(golden->tensor("generated_ids")));
}

TEST_P(MambaReference, SamePathReplayedIsBitIdentical)
{
    auto s1 = model->newState();
    auto s2 = model->newState();
    const Tensor a = model->forward(input, *s1, nullptr, ForwardMode::Chunk, true);
    const Tensor b = model->forward(input, *s2, nullptr, ForwardMode::Chunk, true);
    EXPECT_TRUE(test::bitEqual(a, b));
    // and a cloned state continues exactly as the original
    auto c1 = s1->clone();
    const int32_t next[1] = {input.front()};
    const Tensor x = model->forward(next, *s1, nullptr, ForwardMode::Recurrent, true);
    const Tensor y = model->forward(next, *c1, nullptr, ForwardMode::Recurrent, true);
    EXPECT_TRUE(test::bitEqual(x, y));
}

INSTANTIATE_TEST_SUITE_P(Golden, MambaReference, ::testing::ValuesIn(kCases),
                         [](const auto& p) { return std::string(p.param.name); });

// transformers run entirely in bfloat16 (activations too) lands within 2e-2 of our F32 compute.
TEST(MambaReferenceBf16, WithinBf16ComputeTolerance)
{
    const auto dir = test::referenceCase("mamba_bf16");
    auto golden = SafetensorsFile::open(dir / "golden.safetensors");
    auto model = loadModel(dir, std::shared_ptr<Backend>(makeCpuReferenceBackend()));
    EXPECT_EQ(model->info().weightDType, "BF16");
    CaptureSink sink;
    auto state = model->newState();
    const Tensor logits = model->forward(ids(golden->tensor("input_ids")), *state, &sink, ForwardMode::Chunk, true);
    EXPECT_LE(relError(logits, golden->tensor("bf16compute.logits")), 2e-2);
    for (int layer = 0; layer < model->info().layers; ++layer)
        for (auto [probe, key] : kProbeKeys)
            EXPECT_LE(relError(*sink.get(layer, probe), golden->tensor(fmt::format("bf16compute.layers.{}.ssm.{}", layer, key))),
                      2e-2)
                << key << " layer " << layer;
}

} // namespace
