// The long scrub test (label slow): 100,000 random ids through the demo Mamba on the recurrent
// path with every light probe and every layer's ssm.state asked for, under the default 1 GiB cap;
// scrubbed to token 73,210 the session shows exactly (memcmp) the ssm states of a plain recurrent
// run stopped there, and the process's peak resident memory stays under the cap plus the model
// (measured above the resident memory the test process had before loading the model).
#include <gtest/gtest.h>

#include <chrono>

#include "demo_model.h"
#include "runtime/run_session.h"
#include "test_support.h"

namespace archlens {
namespace {

using Clock = std::chrono::steady_clock;

double secondsSince(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

TEST(ScrubLong, HundredThousandTokensScrubbedTo73210AreExactWithinTheCap)
{
    constexpr int64_t kTokens = 100000, kTarget = 73210;
    const uint64_t baseRss = test::procStatusBytes("VmRSS");
    Model& model = test::demoModel();
    const uint64_t modelBytes = model.info().loadedBytes;
    const int layers = int(model.info().layers);
    const auto ids = test::randomIds(kTokens, model.info().vocabRows, 2024);

    SessionOptions o;
    o.prefillMode = ForwardMode::Recurrent;
    o.checkpointInterval = 256;
    ASSERT_EQ(o.memoryCapBytes, uint64_t(1) << 30);
    o.frames.probes.probes.insert(Probe::SsmState);
    RunSession session(model, o);
    session.setPrompt(ids);

    auto t0 = Clock::now();
    session.prefill();
    const double runSeconds = secondsSince(t0);
    ASSERT_EQ(session.computedEnd(), kTokens);
    const FrameStoreUsage u = session.store().usage();
    EXPECT_LE(u.usedBytes, u.capBytes);
    EXPECT_GT(u.droppedStates, 0);

    t0 = Clock::now();
    const ScrubView view = session.jumpTo(kTarget);
    const double scrubSeconds = secondsSince(t0);

    t0 = Clock::now();
    auto ref = model.newState();
    model.forward(std::span(ids).first(size_t(kTarget + 1)), *ref, nullptr, ForwardMode::Recurrent, false);
    const double refSeconds = secondsSince(t0);

    ASSERT_EQ(int(view.states.size()), layers);
    for (int i = 0; i < layers; ++i) {
        ASSERT_TRUE(view.states[size_t(i)]);
        const Tensor h = Tensor::fromVector({view.states[size_t(i)]->E, view.states[size_t(i)]->N},
                                            std::vector<float>(view.states[size_t(i)]->h.begin(),
                                                               view.states[size_t(i)]->h.end()));
        EXPECT_TRUE(test::bitEqual(h, test::ssmState(*ref, i))) << "layer " << i;
    }
    ASSERT_TRUE(view.frame);
    EXPECT_EQ(view.frame->id, ids[size_t(kTarget)]);

    const uint64_t peak = test::procStatusBytes("VmHWM");
    const double MiB = 1024.0 * 1024.0;
    const std::string report = fmt::format(
        "100k recurrent run {:.1f} s ({:.0f} tokens/s), scrub to {} {:.3f} s, reference run {:.1f} s; "
        "store used {:.0f} MiB of {:.0f} MiB (checkpoints {:.1f} MiB, K {}, pooled {:.0f} MiB, slack {:.1f} MiB), "
        "dropped {} states {} frames; VmHWM {:.0f} MiB, baseline VmRSS {:.0f} MiB, model {:.1f} MiB",
        runSeconds, double(kTokens) / runSeconds, kTarget, scrubSeconds, refSeconds, double(u.usedBytes) / MiB,
        double(u.capBytes) / MiB, double(u.reservedBytes) / MiB, session.checkpointInterval(),
        double(u.pooledBytes) / MiB, double(u.slackBytes) / MiB, u.droppedStates, u.droppedFrames,
        double(peak) / MiB, double(baseRss) / MiB, double(modelBytes) / MiB);
    std::printf("%s\n", report.c_str());
    RecordProperty("report", report);
    ASSERT_GT(peak, 0u) << "no VmHWM in /proc/self/status";
    EXPECT_LT(peak - baseRss, u.capBytes + modelBytes) << report;
}

} // namespace
} // namespace archlens
