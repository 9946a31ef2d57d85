// FrameStore with synthetic probes: what is kept for a selection, top-k, the memory cap and its
// eviction order, pinning, new-frame hand-over, recompute requests and a concurrent reader.
#include <gtest/gtest.h>

#include <thread>

#include "probes/frame_store.h"

namespace archlens {
namespace {

constexpr int64_t E = 8, N = 4, V = 10;

// value = token * 1000 + layer * 100 + probe slot * 10 + element index / 100 (recognisable)
Tensor probeRows(int64_t tokenBegin, int64_t T, int64_t width, int layer, int slot)
{
    Tensor t = Tensor::empty({T, width});
    for (int64_t r = 0; r < T; ++r)
        for (int64_t j = 0; j < width; ++j)
            t.f32()[r * width + j] = float((tokenBegin + r) * 1000 + layer * 100 + slot * 10) + float(j) / 100.f;
    return t;
}

// Plays the model's part for tokens [begin, end): asks, records, then publishes with logits.
void feed(FrameStore& store, int64_t begin, int64_t end, int layers, RecordWindow w = {})
{
    if (w.tokens.empty())
        w.tokens = {begin, end};
    store.beginTokens(w);
    const int64_t T = end - begin;
    for (int l = 0; l < layers; ++l) {
        for (Probe p : kFrameProbes)
            if (store.wants(l, p)) {
                const int64_t width = (p == Probe::SsmB || p == Probe::SsmC) ? N : E;
                store.record(l, p, begin, probeRows(begin, T, width, l, frameProbeSlot(p)));
            }
        if (store.wants(l, Probe::SsmState)) {
            Tensor s = Tensor::empty({T, E, N});
            for (int64_t i = 0; i < s.numel(); ++i)
                s.f32()[i] = float(begin * E * N + i) + float(l);
            store.record(l, Probe::SsmState, begin, s);
        }
        store.recordConstant(l, "ssm", "A", Tensor::fromVector({E, N}, std::vector<float>(E * N, -1.f)));
    }
    std::vector<int32_t> ids;
    Tensor logits = Tensor::zeros({T, V});
    for (int64_t r = 0; r < T; ++r) {
        ids.push_back(int32_t(begin + r));
        logits.f32()[r * V + (begin + r) % V] = 5.f;     // best
        logits.f32()[r * V + (begin + r + 1) % V] = 4.f; // second
    }
    store.finishTokens(begin, ids, &logits);
}

FrameSelection withStates(FrameSelection s = FrameSelection::lightDefaults())
{
    s.probes.probes.insert(Probe::SsmState);
    return s;
}

TEST(FrameStore, KeepsSelectedProbesAndTopK)
{
    FrameSelection sel;
    sel.probes.probes = {Probe::SsmDelta, Probe::SsmB};
    sel.probes.layers = {1};
    sel.topK = 3;
    FrameStore store(2, sel);
    EXPECT_FALSE(store.wants(0, Probe::SsmDelta));
    feed(store, 0, 4, 2);
    ASSERT_EQ(store.publishedEnd(), 4);
    FramePtr f = store.frame(2);
    ASSERT_TRUE(f);
    EXPECT_EQ(f->token, 2);
    EXPECT_EQ(f->id, 2);
    EXPECT_FALSE(f->has(0, Probe::SsmDelta));
    EXPECT_FALSE(f->has(1, Probe::SsmX));
    ASSERT_TRUE(f->has(1, Probe::SsmDelta));
    EXPECT_EQ(f->probe(1, Probe::SsmDelta).size(), size_t(E));
    EXPECT_FLOAT_EQ(f->probe(1, Probe::SsmDelta)[3], 2000.f + 100.f + 10.f + 0.03f);
    EXPECT_EQ(f->probe(1, Probe::SsmB).size(), size_t(N));
    ASSERT_EQ(f->top.size(), 3u);
    EXPECT_EQ(f->top[0].id, 2);
    EXPECT_EQ(f->top[1].id, 3);
    EXPECT_FLOAT_EQ(f->top[0].logit, 5.f);
    const double z = std::exp(5.0) + std::exp(4.0) + 8.0;
    EXPECT_NEAR(f->top[0].probability, std::exp(5.0) / z, 1e-6);
    EXPECT_NEAR(f->top[2].probability, 1.0 / z, 1e-6);
    EXPECT_FALSE(store.state(2, 1)); // not asked
    EXPECT_TRUE(store.constant(1, "A").defined());
    EXPECT_FALSE(store.constant(1, "D").defined());
}

TEST(FrameStore, StatesOnlyForAskedTokensAndLayers)
{
    FrameSelection sel = withStates();
    sel.probes.layers = {0};
    sel.stateTokens = {{3, 5}};
    FrameStore store(2, sel);
    feed(store, 0, 2, 2);
    EXPECT_FALSE(store.hasState(1, 0));
    feed(store, 2, 8, 2);
    EXPECT_FALSE(store.hasState(2, 0));
    EXPECT_TRUE(store.hasState(3, 0));
    EXPECT_TRUE(store.hasState(4, 0));
    EXPECT_FALSE(store.hasState(5, 0));
    EXPECT_FALSE(store.hasState(3, 1));
    StatePtr s = store.state(4, 0);
    ASSERT_TRUE(s);
    EXPECT_EQ(s->E, E);
    EXPECT_EQ(s->N, N);
    EXPECT_FLOAT_EQ(s->h[0], float(2 * E * N + 2 * E * N)); // row 2 of the chunk starting at 2
    // forced states: every layer, whatever the selection
    RecordWindow w;
    w.tokens = {8, 10};
    w.forceStates = {9, 10};
    feed(store, 8, 10, 2, w);
    EXPECT_TRUE(store.hasState(9, 1));
    EXPECT_FALSE(store.hasState(8, 1));
}

TEST(FrameStore, EvictsStatesFirstOldestFirstThenFramesAndKeepsPinned)
{
    FrameStore store(1, withStates());
    for (int64_t t = 0; t < 20; ++t)
        feed(store, t, t + 1, 1);
    const FrameStoreUsage full = store.usage();
    EXPECT_EQ(full.frames, 20);
    EXPECT_EQ(full.states, 20);
    EXPECT_EQ(full.usedBytes, full.frameBytes + full.stateBytes + full.bookkeepingBytes);
    EXPECT_GT(full.bookkeepingBytes, 0u);
    const uint64_t oneState = full.stateBytes / 20;

    // a few states must go: the oldest ones, never the pinned token 0, and no light frame
    store.setPinned({0, 1});
    store.setCapBytes(full.usedBytes - 5 * oneState);
    const FrameStoreUsage some = store.usage();
    EXPECT_LE(some.usedBytes, some.capBytes);
    EXPECT_GE(some.droppedStates, 5);
    EXPECT_LT(some.droppedStates, 19);
    EXPECT_EQ(some.frames, 20);
    EXPECT_TRUE(store.hasState(0, 0));
    for (int64_t t = 1; t < 20; ++t)
        EXPECT_EQ(store.hasState(t, 0), t > some.droppedStates) << t;

    // then every unpinned state and the oldest light frames
    store.setReservedBytes(1000);
    store.setCapBytes(1000 + full.bookkeepingBytes + full.frameBytes / 2);
    const FrameStoreUsage most = store.usage();
    EXPECT_LE(most.usedBytes, most.capBytes);
    EXPECT_EQ(most.states, 1);
    EXPECT_GE(most.droppedFrames, 10);
    EXPECT_TRUE(store.frame(0));
    for (int64_t t = 1; t < 20; ++t)
        EXPECT_EQ(bool(store.frame(t)), t > most.droppedFrames) << t;
    EXPECT_EQ(store.missing({0, 20}), (std::vector<TokenRange>{{1, 1 + most.droppedFrames}}));

    // a refill publishes only what is missing (the frames that stayed keep their identity)
    FramePtr kept = store.frame(19);
    store.setCapBytes(FrameStore::kDefaultCapBytes);
    RecordWindow w;
    w.tokens = {0, 20};
    w.onlyMissing = true;
    w.selectionStates = false;
    feed(store, 0, 20, 1, w);
    EXPECT_TRUE(store.missing({0, 20}).empty());
    EXPECT_EQ(store.frame(19).get(), kept.get());
    EXPECT_FALSE(store.hasState(2, 0));
}

TEST(FrameStore, HandsOverNewFramesAndRequests)
{
    FrameStore store(1);
    feed(store, 0, 3, 1);
    const uint64_t rev = store.revision();
    auto first = store.takeNewFrames();
    ASSERT_EQ(first.size(), 3u);
    EXPECT_EQ(first[2]->token, 2);
    EXPECT_TRUE(store.takeNewFrames().empty());
    feed(store, 3, 5, 1);
    EXPECT_GT(store.revision(), rev);
    EXPECT_EQ(store.takeNewFrames().size(), 2u);

    // frames dropped before being taken are skipped
    feed(store, 5, 7, 1);
    store.setCapBytes(0);
    EXPECT_TRUE(store.takeNewFrames().empty());
    EXPECT_EQ(store.usage().frames, 0);
    EXPECT_EQ(first[0]->token, 0); // a held frame stays readable

    store.requestRecompute({{1, 4}, true});
    auto reqs = store.takeRequests();
    ASSERT_EQ(reqs.size(), 1u);
    EXPECT_EQ(reqs[0].tokens, (TokenRange{1, 4}));
    EXPECT_TRUE(reqs[0].states);
    EXPECT_TRUE(store.takeRequests().empty());

    store.setCapBytes(FrameStore::kDefaultCapBytes);
    feed(store, 0, 10, 1);
    store.truncate(4);
    EXPECT_EQ(store.publishedEnd(), 4);
    store.clear();
    EXPECT_EQ(store.usage().usedBytes, 0u);
}

// A selection change made by a consumer mid-run applies from the next forward call only.
TEST(FrameStore, SelectionChangesApplyAtNextCall)
{
    FrameStore store(1);
    store.beginTokens({{0, 1}, {}, false});
    EXPECT_TRUE(store.wants(0, Probe::SsmX));
    FrameSelection none;
    store.setSelection(none);
    EXPECT_TRUE(store.wants(0, Probe::SsmX));
    store.beginTokens({{1, 2}, {}, false});
    EXPECT_FALSE(store.wants(0, Probe::SsmX));
}

// One producer and one reader thread; run under -DARCHLENS_SANITIZERS=ON or TSan to check.
TEST(FrameStore, ConcurrentReaderSeesConsistentFrames)
{
    FrameStore store(2, withStates(), 256 << 10);
    std::atomic<bool> done{false};
    int64_t checked = 0;
    std::thread reader([&] {
        while (!done) {
            for (const FramePtr& f : store.takeNewFrames()) {
                const auto x = f->probe(1, Probe::SsmX);
                if (!x.empty()) {
                    EXPECT_FLOAT_EQ(x[0], float(f->token * 1000 + 100));
                    ++checked;
                }
            }
            (void)store.usage();
            (void)store.frame(store.publishedEnd() - 1);
        }
    });
    for (int64_t t = 0; t < 2000; ++t)
        feed(store, t, t + 1, 2);
    done = true;
    reader.join();
    EXPECT_GT(checked, 0);
    EXPECT_LE(store.usage().usedBytes, 256u << 10);
}

} // namespace
} // namespace archlens
