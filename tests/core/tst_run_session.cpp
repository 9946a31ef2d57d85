// RunSession on the bundled demo Mamba: prefill with progress and cancel, stepping, generation,
// state checkpoints and scrubbing. The reference for every state is a plain recurrent run of
// Model::forward over the same ids; "bit-identical" is memcmp.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>

#include "demo_model.h"
#include "runtime/generator.h"
#include "runtime/run_session.h"
#include "test_support.h"

namespace archlens {
namespace {

using test::bitEqual;
using test::demoModel;
using test::randomIds;
using test::relError;
using test::ssmState;

Tensor stateTensor(const StatePtr& s)
{
    EXPECT_TRUE(s);
    if (!s)
        return {};
    return Tensor::fromVector({s->E, s->N}, std::vector<float>(s->h.begin(), s->h.end()));
}

bool sameFrame(const TokenFrame& a, const TokenFrame& b)
{
    if (a.token != b.token || a.id != b.id || a.top.size() != b.top.size() || a.data.size() != b.data.size() ||
        a.index.size() != b.index.size())
        return false;
    for (size_t i = 0; i < a.top.size(); ++i)
        if (a.top[i].id != b.top[i].id || std::memcmp(&a.top[i].logit, &b.top[i].logit, sizeof(float)) != 0 ||
            std::memcmp(&a.top[i].probability, &b.top[i].probability, sizeof(float)) != 0)
            return false;
    for (size_t i = 0; i < a.index.size(); ++i)
        if (a.index[i].offset != b.index[i].offset || a.index[i].size != b.index[i].size)
            return false;
    return std::memcmp(a.data.data(), b.data.data(), a.data.size() * sizeof(float)) == 0;
}

SessionOptions recurrentOptions(uint64_t cap)
{
    SessionOptions o;
    o.prefillMode = ForwardMode::Recurrent;
    o.checkpointInterval = 256;
    o.memoryCapBytes = cap;
    return o;
}

class RunSessionTest : public ::testing::Test {
protected:
    Model& model = demoModel();
    int layers() const { return int(model.info().layers); }
    int64_t vocab() const { return model.info().vocabRows; }
};

// The fast variant of the 100k-token test: 3,000 random ids on the recurrent path, K = 256, a
// cap small enough that states and light frames are dropped; every scrub target shows exactly
// the states of a plain recurrent run stopped there.
TEST_F(RunSessionTest, ScrubIsBitIdenticalToFullRecurrentRun)
{
    const auto ids = randomIds(3000, vocab(), 7);
    SessionOptions o = recurrentOptions(4ull << 20);
    o.frames.probes.probes.insert(Probe::SsmState); // every token's state: forces eviction
    RunSession session(model, o);
    session.setPrompt(ids);
    const RunOutcome run = session.prefill();
    ASSERT_FALSE(run.cancelled);
    ASSERT_EQ(session.computedEnd(), 3000);
    EXPECT_LE(session.store().usage().usedBytes, o.memoryCapBytes);
    EXPECT_GT(session.store().usage().droppedStates, 0);
    EXPECT_GT(session.store().usage().droppedFrames, 0);
    for (const Segment& s : session.segments())
        EXPECT_EQ(s.mode, ForwardMode::Recurrent);

    const std::vector<int64_t> targets = {0, 1, 255, 256, 257, 511, 1234, 2047, 2048, 2998, 2999};
    auto ref = model.newState();
    int64_t refPos = 0;
    for (int64_t t : targets) {
        const ScrubView view = session.jumpTo(t);
        ASSERT_EQ(view.token, t);
        ASSERT_TRUE(view.frame);
        EXPECT_EQ(view.frame->id, ids[size_t(t)]);
        model.forward(std::span(ids).subspan(size_t(refPos), size_t(t + 1 - refPos)), *ref, nullptr,
                      ForwardMode::Recurrent, false);
        refPos = t + 1;
        ASSERT_EQ(int(view.states.size()), layers());
        for (int i = 0; i < layers(); ++i)
            EXPECT_TRUE(bitEqual(stateTensor(view.states[size_t(i)]), ssmState(*ref, i))) << "t=" << t << " layer " << i;
        // the whole state (conv included), rebuilt from the checkpoint
        auto full = session.stateAfter(t);
        const auto a = full->tensors(), b = ref->tensors();
        ASSERT_EQ(a.size(), b.size());
        for (size_t k = 0; k < a.size(); ++k)
            EXPECT_TRUE(bitEqual(a[k].second, b[k].second)) << "t=" << t << " " << a[k].first;
        EXPECT_EQ(full->position, t + 1);
    }
    EXPECT_LE(session.store().usage().usedBytes, o.memoryCapBytes);
}

// Frames dropped over the cap and recomputed from checkpoints equal the frames the live run
// published, byte for byte, on both prefill paths.
TEST_F(RunSessionTest, RecomputedFramesEqualLiveFrames)
{
    for (ForwardMode mode : {ForwardMode::Chunk, ForwardMode::Recurrent}) {
        SCOPED_TRACE(mode == ForwardMode::Chunk ? "chunk prefill" : "recurrent prefill");
        const auto ids = randomIds(900, vocab(), 11);
        SessionOptions o;
        o.prefillMode = mode;
        o.checkpointInterval = 128;
        RunSession session(model, o);
        session.setPrompt(ids);
        session.prefill();
        session.generate(100);
        ASSERT_EQ(session.computedEnd(), 1000);
        std::vector<FramePtr> live = session.store().takeNewFrames();
        ASSERT_EQ(live.size(), 1000u);

        session.store().setCapBytes(session.checkpointBytes() + (1u << 20));
        const auto dropped = session.store().missing({0, 1000});
        ASSERT_FALSE(dropped.empty());
        session.store().setCapBytes(FrameStore::kDefaultCapBytes);
        ASSERT_TRUE(session.recompute({0, 1000}, false));
        EXPECT_TRUE(session.store().missing({0, 1000}).empty());
        int64_t refilled = 0;
        for (const TokenRange& r : dropped)
            for (int64_t t = r.begin; t < r.end; ++t) {
                FramePtr f = session.store().frame(t);
                ASSERT_TRUE(f);
                EXPECT_NE(f.get(), live[size_t(t)].get()); // a new frame ...
                ASSERT_TRUE(sameFrame(*f, *live[size_t(t)])) << "t=" << t; // ... with the same bytes
                ++refilled;
            }
        EXPECT_GT(refilled, 500);
    }
}

// A chunk-prefilled session scrubs to the chunk path's values (bit-identical to its own live
// states) and, inside the computed range, to within 1e-5 of the recurrent stepping path.
TEST_F(RunSessionTest, ChunkPrefillScrubMatchesSteppingPathWithinTolerance)
{
    const auto ids = randomIds(700, vocab(), 3);
    SessionOptions o;
    o.prefillMode = ForwardMode::Chunk;
    o.frames.probes.probes.insert(Probe::SsmState);
    RunSession session(model, o);
    session.setPrompt(ids);
    session.prefill();
    for (const Segment& s : session.segments()) {
        EXPECT_EQ(s.mode, ForwardMode::Chunk);
        EXPECT_LE(s.end - s.begin, 64);
        EXPECT_EQ(s.begin / 256, (s.end - 1) / 256) << "segment crosses a checkpoint";
    }
    EXPECT_EQ(session.checkpointPositions(), (std::vector<int64_t>{0, 256, 512}));

    std::vector<std::vector<StatePtr>> live(700);
    for (int64_t t = 0; t < 700; ++t)
        for (int i = 0; i < layers(); ++i)
            live[size_t(t)].push_back(session.store().state(t, i));
    session.store().setCapBytes(session.checkpointBytes()); // drop everything droppable
    EXPECT_EQ(session.store().usage().states, 0);

    auto stepping = model.newState();
    int64_t pos = 0;
    for (int64_t t : {5, 63, 64, 300, 511, 512, 699}) {
        const ScrubView view = session.jumpTo(t);
        model.forward(std::span(ids).subspan(size_t(pos), size_t(t + 1 - pos)), *stepping, nullptr,
                      ForwardMode::Recurrent, false);
        pos = t + 1;
        for (int i = 0; i < layers(); ++i) {
            const Tensor h = stateTensor(view.states[size_t(i)]);
            EXPECT_TRUE(bitEqual(h, stateTensor(live[size_t(t)][size_t(i)]))) << "t=" << t << " layer " << i;
            EXPECT_LT(relError(h, ssmState(*stepping, i)), 1e-5) << "t=" << t << " layer " << i;
        }
    }
}

TEST_F(RunSessionTest, PrefillReportsProgressAndCancelsBetweenChunks)
{
    const auto ids = randomIds(1000, vocab(), 5);
    RunSession session(model);
    session.setPrompt(ids);
    std::atomic<bool> cancel{false};
    std::vector<RunProgress> seen;
    const RunOutcome first = session.prefill(
        [&](RunProgress p) {
            seen.push_back(p);
            if (p.done >= 128)
                cancel = true;
        },
        &cancel);
    EXPECT_TRUE(first.cancelled);
    EXPECT_EQ(first.tokens, 128);
    EXPECT_EQ(session.computedEnd(), 128);
    ASSERT_EQ(seen.size(), 2u);
    EXPECT_EQ(seen[0].done, 64);
    EXPECT_EQ(seen[0].total, 1000);

    cancel = false;
    const RunOutcome rest = session.prefill({}, &cancel);
    EXPECT_FALSE(rest.cancelled);
    EXPECT_EQ(session.computedEnd(), 1000);

    // resuming gives exactly what an uninterrupted prefill gives
    RunSession whole(model);
    whole.setPrompt(ids);
    whole.prefill();
    auto a = whole.stateAfter(999), b = session.stateAfter(999);
    for (int i = 0; i < layers(); ++i)
        EXPECT_TRUE(bitEqual(ssmState(*a, i), ssmState(*b, i)));

    // a cancelled scrub throws Cancelled and leaves the session usable
    session.store().setCapBytes(session.checkpointBytes());
    cancel = true;
    try {
        session.jumpTo(700, &cancel);
        FAIL() << "expected Cancelled";
    } catch (const Error& e) {
        EXPECT_EQ(e.code(), ErrorCode::Cancelled);
    }
    EXPECT_EQ(session.jumpTo(700).token, 700);
}

TEST_F(RunSessionTest, GreedyGenerationMatchesGenerator)
{
    const auto prompt = randomIds(20, vocab(), 9);
    RunSession session(model);
    session.setPrompt(prompt);
    std::vector<std::pair<int64_t, int32_t>> streamed;
    const RunOutcome out = session.generate(30, [&](int64_t t, int32_t id) {
        streamed.emplace_back(t, id);
        return true;
    });
    EXPECT_EQ(out.tokens, 30);
    ASSERT_EQ(streamed.size(), 30u);
    EXPECT_EQ(streamed.front().first, 20);
    EXPECT_EQ(session.tokens().size(), 50u);

    auto state = model.newState();
    GenerateOptions g;
    g.maxNewTokens = 30;
    const GenerateResult ref = generate(model, *state, prompt, g);
    for (size_t i = 0; i < 30; ++i)
        EXPECT_EQ(streamed[i].second, ref.tokens[i]) << i;
    // the frame of the last prompt token predicts the first generated token
    EXPECT_EQ(session.store().frame(19)->top[0].id, streamed.front().second);
}

TEST_F(RunSessionTest, SeededSamplingReproducesAndStepFeedsPromptFirst)
{
    const auto prompt = randomIds(10, vocab(), 2);
    SessionOptions o;
    o.sampling.temperature = 1.0f;
    o.seed = 1234;
    RunSession a(model, o), b(model, o);
    a.setPrompt(prompt);
    b.setPrompt(prompt);
    a.generate(25);
    for (int i = 0; i < 35; ++i)
        EXPECT_EQ(b.step(), i); // ten prompt tokens, then sampled ones
    EXPECT_EQ(a.tokens(), b.tokens());
    EXPECT_EQ(b.segments().size(), 1u); // one recurrent run
    EXPECT_EQ(b.cursor(), 34);

    RunSession empty(model);
    empty.setPrompt({});
    EXPECT_THROW(empty.step(), Error);
    EXPECT_THROW(a.jumpTo(35), Error);
    EXPECT_THROW(a.jumpTo(-1), Error);
}

TEST_F(RunSessionTest, JumpPastComputedRangePrefillsPrompt)
{
    const auto prompt = randomIds(300, vocab(), 4);
    RunSession session(model);
    session.setPrompt(prompt);
    const ScrubView v = session.jumpTo(200);
    EXPECT_EQ(session.computedEnd(), 201);
    EXPECT_EQ(v.frame->id, prompt[200]);
    EXPECT_EQ(session.cursor(), 200);
    session.prefill();
    EXPECT_EQ(session.computedEnd(), 300);
}

// Rewind on the recurrent path, then greedy generation again: the same tokens come back.
TEST_F(RunSessionTest, RewindThenRegenerateGivesSameGreedyTokens)
{
    const auto prompt = randomIds(40, vocab(), 8);
    RunSession session(model, recurrentOptions(FrameStore::kDefaultCapBytes));
    session.setPrompt(prompt);
    session.generate(300);
    const auto first = session.tokens();
    ASSERT_EQ(first.size(), 340u);
    session.rewind(150);
    EXPECT_EQ(session.computedEnd(), 151);
    EXPECT_EQ(session.tokens().size(), 151u);
    EXPECT_EQ(session.checkpointPositions(), (std::vector<int64_t>{0}));
    EXPECT_FALSE(session.store().frame(151));
    session.generate(189);
    EXPECT_EQ(session.tokens(), first);

    // rewinding inside a chunk segment cuts the chunk
    RunSession chunked(model);
    chunked.setPrompt(prompt);
    chunked.prefill();
    chunked.rewind(30);
    EXPECT_EQ(chunked.segments().back().end, 31);
    EXPECT_FALSE(chunked.store().frame(0)); // the cut chunk's frames go, they are recomputed
    EXPECT_TRUE(chunked.recompute({0, 31}, false));
    EXPECT_TRUE(chunked.store().frame(30));
}

// The tap (the GUI's routing recorder) sees every token of the live run exactly once with the
// live run's values; scrubs, recomputes, stateAfter and replayAll reach only the store; rewind
// tells the tap which tokens went.
TEST_F(RunSessionTest, TapSeesTheLiveRunOnceNeverAReplay)
{
    struct CountingTap : ProbeSink {
        std::vector<int> seen;          // per token: rows of ssm.delta (layer 1) received
        std::vector<std::vector<float>> rows; // the first copy of each row
        int64_t droppedFrom = -1;
        bool wants(int layer, Probe p) const override { return layer == 1 && p == Probe::SsmDelta; }
        void record(int, Probe, int64_t begin, const Tensor& v) override
        {
            const int64_t T = v.dim(0), E = v.dim(1);
            for (int64_t t = 0; t < T; ++t) {
                const size_t at = size_t(begin + t);
                if (seen.size() <= at)
                    seen.resize(at + 1), rows.resize(at + 1);
                if (seen[at]++ == 0)
                    rows[at].assign(v.f32() + t * E, v.f32() + (t + 1) * E);
            }
        }
    } tap;
    SessionOptions o;
    o.checkpointInterval = 8;
    o.prefillChunk = 5;
    o.memoryCapBytes = 64 << 10; // small: scrubbing replays from checkpoints
    RunSession session(model, o);
    session.setTap(&tap, [&tap](int64_t end) { tap.droppedFrom = end; });
    session.setPrompt(randomIds(23, vocab(), 21));
    session.prefill();
    session.step();
    session.generate(9);
    const int64_t T = session.computedEnd();
    ASSERT_EQ(T, 33);
    for (int64_t t : {2, 30, 11, 17})
        session.jumpTo(t);
    EXPECT_TRUE(session.recompute({0, T}, true));
    session.stateAfter(12);
    EXPECT_TRUE(session.replayAll(nullptr, {}));
    ASSERT_EQ(tap.seen.size(), size_t(T));
    for (int64_t t = 0; t < T; ++t)
        EXPECT_EQ(tap.seen[size_t(t)], 1) << "token " << t;
    // the values the tap got are the live run's: the store's (recomputed, bit-identical) frames
    for (int64_t t : {0, 12, 22, 23, 32}) {
        session.store().setPinned({t, t + 1}); // the small cap may have dropped it: back, and kept
        ASSERT_TRUE(session.recompute({t, t + 1}, false));
        const FramePtr f = session.store().frame(t);
        ASSERT_TRUE(f) << t;
        const auto d = f->probe(1, Probe::SsmDelta);
        ASSERT_EQ(d.size(), tap.rows[size_t(t)].size()) << t;
        EXPECT_EQ(std::memcmp(d.data(), tap.rows[size_t(t)].data(), d.size() * sizeof(float)), 0) << t;
    }
    session.rewind(20);
    EXPECT_EQ(tap.droppedFrom, 21);
    session.generate(3);
    EXPECT_EQ(tap.seen[21], 2); // regenerated after the rewind: the live run again
    session.setTap(nullptr);
    session.generate(1); // token 24 again, without a tap: its count stays the first run's
    EXPECT_EQ(tap.seen[24], 1);
}

// A cap so small that checkpoints alone would pass their share: K doubles and every other
// checkpoint goes, and scrubbing stays exact.
TEST_F(RunSessionTest, CheckpointsThinUnderTheCap)
{
    const auto ids = randomIds(3000, vocab(), 12);
    SessionOptions o = recurrentOptions(2ull << 20);
    o.checkpointInterval = 64;
    RunSession session(model, o);
    session.setPrompt(ids);
    session.prefill();
    EXPECT_GT(session.checkpointInterval(), 64);
    EXPECT_LE(session.checkpointBytes(), uint64_t(double(o.memoryCapBytes) * o.checkpointShare));
    for (int64_t p : session.checkpointPositions())
        EXPECT_EQ(p % session.checkpointInterval(), 0);
    auto ref = model.newState();
    model.forward(std::span(ids).first(2501), *ref, nullptr, ForwardMode::Recurrent, false);
    const ScrubView v = session.jumpTo(2500);
    for (int i = 0; i < layers(); ++i)
        EXPECT_TRUE(bitEqual(stateTensor(v.states[size_t(i)]), ssmState(*ref, i)));
}

TEST_F(RunSessionTest, RequestsFromConsumersAreServed)
{
    const auto ids = randomIds(600, vocab(), 13);
    RunSession session(model);
    session.setPrompt(ids);
    session.prefill();
    session.store().setCapBytes(session.checkpointBytes());
    EXPECT_FALSE(session.store().frame(100));
    session.store().setCapBytes(FrameStore::kDefaultCapBytes);
    std::thread ui([&] { session.store().requestRecompute({{90, 110}, false}); });
    ui.join();
    session.processRequests();
    EXPECT_TRUE(session.store().missing({90, 110}).empty());
    EXPECT_FALSE(session.store().frame(0)); // only the requested range is refilled
}

} // namespace
} // namespace archlens
