// The fast CPU backend on the model level: every reference checkpoint (tests/reference/data)
// runs with backend "cpu" at every instruction-set level this CPU has, and its logits and
// every probe of every layer stay within 1e-5 (max abs error over max abs value) of the
// same model on the CPU reference backend, in both forward paths, and within the PyTorch
// goldens' own tolerance; greedy generation gives the golden tokens.
#include <gtest/gtest.h>

#include <fmt/format.h>

#include "backends/backend_factory.h"
#include "backends/cpu_fast.h"
#include "formats/safetensors.h"
#include "models/model.h"
#include "models/synthetic.h"
#include "ops/math.h"
#include "runtime/generator.h"
#include "test_support.h"

using namespace archlens;
using archlens::test::CaptureSink;
using archlens::test::relError;

namespace {

constexpr double kTolVsReference = 1e-5;
constexpr double kTolVsGolden = 1e-4; // what tst_mamba_reference asks of the reference backend

const char* const kCheckpoints[] = { "mamba_f32_tied", "mamba_f32_untied_bias", "mamba_f32_noconvbias", "mamba_bf16",
    "mamba_original_layout", "mamba_sharded" };
const char* const kIsas[] = { "scalar", "avx2", "avx512" };

struct Case {
    std::string checkpoint, isa;
};

std::vector<Case> cases()
{
    std::vector<Case> out;
    for (const char* c : kCheckpoints)
        for (const char* isa : kIsas)
            out.push_back({ c, isa });
    return out;
}

std::vector<int32_t> ids(const Tensor& t)
{
    return std::vector<int32_t>(t.i32(), t.i32() + t.numel());
}

class FastModel : public ::testing::TestWithParam<Case> {
protected:
    void SetUp() override
    {
        std::shared_ptr<Backend> fast;
        try {
            fast = createBackend("cpu", { 3, false, GetParam().isa }).backend;
        } catch (const Error& e) {
            GTEST_SKIP() << e.what();
        }
        const auto dir = test::referenceCase(GetParam().checkpoint);
        golden = SafetensorsFile::open(dir / "golden.safetensors");
        model = loadModel(dir, fast);
        reference = loadModel(dir, createBackend("cpu-reference").backend);
        input = ids(golden->tensor("input_ids"));
    }
    std::shared_ptr<SafetensorsFile> golden;
    std::unique_ptr<Model> model, reference;
    std::vector<int32_t> input;
};

TEST_P(FastModel, BothPathsMatchTheReferenceBackend)
{
    for (ForwardMode mode : { ForwardMode::Chunk, ForwardMode::Recurrent }) {
        SCOPED_TRACE(mode == ForwardMode::Chunk ? "chunk path" : "recurrent path");
        CaptureSink got, want;
        auto s1 = model->newState();
        auto s2 = reference->newState();
        const Tensor logits = model->forward(input, *s1, &got, mode, true);
        const Tensor refLogits = reference->forward(input, *s2, &want, mode, true);
        EXPECT_LE(relError(logits, refLogits), kTolVsReference);
        EXPECT_LE(relError(logits, golden->tensor("logits")), kTolVsGolden);
        for (int layer = 0; layer < model->info().layers; ++layer)
            for (Probe p : { Probe::SsmX, Probe::SsmDelta, Probe::SsmB, Probe::SsmC, Probe::SsmState,
                     Probe::SsmStateNorm, Probe::SsmY, Probe::SsmGate }) {
                ASSERT_TRUE(got.get(layer, p) && want.get(layer, p)) << probeName(p);
                EXPECT_LE(relError(*got.get(layer, p), *want.get(layer, p)), kTolVsReference)
                    << probeName(p) << " layer " << layer;
            }
        auto t1 = s1->tensors();
        auto t2 = s2->tensors();
        ASSERT_EQ(t1.size(), t2.size());
        for (size_t i = 0; i < t1.size(); ++i)
            EXPECT_LE(relError(t1[i].second, t2[i].second), kTolVsReference) << t1[i].first;
    }
}

TEST_P(FastModel, GreedyGenerationMatchesTheGoldens)
{
    auto state = model->newState();
    GenerateOptions g;
    g.maxNewTokens = 8;
    EXPECT_EQ(generate(*model, *state, input, g).tokens, ids(golden->tensor("generated_ids")));
}

INSTANTIATE_TEST_SUITE_P(Golden, FastModel, ::testing::ValuesIn(cases()),
    [](const ::testing::TestParamInfo<Case>& p) { return p.param.checkpoint + "_" + p.param.isa; });

// Longer than the goldens: the bundled demo model (E = 256) over 600 tokens, so the scan
// crosses its 64-token chunks and the state runs for a while.
TEST(FastModelDemo, LongPromptMatchesTheReferenceBackend)
{
    const auto dir = std::filesystem::path(ARCHLENS_SOURCE_DIR) / "resources/models/mamba-text";
    auto model = loadModel(dir, createBackend("cpu", { 3, false, "" }).backend);
    auto reference = loadModel(dir, createBackend("cpu-reference").backend);
    std::vector<int32_t> prompt(600);
    uint64_t rng = 3;
    for (auto& id : prompt)
        id = int32_t(splitmix64(rng) % uint64_t(model->info().vocabRows));
    CaptureSink got, want;
    auto s1 = model->newState();
    auto s2 = reference->newState();
    EXPECT_LE(relError(model->forward(prompt, *s1, &got, ForwardMode::Chunk, true),
                  reference->forward(prompt, *s2, &want, ForwardMode::Chunk, true)),
        kTolVsReference);
    for (int layer = 0; layer < model->info().layers; ++layer)
        for (Probe p : { Probe::SsmDelta, Probe::SsmState, Probe::SsmY, Probe::SsmGate })
            EXPECT_LE(relError(*got.get(layer, p), *want.get(layer, p)), kTolVsReference)
                << probeName(p) << " layer " << layer;
}

TEST(SyntheticModels, RefuseWithTheNumbersWhenTooBig)
{
    try {
        makeSyntheticModel("mamba-2.8b", createBackend("cpu-reference").backend, 1, uint64_t(1) << 30);
        FAIL() << "expected a refusal";
    } catch (const Error& e) {
        const std::string what = e.what();
        EXPECT_NE(what.find("mamba-2.8b"), std::string::npos) << what;
        EXPECT_NE(what.find("GiB"), std::string::npos) << what;
        EXPECT_NE(what.find("1.0 GiB is available"), std::string::npos) << what;
    }
    EXPECT_THROW(findSyntheticModel("mamba-7t"), Error);
}

TEST(SyntheticModels, TableMatchesWhatTheRegistryBuilds)
{
    // the small rows of each architecture, built for real: the parameter count and bytes
    // the table promises (used for the memory check) are what the model reports, and it runs
    struct Row {
        const char* name;
        int layers;
        int64_t vocab;
    };
    for (Row row : { Row { "mamba-130m", 24, 50280 }, Row { "pythia-160m", 12, 50304 }, Row { "mixtral-tiny", 8, 32000 } }) {
        SCOPED_TRACE(row.name);
        const SyntheticModelSpec& spec = findSyntheticModel(row.name);
        auto model = makeSyntheticModel(spec.name, createBackend("cpu").backend, 7, 0);
        EXPECT_EQ(model->info().architecture, spec.architecture);
        EXPECT_EQ(model->info().parameters, spec.parameters);
        EXPECT_EQ(model->info().loadedBytes, spec.hostBytes);
        EXPECT_EQ(model->info().layers, row.layers);
        auto state = model->newState();
        const int32_t prompt[3] = { 1, 2, int32_t(row.vocab - 1) };
        const Tensor logits = model->forward(prompt, *state, nullptr, ForwardMode::Chunk, false);
        EXPECT_EQ(logits.dim(1), row.vocab);
        for (float v : logits.span())
            ASSERT_TRUE(std::isfinite(v));
    }
}

TEST(SyntheticModels, Mixtral8x7bIsRefusedUpFrontWithItsSize)
{
    // 46.7B parameters: 174 GiB as F32, refused before a byte is drawn
    try {
        makeSyntheticModel("mixtral-8x7b", createBackend("cpu").backend, 1, uint64_t(64) << 30);
        FAIL() << "expected a refusal";
    } catch (const Error& e) {
        const std::string what = e.what();
        EXPECT_NE(what.find("46.70B parameters"), std::string::npos) << what;
        EXPECT_NE(what.find("64.0 GiB is available"), std::string::npos) << what;
    }
}

} // namespace
