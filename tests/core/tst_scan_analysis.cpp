// core/analysis against brute-force computations written out here: memory horizons, Δ spikes,
// the scan stepper (also against the states a real run of the bundled mamba-text model recorded) and the
// heatmap downsampler, with the edge cases (T = 1, all Δ zero, f outside (0, 1), NaNs).
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>

#include "analysis/scan_analysis.h"
#include "demo_model.h"
#include "runtime/run_session.h"
#include "test_support.h"

namespace archlens {
namespace {

using namespace analysis;

Tensor randomMatrix(int64_t rows, int64_t cols, uint64_t seed, float lo, float hi)
{
    std::mt19937_64 rng(seed);
    std::uniform_real_distribution<float> dist(lo, hi);
    Tensor t = Tensor::empty({rows, cols});
    for (int64_t i = 0; i < t.numel(); ++i)
        t.f32()[i] = dist(rng);
    return t;
}

// Straight from the definition: smallest k >= 1 with exp(Σ_{r=s+1..s+k} Δ_r[c] max_n A[c,n]) < f.
Horizon bruteHorizon(const Tensor& delta, const Tensor& A, int64_t c, int64_t s, double f)
{
    const int64_t T = delta.dim(0), E = delta.dim(1), N = A.dim(1);
    double a = -INFINITY;
    for (int64_t n = 0; n < N; ++n)
        a = std::max(a, double(A.f32()[c * N + n]));
    for (int64_t k = 1; s + k < T; ++k) {
        double sum = 0;
        for (int64_t r = s + 1; r <= s + k; ++r)
            sum += delta.f32()[r * E + c];
        if (std::exp(sum * a) < f)
            return {k, false};
    }
    return {T - s, true};
}

void expectInvalid(const std::function<void()>& f, const std::string& needle)
{
    try {
        f();
        ADD_FAILURE() << "expected an Error mentioning '" << needle << "'";
    } catch (const Error& e) {
        EXPECT_TRUE(e.code() == ErrorCode::InvalidArgument || e.code() == ErrorCode::Shape) << e.what();
        EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
}

TEST(MemoryHorizon, MatchesBruteForce)
{
    const int64_t T = 300, E = 4, N = 5;
    Tensor delta = randomMatrix(T, E, 1, 0.f, 0.2f);
    for (int64_t t = 0; t < T; t += 37)
        delta.f32()[t * E + 1] = 3.f; // a few spikes
    Tensor A = randomMatrix(E, N, 2, -8.f, -0.05f);
    A.f32()[3 * N + 2] = -0.001f; // a channel that hardly forgets
    for (double f : {0.01, 0.3, 0.9}) {
        for (int64_t c = 0; c < E; ++c) {
            const auto all = memoryHorizons(delta, A, c, f);
            ASSERT_EQ(int64_t(all.size()), T);
            for (int64_t s = 0; s < T; ++s) {
                const Horizon want = bruteHorizon(delta, A, c, s, f);
                ASSERT_EQ(all[size_t(s)], want) << "f " << f << " c " << c << " s " << s;
                ASSERT_EQ(memoryHorizon(delta, A, c, s, f), want);
            }
        }
    }
    // the nearly-undecaying channel runs off the end: "at least T - s"
    const Horizon h = memoryHorizon(delta, A, 3, 10, 0.01);
    EXPECT_TRUE(h.atLeast);
    EXPECT_EQ(h.tokens, T - 10);
}

TEST(MemoryHorizon, EdgeCases)
{
    const Tensor A = Tensor::fromVector({1, 2}, {-1.f, -2.f});
    // T = 1: no future token at all
    const Tensor one = Tensor::fromVector({1, 1}, {0.5f});
    EXPECT_EQ(memoryHorizon(one, A, 0, 0), (Horizon{1, true}));
    EXPECT_EQ(memoryHorizons(one, A, 0), (std::vector<Horizon>{{1, true}}));
    // all Δ zero: nothing decays
    const Tensor zeros = Tensor::zeros({6, 1});
    const auto hs = memoryHorizons(zeros, A, 0);
    for (int64_t s = 0; s < 6; ++s)
        EXPECT_EQ(hs[size_t(s)], (Horizon{6 - s, true}));
    // one big Δ right after the source: k = 1; exp(-1 * 5) < 0.01
    const Tensor big = Tensor::fromVector({3, 1}, {0.f, 5.f, 0.f});
    EXPECT_EQ(memoryHorizon(big, A, 0, 0), (Horizon{1, false}));
    EXPECT_EQ(memoryHorizon(big, A, 0, 1), (Horizon{2, true}));

    for (double f : {0.0, 1.0, -0.5, 1.5, std::nan("")})
        expectInvalid([&] { memoryHorizon(big, A, 0, 0, f); }, "forget fraction f");
    expectInvalid([&] { memoryHorizons(big, A, 0, 2.0); }, "between 0 and 1");
    expectInvalid([&] { memoryHorizon(big, A, 1, 0); }, "channel 1");
    expectInvalid([&] { memoryHorizon(big, A, 0, 3); }, "source token 3");
    expectInvalid([&] { memoryHorizon(big, Tensor::fromVector({2, 1}, {-1.f, -1.f}), 0, 0); }, "A has shape");
    const Tensor negative = Tensor::fromVector({3, 1}, {0.f, -1.f, 0.f});
    expectInvalid([&] { memoryHorizons(negative, A, 0); }, "cannot be negative");
}

TEST(DeltaSpikes, MatchesBruteForce)
{
    for (int64_t T : {1, 2, 7, 50}) {
        const int64_t E = 3;
        Tensor delta = randomMatrix(T, E, uint64_t(T), 0.01f, 0.1f);
        if (T > 5)
            delta.f32()[4 * E + 2] = 2.f;
        for (double m : {1.5, 5.0}) {
            const DeltaSpikes s = deltaSpikes(delta, m);
            for (int64_t c = 0; c < E; ++c) {
                std::vector<double> col;
                for (int64_t t = 0; t < T; ++t)
                    col.push_back(delta.f32()[t * E + c]);
                std::sort(col.begin(), col.end());
                const double median = T % 2 ? col[size_t(T / 2)] : (col[size_t(T / 2 - 1)] + col[size_t(T / 2)]) / 2;
                EXPECT_DOUBLE_EQ(s.median[size_t(c)], median);
                for (int64_t t = 0; t < T; ++t)
                    EXPECT_EQ(s.isSpike(t, c), double(delta.f32()[t * E + c]) > m * median) << t << "," << c;
            }
            if (T > 5 && m == 5.0) {
                EXPECT_TRUE(s.isSpike(4, 2));
            }
        }
    }
    EXPECT_TRUE(deltaSpikes(Tensor::zeros({5, 2})).spikes.empty()); // all Δ zero: no resets
    expectInvalid([] { deltaSpikes(Tensor::zeros({5, 2}), 0.0); }, "spike multiple");
    expectInvalid([] { deltaSpikes(Tensor::zeros({5, 2}), -1.0); }, "spike multiple");
}

TEST(ScanStepper, HandWorkedExample)
{
    ScanStepInput in;
    in.delta = 0.5f;
    in.x = 2.f;
    in.A = {-1.f, -2.f};
    in.B = {1.f, 3.f};
    in.C = {0.5f, -1.f};
    in.hPrev = {4.f, -2.f};
    in.D = 0.25f;
    in.gate = 0.5f;
    const ScanStepNumbers s = scanStep(in);
    EXPECT_FLOAT_EQ(s.decay[0], std::exp(-0.5f));
    EXPECT_FLOAT_EQ(s.decay[1], std::exp(-1.f));
    EXPECT_FLOAT_EQ(s.decayed[0], 4.f * std::exp(-0.5f));
    EXPECT_FLOAT_EQ(s.input[0], 1.f);  // 0.5 · 1 · 2
    EXPECT_FLOAT_EQ(s.input[1], 3.f);  // 0.5 · 3 · 2
    EXPECT_FLOAT_EQ(s.hNew[1], -2.f * std::exp(-1.f) + 3.f);
    EXPECT_FLOAT_EQ(s.contribution[1], -s.hNew[1]);
    EXPECT_FLOAT_EQ(s.readout, 0.5f * s.hNew[0] - s.hNew[1]);
    EXPECT_FLOAT_EQ(s.Dx, 0.5f);
    EXPECT_FLOAT_EQ(s.yPreGate, s.readout + 0.5f);
    EXPECT_FLOAT_EQ(s.y, s.yPreGate * 0.5f);
    // first token: h_old = 0; no gate, no D
    in.hPrev.clear();
    in.gate.reset();
    in.D.reset();
    const ScanStepNumbers f = scanStep(in);
    EXPECT_EQ(f.hOld, (std::vector<float>{0.f, 0.f}));
    EXPECT_EQ(f.hNew, f.input);
    EXPECT_EQ(f.y, f.yPreGate);
    // all Δ zero: nothing decays, nothing enters
    in.delta = 0.f;
    in.hPrev = {4.f, -2.f};
    const ScanStepNumbers z = scanStep(in);
    EXPECT_EQ(z.hNew, in.hPrev);
    in.B = {1.f};
    expectInvalid([&] { scanStep(in); }, "N values each");
}

// The stepper from recorded probes reproduces the recorded states and y of a real run, bit for
// bit with the matching expression order; from x, Δ, B, A alone (no states) as well.
TEST(ScanStepper, ReproducesRecordedRunOfDemoModel)
{
    Model& model = test::demoModel();
    const auto ids = test::randomIds(40, model.info().vocabRows, 21);
    for (ForwardMode mode : {ForwardMode::Recurrent, ForwardMode::Chunk}) {
        SCOPED_TRACE(mode == ForwardMode::Chunk ? "chunk" : "recurrent");
        const ScanOrder order = mode == ForwardMode::Chunk ? ScanOrder::Chunk : ScanOrder::Recurrent;
        test::CaptureSink sink;
        auto state = model.newState();
        model.forward(ids, *state, &sink, mode, false);
        const int layer = 2;
        ScanTensors s;
        s.x = *sink.get(layer, Probe::SsmX);
        s.delta = *sink.get(layer, Probe::SsmDelta);
        s.B = *sink.get(layer, Probe::SsmB);
        s.C = *sink.get(layer, Probe::SsmC);
        s.gate = *sink.get(layer, Probe::SsmGate);
        s.A = *sink.constant("2.ssm.A");
        s.D = *sink.constant("2.ssm.D");
        const Tensor& states = *sink.get(layer, Probe::SsmState);
        const Tensor& y = *sink.get(layer, Probe::SsmY);
        const int64_t E = s.x.dim(1), N = s.A.dim(1);
        ScanTensors noStates = s;
        s.states = states;
        for (int64_t c : {0L, 17L, E - 1}) {
            for (int64_t t : {0L, 1L, 20L, 39L}) {
                const ScanStepNumbers a = scanStepAt(s, c, t, order);
                const ScanStepNumbers b = scanStepAt(noStates, c, t, order);
                const float* want = states.f32() + (t * E + c) * N;
                EXPECT_EQ(0, std::memcmp(a.hNew.data(), want, size_t(N) * sizeof(float))) << "c " << c << " t " << t;
                EXPECT_EQ(0, std::memcmp(b.hNew.data(), want, size_t(N) * sizeof(float))) << "c " << c << " t " << t;
                EXPECT_EQ(a.yPreGate, y.f32()[t * E + c]) << "c " << c << " t " << t;
                EXPECT_EQ(a.y, a.yPreGate * s.gate.f32()[t * E + c]);
            }
        }
    }
}

TEST(ScanStepper, GathersFromFrameStore)
{
    Model& model = test::demoModel();
    RunSession session(model);
    session.setPrompt(test::randomIds(30, model.info().vocabRows, 5));
    session.prefill();
    const auto frames = session.store().frames({0, 30});
    const Tensor delta = gatherProbe(frames, 1, Probe::SsmDelta);
    EXPECT_EQ(delta.shape(), (Shape{30, model.info().dInner}));
    EXPECT_EQ(gatherProbe(frames, 1, Probe::SsmB).shape(), (Shape{30, model.info().dState}));
    EXPECT_EQ(delta.f32()[7 * delta.dim(1) + 3], frames[7]->probe(1, Probe::SsmDelta)[3]);
    const Tensor A = session.store().constant(1, "A");
    ASSERT_TRUE(A.defined());
    EXPECT_EQ(memoryHorizons(delta, A, 3).size(), 30u);
    std::vector<FramePtr> holey = frames;
    holey[4] = nullptr;
    expectInvalid([&] { gatherProbe(holey, 1, Probe::SsmDelta); }, "missing at frame 4");
    expectInvalid([&] { gatherProbe(frames, 1, Probe::SsmState); }, "not a per-token frame probe");
}

// Brute-force bins: the value of largest magnitude (sign kept), or min and max.
TEST(Downsample, MatchesBruteForceAndKeepsPeaksAndSigns)
{
    const int64_t rows = 103, cols = 37;
    Tensor m = randomMatrix(rows, cols, 4, -1.f, 1.f);
    m.f32()[50 * cols + 20] = -9.f; // a negative peak must survive
    m.f32()[3 * cols + 1] = 7.f;
    const std::span<const float> data(m.f32(), size_t(m.numel()));
    for (auto [R, C] : {std::pair<int64_t, int64_t>{10, 6}, {103, 37}, {200, 50}, {1, 1}, {7, 37}}) {
        for (DownsampleMode mode : {DownsampleMode::MaxAbs, DownsampleMode::MinMax}) {
            const Downsampled d = downsample(data, rows, cols, R, C, mode);
            ASSERT_EQ(d.rows, std::min(rows, R));
            ASSERT_EQ(d.cols, std::min(cols, C));
            ASSERT_EQ(d.rowStarts.front(), 0);
            ASSERT_EQ(d.rowStarts.back(), rows);
            for (int64_t i = 0; i < d.rows; ++i)
                for (int64_t j = 0; j < d.cols; ++j) {
                    const int64_t r0 = i * rows / d.rows, r1 = (i + 1) * rows / d.rows;
                    const int64_t c0 = j * cols / d.cols, c1 = (j + 1) * cols / d.cols;
                    float peak = 0, lo = INFINITY, hi = -INFINITY;
                    for (int64_t r = r0; r < r1; ++r)
                        for (int64_t c = c0; c < c1; ++c) {
                            const float v = m.f32()[r * cols + c];
                            if (std::fabs(v) > std::fabs(peak))
                                peak = v;
                            lo = std::min(lo, v);
                            hi = std::max(hi, v);
                        }
                    const size_t k = size_t(i * d.cols + j);
                    if (mode == DownsampleMode::MaxAbs) {
                        ASSERT_EQ(d.values[k], peak) << i << "," << j;
                    } else {
                        ASSERT_EQ(d.values[k], lo);
                        ASSERT_EQ(d.maxValues[k], hi);
                    }
                }
            if (mode == DownsampleMode::MaxAbs && d.values.size() > 1) {
                EXPECT_EQ(*std::min_element(d.values.begin(), d.values.end()), -9.f);
                EXPECT_EQ(*std::max_element(d.values.begin(), d.values.end()), 7.f);
            }
        }
    }
    // no larger than the source: a copy
    const Downsampled same = downsample(data, rows, cols, 1000, 1000);
    EXPECT_EQ(0, std::memcmp(same.values.data(), m.f32(), m.nbytes()));
}

TEST(Downsample, NaNsAndErrors)
{
    const float nan = std::numeric_limits<float>::quiet_NaN();
    const std::vector<float> v = {nan, -2.f, nan, nan, 1.f, nan};
    const Downsampled d = downsample(v, 3, 2, 1, 2);
    EXPECT_EQ(d.values[0], 1.f);
    EXPECT_EQ(d.values[1], -2.f);
    const std::vector<float> allNan = {nan, nan};
    EXPECT_TRUE(std::isnan(downsample(allNan, 1, 2, 1, 1).values[0]));
    EXPECT_TRUE(downsample(std::span<const float>(), 0, 5, 4, 4).values.empty());
    expectInvalid([&] { downsample(v, 3, 2, 0, 2); }, "at least [1, 1]");
    expectInvalid([&] { downsample(v, 2, 2, 1, 1); }, "6 values for a [2, 2] matrix");
}

} // namespace
} // namespace archlens
