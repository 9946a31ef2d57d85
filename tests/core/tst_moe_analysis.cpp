// core/analysis/moe_analysis: balance readouts against hand-computed values, counts and
// co-activation against the top-k choices, the recorder against a real Mixtral/OLMoE forward
// (its counts equal the model's own moe.expert_load, its probabilities the recorded probe),
// attention weights grown over decoding steps, and corpus aggregation.
#include <gtest/gtest.h>

#include <cmath>

#include "analysis/moe_analysis.h"
#include "backends/backend.h"
#include "models/model.h"
#include "test_support.h"

using namespace archlens;
using namespace archlens::analysis;

namespace {

LayerRouting handMade()
{
    // 4 tokens, 4 experts, top-2
    LayerRouting r;
    r.experts = 4;
    r.topK = 2;
    r.topk = {0, 1, 0, 2, 1, 0, 0, 1};
    r.weights = {0.6f, 0.4f, 0.7f, 0.3f, 0.5f, 0.5f, 0.9f, 0.1f};
    r.probs = {0.5f, 0.3f, 0.1f, 0.1f, 0.6f, 0.1f, 0.2f, 0.1f, 0.4f, 0.4f, 0.1f, 0.1f, 0.7f, 0.2f, 0.05f, 0.05f};
    r.entropy = {1.0f, 2.0f, 3.0f, 4.0f};
    return r;
}

} // namespace

TEST(MoeAnalysis, CountsAndBalanceMatchHandComputedValues)
{
    const LayerRouting r = handMade();
    EXPECT_EQ(r.tokens(), 4);
    EXPECT_EQ(expertCounts(r), (std::vector<int64_t>{4, 3, 1, 0}));
    EXPECT_EQ(expertCounts(r, 1, 3), (std::vector<int64_t>{2, 1, 1, 0}));
    const BalanceReadout b = layerBalance(r);
    // counts 4,3,1,0: mean 2, population variance (4+1+1+4)/4 = 2.5
    EXPECT_NEAR(b.cv, std::sqrt(2.5) / 2.0, 1e-12);
    EXPECT_NEAR(b.maxViolation, 4.0 / 2.0 - 1.0, 1e-12);
    EXPECT_NEAR(b.meanEntropy, 2.5, 1e-12);
    // LBL = X Σ_e (picks_e / T)(mean p_e): mean p = (2.2, 1.0, 0.45, 0.35)/4
    const double lbl = 4.0 * ((4 / 4.0) * (2.2 / 4) + (3 / 4.0) * (1.0 / 4) + (1 / 4.0) * (0.45 / 4) + 0);
    EXPECT_NEAR(b.loadBalancingLoss, lbl, 1e-6);
    EXPECT_EQ(b.idle, (std::vector<int64_t>{3}));
    EXPECT_TRUE(b.overloaded.empty()); // 4 is exactly twice the uniform share, not more
    EXPECT_TRUE(b.collapse());
    EXPECT_NE(b.warning().find("expert 3 got no tokens"), std::string::npos);

    const std::vector<int64_t> over = {9, 1, 1, 1};
    const BalanceReadout o = balanceReadout(over, 0, 0);
    EXPECT_EQ(o.overloaded, (std::vector<int64_t>{0}));
    EXPECT_TRUE(o.idle.empty());
    const std::vector<int64_t> even = {3, 3, 3, 3};
    const BalanceReadout e = balanceReadout(even, 0, 0);
    EXPECT_EQ(e.cv, 0.0);
    EXPECT_EQ(e.maxViolation, 0.0);
    EXPECT_FALSE(e.collapse());
    EXPECT_EQ(e.warning(), "");
}

TEST(MoeAnalysis, CoactivationCountsPairsWithinAToken)
{
    const LayerRouting r = handMade();
    const auto m = coactivation(r);
    ASSERT_EQ(m.size(), 16u);
    EXPECT_EQ(m[0 * 4 + 1], 3); // tokens 0, 2, 3
    EXPECT_EQ(m[1 * 4 + 0], 3);
    EXPECT_EQ(m[0 * 4 + 2], 1);
    EXPECT_EQ(m[1 * 4 + 2], 0);
    for (int i = 0; i < 4; ++i)
        EXPECT_EQ(m[size_t(i * 5)], 0);
}

TEST(MoeAnalysis, RecorderHoldsWhatTheModelRoutedAndItsOwnLoad)
{
    for (const char* name : {"mixtral", "olmoe", "qwen2_moe"}) {
        SCOPED_TRACE(name);
        auto model = loadModel(test::referenceCase(name), std::shared_ptr<Backend>(makeCpuReferenceBackend()));
        const std::vector<int32_t> ids = {1, 5, 9, 3, 7, 2, 8, 4, 6};
        RoutingRecorder rec(true);
        ProbeSelection sel;
        for (Probe p : defaultProbes())
            sel.probes.insert(p);
        test::CaptureSink cap(sel);
        TeeSink tee(&rec, &cap);
        auto state = model->newState();
        // prefill then two single steps: the recorder appends and grows attention weights
        model->forward(std::span(ids).first(7), *state, &tee, ForwardMode::Chunk, false);
        model->forward(std::span(ids).subspan(7, 1), *state, &tee, ForwardMode::Auto, false);
        model->forward(std::span(ids).subspan(8, 1), *state, &tee, ForwardMode::Auto, false);
        const RoutingData d = rec.snapshot();
        ASSERT_FALSE(d.moeLayers().empty());
        for (int l : d.moeLayers()) {
            const LayerRouting& r = *d.routing(l);
            ASSERT_EQ(r.tokens(), 9);
            const Tensor* probs = cap.get(l, Probe::MoeRouterProbs);
            const Tensor* topk = cap.get(l, Probe::MoeTopkExperts);
            ASSERT_TRUE(probs && topk);
            EXPECT_EQ(0, std::memcmp(r.probs.data(), probs->f32(), probs->nbytes()));
            EXPECT_EQ(0, std::memcmp(r.topk.data(), topk->i32(), topk->nbytes()));
            const Tensor* load = cap.get(l, Probe::MoeExpertLoad);
            ASSERT_TRUE(load);
            const auto counts = expertCounts(r);
            for (int64_t e = 0; e < r.experts; ++e)
                EXPECT_EQ(counts[size_t(e)], load->i64()[e]) << "expert " << e;
            const Tensor* lbl = cap.get(l, Probe::MoeLoadBalancingLoss);
            ASSERT_TRUE(lbl);
            EXPECT_NEAR(layerBalance(r).loadBalancingLoss, lbl->f32()[0], 1e-5);
        }
    }
}

TEST(MoeAnalysis, AttentionWeightsGrowOverDecodingSteps)
{
    auto model = loadModel(test::referenceCase("mixtral"), std::shared_ptr<Backend>(makeCpuReferenceBackend()));
    const std::vector<int32_t> ids = {1, 5, 9, 3, 7, 2};
    RoutingRecorder steps(true), full(true);
    auto s1 = model->newState();
    model->forward(std::span(ids).first(4), *s1, &steps, ForwardMode::Chunk, false);
    model->forward(std::span(ids).subspan(4, 1), *s1, &steps, ForwardMode::Auto, false);
    model->forward(std::span(ids).subspan(5, 1), *s1, &steps, ForwardMode::Auto, false);
    auto s2 = model->newState();
    model->forward(ids, *s2, &full, ForwardMode::Chunk, false);
    const RoutingData a = steps.snapshot(), b = full.snapshot();
    ASSERT_EQ(a.attentionLayers(), b.attentionLayers());
    for (int l : a.attentionLayers()) {
        const LayerAttention &x = *a.attention(l), &y = *b.attention(l);
        ASSERT_EQ(x.tokens, 6);
        ASSERT_EQ(x.heads, y.heads);
        for (int64_t h = 0; h < x.heads; ++h)
            for (int64_t q = 0; q < 6; ++q)
                for (int64_t k = 0; k < 6; ++k)
                    EXPECT_NEAR(x.at(h, q, k), y.at(h, q, k), 1e-5);
    }
    // a token cap keeps the first tokens' weights and says so
    RoutingRecorder capped(true);
    capped.setAttentionTokenCap(5);
    auto s3 = model->newState();
    model->forward(std::span(ids).first(4), *s3, &capped, ForwardMode::Chunk, false);
    model->forward(std::span(ids).subspan(4, 1), *s3, &capped, ForwardMode::Auto, false);
    model->forward(std::span(ids).subspan(5, 1), *s3, &capped, ForwardMode::Auto, false);
    const RoutingData c = capped.snapshot();
    EXPECT_EQ(c.attentionCap, 5);
    for (int l : c.attentionLayers()) {
        const LayerAttention &x = *c.attention(l), &y = *b.attention(l);
        ASSERT_EQ(x.tokens, 5);
        for (int64_t q = 0; q < 5; ++q)
            for (int64_t k = 0; k < 5; ++k)
                EXPECT_NEAR(x.at(0, q, k), y.at(0, q, k), 1e-5);
    }
}

// A rewound session drops the recorder's rows past the kept tokens; running the same tokens again
// gives back what a recorder that never went past them holds.
TEST(MoeAnalysis, DroppedTokensGoAndRegrowTheSame)
{
    auto model = loadModel(test::referenceCase("mixtral"), std::shared_ptr<Backend>(makeCpuReferenceBackend()));
    const std::vector<int32_t> ids = {1, 5, 9, 3, 7, 2}, other = {8, 4};
    RoutingRecorder rec(true), ref(true);
    rec.reset({}, {}, 4);
    auto s1 = model->newState();
    model->forward(std::span(ids).first(4), *s1, &rec, ForwardMode::Chunk, false);
    auto kept = model->newState();
    model->forward(std::span(ids).first(4), *kept, nullptr, ForwardMode::Chunk, false);
    model->forward(std::span(ids).subspan(4, 2), *s1, &rec, ForwardMode::Recurrent, false);
    ASSERT_EQ(rec.snapshot().tokens(), 6);
    rec.dropTokens(4);
    const RoutingData d = rec.snapshot();
    EXPECT_EQ(d.tokens(), 4);
    EXPECT_EQ(d.promptLength, 4);
    for (int l : d.moeLayers()) {
        const LayerRouting& r = *d.routing(l);
        EXPECT_EQ(r.probs.size(), size_t(4 * r.experts));
        EXPECT_EQ(r.topk.size(), size_t(4 * r.topK));
        EXPECT_EQ(r.weights.size(), size_t(4 * r.topK));
        EXPECT_EQ(r.entropy.size(), size_t(4));
    }
    for (int l : d.attentionLayers())
        EXPECT_EQ(d.attention(l)->tokens, 4);
    // other tokens after the rewind: the same as a recorder that saw only those
    model->forward(other, *kept, &rec, ForwardMode::Recurrent, false);
    auto s2 = model->newState();
    model->forward(std::span(ids).first(4), *s2, &ref, ForwardMode::Chunk, false);
    model->forward(other, *s2, &ref, ForwardMode::Recurrent, false);
    const RoutingData a = rec.snapshot(), b = ref.snapshot();
    ASSERT_EQ(a.tokens(), 6);
    for (int l : b.moeLayers()) {
        EXPECT_EQ(a.routing(l)->topk, b.routing(l)->topk);
        EXPECT_EQ(a.routing(l)->probs, b.routing(l)->probs);
    }
    for (int l : b.attentionLayers())
        for (int64_t h = 0; h < b.attention(l)->heads; ++h)
            for (int64_t q = 0; q < 6; ++q)
                for (int64_t k = 0; k < 6; ++k)
                    EXPECT_EQ(a.attention(l)->at(h, q, k), b.attention(l)->at(h, q, k)) << l << " " << h << " " << q << " " << k;
}

TEST(MoeAnalysis, CorpusAccumulatorSumsChunksAndRanksTokens)
{
    RoutingData chunk;
    chunk.moe[1] = handMade();
    RouteAccumulator acc;
    const std::vector<int32_t> ids = {10, 11, 10, 12};
    acc.add(chunk, ids);
    acc.add(chunk, ids);
    EXPECT_EQ(acc.tokens(), 8);
    EXPECT_EQ(acc.chunks(), 2);
    EXPECT_EQ(acc.layers().at(1).counts, (std::vector<int64_t>{8, 6, 2, 0}));
    const BalanceReadout b = acc.balance(1);
    EXPECT_NEAR(b.cv, std::sqrt(2.5) / 2.0, 1e-12);
    EXPECT_NEAR(b.loadBalancingLoss, layerBalance(handMade()).loadBalancingLoss, 1e-9);
    EXPECT_NEAR(b.meanEntropy, 2.5, 1e-12);
    // expert 0 was picked by tokens 10 (twice per chunk), 11 and 12
    const auto top = acc.topTokens(1, 0, 2);
    ASSERT_EQ(top.size(), 2u);
    EXPECT_EQ(top[0], (std::pair<int32_t, int64_t>{10, 4}));
    EXPECT_EQ(top[1], (std::pair<int32_t, int64_t>{11, 2}));
}

TEST(MoeAnalysis, JensenShannonOfExpertLoads)
{
    const std::vector<int64_t> a = {10, 0}, b = {0, 5}, c = {20, 0}, u = {1, 1, 1, 1}, w = {3, 1, 0, 0};
    EXPECT_NEAR(analysis::jensenShannonBits(a, b), 1.0, 1e-12) << "disjoint experts";
    EXPECT_NEAR(analysis::jensenShannonBits(a, c), 0.0, 1e-12) << "same shares, different totals";
    // Hand-computed: p = (3/4, 1/4, 0, 0), q = 1/4 each, m = (1/2, 1/4, 1/8, 1/8):
    // KL(p‖m) = 3/4·log2(3/2) + 1/4·log2(1) ; KL(q‖m) = 1/4·(log2(1/2) + 0 + 1 + 1).
    const double expect = 0.5 * (0.75 * std::log2(1.5)) + 0.5 * (0.25 * (-1.0 + 0.0 + 1.0 + 1.0));
    EXPECT_NEAR(analysis::jensenShannonBits(w, u), expect, 1e-12);
    EXPECT_NEAR(analysis::jensenShannonBits(u, w), expect, 1e-12) << "symmetric";
    EXPECT_THROW(analysis::jensenShannonBits(a, u), Error);
    EXPECT_THROW(analysis::jensenShannonBits(std::vector<int64_t>{0, 0}, a), Error);
}
