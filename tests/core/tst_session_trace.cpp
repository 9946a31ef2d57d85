// Sessions saved as HDF5 traces (probes, logits, /checkpoints, /session/segments) and opened
// again as read-only sessions that replay the scan without the model: frames, top-k and the
// state at any token equal the live session's, bit for bit.
#include <gtest/gtest.h>

#include <cstring>

#include "demo_model.h"
#include "runtime/session_trace.h"
#include "test_support.h"

namespace archlens {
namespace {

using test::bitEqual;

Tensor stateTensor(const StatePtr& s)
{
    EXPECT_TRUE(s);
    return s ? Tensor::fromVector({s->E, s->N}, std::vector<float>(s->h.begin(), s->h.end())) : Tensor();
}

bool sameValues(std::span<const float> a, std::span<const float> b)
{
    return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

class SessionTraceTest : public ::testing::Test {
protected:
    Model& model = test::demoModel();
    test::TempDir dir;

    // 300 prompt tokens through the chunk path, then 60 generated ones (recurrent), K = 128
    std::unique_ptr<RunSession> makeSession()
    {
        SessionOptions o;
        o.checkpointInterval = 128;
        auto s = std::make_unique<RunSession>(model, o);
        s->setPrompt(test::randomIds(300, model.info().vocabRows, 31));
        s->generate(60);
        return s;
    }
};

TEST_F(SessionTraceTest, SavedTraceHoldsProbesCheckpointsAndSegments)
{
    auto session = makeSession();
    const auto path = dir.path() / "session.h5";
    std::vector<RunProgress> progress;
    SessionTraceOptions opts;
    opts.meta.prompt = "random ids";
    saveSessionTrace(*session, path, opts, [&](RunProgress p) { progress.push_back(p); });
    ASSERT_FALSE(progress.empty());
    EXPECT_EQ(progress.back().done, 360);

    const TraceReader r = TraceReader::open(path);
    EXPECT_EQ(r.tokens(), session->tokens());
    EXPECT_EQ(r.meta().promptLength, 300);
    EXPECT_EQ(r.meta().prompt, "random ids");
    EXPECT_EQ(r.attribute("checkpoint_interval"), "128");
    EXPECT_EQ(r.shape("/logits"), (Shape{360, model.info().vocabRows}));
    EXPECT_EQ(r.shape("/layers/3/ssm/delta"), (Shape{360, model.info().dInner}));
    EXPECT_FALSE(r.has("/layers/0/ssm/state")); // the session did not keep states
    EXPECT_EQ(r.checkpoints(), (std::vector<int64_t>{0, 128, 256}));
    EXPECT_EQ(r.checkpoints(), session->checkpointPositions());
    for (int64_t p : r.checkpoints()) {
        auto stored = r.readCheckpoint(p);
        auto live = session->checkpoint(p)->tensors();
        ASSERT_EQ(stored.size(), live.size());
        std::sort(live.begin(), live.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
        for (size_t i = 0; i < live.size(); ++i) {
            EXPECT_EQ(stored[i].first, live[i].first);
            EXPECT_TRUE(bitEqual(stored[i].second, live[i].second)) << p << " " << live[i].first;
        }
    }
    EXPECT_EQ(r.shape("/checkpoints/128/layers/2/conv_state"), (Shape{model.info().dInner, model.info().dConv - 1}));
    const Tensor seg = r.read("/session/segments");
    ASSERT_EQ(seg.dim(0), int64_t(session->segments().size()));
    EXPECT_EQ(seg.i64()[2], 1);                     // the first segment is a chunk
    EXPECT_EQ(seg.i64()[(seg.dim(0) - 1) * 3 + 2], 0); // the last is the recurrent run

    // the probes in the file are the live ones (the save replays the session)
    const Tensor delta = r.read("/layers/1/ssm/delta");
    const int64_t E = model.info().dInner;
    for (int64_t t : {0, 63, 64, 299, 300, 359}) {
        FramePtr f = session->store().frame(t);
        ASSERT_TRUE(f);
        EXPECT_TRUE(sameValues(f->probe(1, Probe::SsmDelta), {delta.f32() + t * E, size_t(E)})) << t;
    }
    EXPECT_THROW(r.readCheckpoint(5), Error);
}

TEST_F(SessionTraceTest, OpenedTraceReplaysLikeTheLiveSession)
{
    auto session = makeSession();
    const auto path = dir.path() / "session.h5";
    saveSessionTrace(*session, path);

    TraceSession trace(path);
    EXPECT_EQ(trace.tokens(), session->tokens());
    EXPECT_EQ(trace.layerCount(), int(model.info().layers));
    EXPECT_EQ(trace.segments().size(), session->segments().size());
    EXPECT_EQ(trace.orderAt(10), analysis::ScanOrder::Chunk);
    EXPECT_EQ(trace.orderAt(320), analysis::ScanOrder::Recurrent);

    trace.load({0, 360});
    EXPECT_TRUE(trace.store().missing({0, 360}).empty());
    for (int64_t t : {0, 5, 127, 128, 200, 299, 300, 301, 359}) {
        const ScrubView live = session->jumpTo(t);
        const ScrubView replay = trace.jumpTo(t);
        ASSERT_TRUE(replay.frame);
        EXPECT_EQ(replay.frame->id, live.frame->id);
        ASSERT_EQ(replay.frame->top.size(), live.frame->top.size());
        EXPECT_EQ(replay.frame->top[0].id, live.frame->top[0].id);
        EXPECT_EQ(replay.frame->top[0].probability, live.frame->top[0].probability);
        for (Probe p : kFrameProbes)
            EXPECT_TRUE(sameValues(replay.frame->probe(2, p), live.frame->probe(2, p))) << t << " " << probeName(p);
        for (int i = 0; i < trace.layerCount(); ++i)
            EXPECT_TRUE(bitEqual(stateTensor(replay.states[size_t(i)]), stateTensor(live.states[size_t(i)])))
                << "t=" << t << " layer " << i;
    }
    // the stepper over the trace reproduces the live state and y, in both regions
    const analysis::ScanTensors st = trace.scanTensors(0);
    ASSERT_TRUE(st.A.defined() && st.D.defined() && st.gate.defined() && st.C.defined());
    const size_t N = size_t(model.info().dState);
    for (int64_t t : {0, 130, 310}) {
        const auto step = trace.stepAt(0, 7, t);
        const ScrubView live = session->jumpTo(t);
        EXPECT_TRUE(sameValues(step.hNew, live.states[0]->h.subspan(7 * N, N))) << t;
        EXPECT_EQ(step.yPreGate, live.frame->probe(0, Probe::SsmY)[7]) << t;
    }
    EXPECT_THROW(trace.stepAt(0, model.info().dInner, 3), Error);
}

// A trace as the CLI writes it: chunk path, no checkpoints, no segments: states rebuilt from
// zeros in chunk order match a recorded ssm/state.
TEST_F(SessionTraceTest, TraceWithoutCheckpointsRebuildsFromZeros)
{
    SessionOptions o;
    o.frames.probes.probes.insert(Probe::SsmState);
    RunSession session(model, o);
    session.setPrompt(test::randomIds(150, model.info().vocabRows, 8));
    session.prefill();
    const auto withStates = dir.path() / "states.h5";
    SessionTraceOptions opts;
    saveSessionTrace(session, withStates, opts);
    const auto bare = dir.path() / "bare.h5";
    opts.checkpoints = false;
    opts.probes = FrameSelection::lightDefaults().probes;
    saveSessionTrace(session, bare, opts);

    TraceSession a(withStates), b(bare);
    EXPECT_TRUE(b.checkpointPositions().empty());
    for (int64_t t : {0, 64, 149})
        for (int layer = 0; layer < 4; ++layer)
            EXPECT_TRUE(bitEqual(a.stateAfter(t, layer), b.stateAfter(t, layer))) << t << " " << layer;
    EXPECT_THROW(b.jumpTo(150), Error);
    EXPECT_THROW(TraceSession(dir.path() / "missing.h5"), Error);
}

TEST_F(SessionTraceTest, CancelledSaveLeavesNoFile)
{
    auto session = makeSession();
    const auto path = dir.path() / "cancelled.h5";
    std::atomic<bool> cancel{false};
    try {
        saveSessionTrace(*session, path, {}, [&](RunProgress p) { cancel = p.done >= 64; }, &cancel);
        FAIL() << "expected Cancelled";
    } catch (const Error& e) {
        EXPECT_EQ(e.code(), ErrorCode::Cancelled);
    }
    EXPECT_TRUE(std::filesystem::is_empty(dir.path()));
}

} // namespace
} // namespace archlens
