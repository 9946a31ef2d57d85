// Mamba's hidden attention (core/analysis/hidden_attention) against the independent PyTorch
// reference (tests/reference/hidden_attention_ref.py -> data/hidden_attention/golden.safetensors),
// computed from the Mamba goldens' recorded Δ, B, C, A; and, from a trace written by our own
// forward, Σ_s α_c[t, s] x_s[c] = y_t[c] − D[c] x_t[c] (the output before gating, without skip).
#include <gtest/gtest.h>

#include <cmath>

#include "analysis/hidden_attention.h"
#include "backends/backend.h"
#include "formats/safetensors.h"
#include "models/model.h"
#include "test_support.h"
#ifdef ARCHLENS_HAVE_HDF5
#include "formats/trace.h"
#endif

using namespace archlens;
using namespace archlens::analysis;

namespace {
struct Layer {
    Tensor delta, B, C, A;
    ScanInputs in() const
    {
        ScanInputs s;
        s.T = delta.dim(0);
        s.E = delta.dim(1);
        s.N = B.dim(1);
        s.delta = delta.f32();
        s.B = B.f32();
        s.C = C.f32();
        s.A = A.f32();
        return s;
    }
};
} // namespace

TEST(HiddenAttention, MatchesTheIndependentReference)
{
    const auto ref = SafetensorsFile::open(test::referenceCase("hidden_attention") / "golden.safetensors");
    int checked = 0;
    for (const char* name : {"mamba_f32_tied", "mamba_f32_untied_bias"}) {
        const auto g = SafetensorsFile::open(test::referenceCase(name) / "golden.safetensors");
        for (int l = 0; g->contains(fmt::format("layers.{}.ssm.delta", l)); ++l) {
            SCOPED_TRACE(fmt::format("{} layer {}", name, l));
            auto get = [&](const char* p) { return g->tensor(fmt::format("layers.{}.ssm.{}", l, p)).toF32(); };
            const Layer L{get("delta"), get("B"), get("C"), get("A")};
            const ScanInputs in = L.in();
            const Tensor want = ref->tensor(fmt::format("{}.layers.{}.alpha", name, l)).toF32(); // (E, T, T)
            ASSERT_EQ(want.dim(0), in.E);
            const AttentionWindow w = hiddenAttentionWindow(in.T - 1);
            EXPECT_FALSE(w.capped);
            double maxErr = 0, maxAbs = 0;
            std::vector<double> mean(size_t(in.T * in.T), 0.0);
            for (int64_t c = 0; c < in.E; ++c) {
                const auto a = hiddenAttention(in, c, w);
                for (int64_t i = 0; i < in.T * in.T; ++i) {
                    const double r = want.f32()[c * in.T * in.T + i];
                    maxErr = std::max(maxErr, std::fabs(a[size_t(i)] - r));
                    maxAbs = std::max(maxAbs, std::fabs(r));
                    mean[size_t(i)] += r / double(in.E);
                }
            }
            EXPECT_LE(maxErr / maxAbs, 1e-5);
            const auto m = hiddenAttentionMean(in, {}, w);
            for (size_t i = 0; i < m.size(); ++i)
                EXPECT_NEAR(m[i], mean[i], 1e-5 * maxAbs);
            // a capped window is exact for the pairs it shows
            const AttentionWindow tail = hiddenAttentionWindow(in.T - 1, 4);
            EXPECT_TRUE(tail.capped);
            EXPECT_EQ(tail.size(), 4);
            const auto part = hiddenAttention(in, 3, tail);
            const auto all = hiddenAttention(in, 3, w);
            for (int64_t t = 0; t < 4; ++t)
                for (int64_t s = 0; s <= t; ++s)
                    EXPECT_NEAR(part[size_t(t * 4 + s)], all[size_t((tail.begin + t) * in.T + tail.begin + s)], 1e-12);
            ++checked;
        }
    }
    EXPECT_EQ(checked, 5);
}

TEST(HiddenAttention, RowsNormalisedByAbsoluteSum)
{
    std::vector<double> m = {2, 0, -1, 3, 0, 0};
    normaliseRowsByAbsSum(m, 2); // uses the first 2x2: rows {2, 0}, {-1, 3}
    EXPECT_DOUBLE_EQ(m[0], 1.0);
    EXPECT_DOUBLE_EQ(m[2], -0.25);
    EXPECT_DOUBLE_EQ(m[3], 0.75);
}

TEST(HiddenAttention, BadChannelOrWindowIsAClearError)
{
    const auto g = SafetensorsFile::open(test::referenceCase("mamba_f32_tied") / "golden.safetensors");
    const Layer L{g->tensor("layers.0.ssm.delta"), g->tensor("layers.0.ssm.B"), g->tensor("layers.0.ssm.C"),
                  g->tensor("layers.0.ssm.A")};
    EXPECT_THROW(hiddenAttention(L.in(), 64, hiddenAttentionWindow(3)), Error);
    EXPECT_THROW(hiddenAttention(L.in(), 0, AttentionWindow{5, 40, false}), Error);
}

#ifdef ARCHLENS_HAVE_HDF5
TEST(HiddenAttention, ReconstructsTheScanOutputFromATrace)
{
    test::TempDir tmp;
    const auto path = tmp.path() / "t.h5";
    auto model = loadModel(test::referenceCase("mamba_f32_untied_bias"), std::shared_ptr<Backend>(makeCpuReferenceBackend()));
    const std::vector<int32_t> ids = {3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8, 9, 7};
    {
        ProbeSelection sel;
        for (Probe p : defaultProbes())
            sel.probes.insert(p);
        TraceWriter w(path, TraceMeta{}, sel);
        auto state = model->newState();
        model->forward(ids, *state, &w, ForwardMode::Chunk, false);
        w.appendTokens(ids, std::vector<std::string>(ids.size(), "x"));
        w.finish();
    }
    const TraceReader r = TraceReader::open(path);
    for (int l : r.layers()) {
        SCOPED_TRACE(l);
        auto get = [&](const char* p) { return r.read(fmt::format("/layers/{}/ssm/{}", l, p)); };
        const Layer L{get("delta"), get("B"), get("C"), get("A")};
        const Tensor x = get("x"), y = get("y"), D = get("D");
        const ScanInputs in = L.in();
        ASSERT_EQ(in.T, int64_t(ids.size()));
        const AttentionWindow w = hiddenAttentionWindow(in.T - 1);
        double maxErr = 0, maxAbs = 0;
        for (int64_t c = 0; c < in.E; ++c) {
            const auto a = hiddenAttention(in, c, w);
            for (int64_t t = 0; t < in.T; ++t) {
                double sum = 0;
                for (int64_t s = 0; s <= t; ++s)
                    sum += a[size_t(t * in.T + s)] * x.f32()[s * in.E + c];
                const double want = double(y.f32()[t * in.E + c]) - double(D.f32()[c]) * x.f32()[t * in.E + c];
                maxErr = std::max(maxErr, std::fabs(sum - want));
                maxAbs = std::max(maxAbs, std::fabs(want));
            }
        }
        EXPECT_LE(maxErr / maxAbs, 1e-4);
    }
}
#endif
