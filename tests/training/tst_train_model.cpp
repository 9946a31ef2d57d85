// The training model against the inference model (a saved checkpoint loads with loadModel
// and gives the same logits), the trainer (loss goes down, seeded runs are bit-identical, a
// run resumed from a checkpoint equals an uninterrupted one, mismatched checkpoints are
// refused), the optimizer pieces and the synthetic tasks.
#include <cmath>

#include <gtest/gtest.h>

#include "backends/backend_factory.h"
#include "formats/safetensors.h"
#include "models/model.h"
#include "test_support.h"
#include "tokenizer/tokenizer.h"
#include "training/trainer.h"

using namespace archlens;
using namespace archlens::train;

namespace {

MambaInitOptions tinyInit(int64_t vocab, uint64_t seed = 3)
{
    MambaInitOptions o;
    o.dModel = 16;
    o.layers = 2;
    o.dState = 4;
    o.expand = 2;
    o.vocabSize = vocab;
    o.seed = seed;
    return o;
}

TrainOptions quickOptions(int64_t steps)
{
    TrainOptions t;
    t.steps = steps;
    t.batch = 8;
    t.warmup = 5;
    t.lr = 5e-3;
    t.evalEvery = 0;
    t.checkpointEvery = 0;
    t.seed = 11;
    return t;
}

} // namespace

TEST(TrainModel, SavedCheckpointLoadsWithSameLogits)
{
    auto task = makeSelectiveCopyTask({16, 4, 4});
    MambaTrainModel model = MambaTrainModel::randomInit(tinyInit(task->vocabSize()));
    ThreadPool pool(2);
    test::TempDir dir;
    Trainer trainer(model, *task, quickOptions(5), dir.path(), &pool);
    trainer.run({}, nullptr); // the weights move away from their initial values
    auto be = createBackend("cpu-reference").backend;
    auto loaded = loadModel(dir.path(), be);
    const Batch b = task->batch(42, 1, true);
    auto state = loaded->newState();
    const Tensor got = loaded->forward(std::span<const int32_t>(b.ids.data(), size_t(b.T)), *state, nullptr,
                                       ForwardMode::Chunk, true);
    const auto want = model.logits(b.ids.data(), b.T);
    EXPECT_LT(test::relError(got, Tensor::fromVector({b.T, model.config().V}, want)), 1e-5);
    // and the training model reads its own checkpoint back exactly
    const MambaTrainModel again = MambaTrainModel::load(dir.path());
    EXPECT_EQ(again.params().values(), model.params().values());
}

TEST(TrainModel, LossDecreasesOnInduction)
{
    auto task = makeInductionTask({12, 4});
    MambaTrainModel model = MambaTrainModel::randomInit(tinyInit(task->vocabSize()));
    ThreadPool pool(2);
    test::TempDir dir;
    const EvalResult before = evaluate(model, *task, 5, 128, &pool);
    Trainer trainer(model, *task, quickOptions(60), dir.path(), &pool);
    trainer.run({}, nullptr);
    const EvalResult after = evaluate(model, *task, 5, 128, &pool);
    EXPECT_LT(after.loss, before.loss - 0.05) << before.loss << " -> " << after.loss;
}

TEST(TrainModel, SeededRunsAreReproducibleAndResumeIsExact)
{
    auto task = makeSelectiveCopyTask({16, 4, 4});
    ThreadPool pool(2);
    test::TempDir a, b;
    MambaTrainModel m1 = MambaTrainModel::randomInit(tinyInit(task->vocabSize()));
    Trainer t1(m1, *task, quickOptions(12), a.path(), &pool);
    t1.run({}, nullptr);

    // stop after 5 steps (cancel), then resume in a fresh process-like setup
    MambaTrainModel m2 = MambaTrainModel::randomInit(tinyInit(task->vocabSize()));
    std::atomic<bool> cancel { false };
    Trainer t2(m2, *task, quickOptions(12), b.path(), &pool);
    const TrainResult r2 = t2.run(
        [&](const TrainProgress& p) {
            if (p.step == 5)
                cancel.store(true);
        },
        &cancel);
    EXPECT_TRUE(r2.cancelled);
    EXPECT_EQ(r2.step, 5);
    EXPECT_EQ(readTrainerState(b.path())["step"].get<int64_t>(), 5);
    MambaTrainModel m3 = MambaTrainModel::load(b.path());
    Trainer t3(m3, *task, quickOptions(12), b.path(), &pool);
    EXPECT_EQ(t3.resume(b.path()), 5);
    t3.run({}, nullptr);
    EXPECT_EQ(m3.params().values(), m1.params().values()) << "resumed run differs from the uninterrupted one";

    // a second identical run is bit-identical
    MambaTrainModel m4 = MambaTrainModel::randomInit(tinyInit(task->vocabSize()));
    test::TempDir c;
    Trainer t4(m4, *task, quickOptions(12), c.path(), &pool);
    t4.run({}, nullptr);
    EXPECT_EQ(m4.params().values(), m1.params().values());
}

TEST(TrainModel, ResumeRefusesMixedCheckpoint)
{
    auto task = makeSelectiveCopyTask({16, 4, 4});
    ThreadPool pool(1);
    test::TempDir a;
    MambaTrainModel m = MambaTrainModel::randomInit(tinyInit(task->vocabSize()));
    Trainer t(m, *task, quickOptions(3), a.path(), &pool);
    t.run({}, nullptr);
    // a model file from another step (as if the writer had been killed between files)
    m.save(a.path(), {{"archlens_step", "2"}});
    MambaTrainModel m2 = MambaTrainModel::load(a.path());
    Trainer t2(m2, *task, quickOptions(6), a.path(), &pool);
    try {
        t2.resume(a.path());
        FAIL() << "resume accepted a model saved at another step";
    } catch (const Error& e) {
        EXPECT_EQ(e.code(), ErrorCode::Format);
        EXPECT_NE(std::string(e.what()).find("step"), std::string::npos) << e.what();
    }
    test::TempDir empty;
    EXPECT_THROW(t2.resume(empty.path()), Error);
}

TEST(TrainModel, ScheduleAndClipping)
{
    EXPECT_NEAR(scheduleLr(0, 100, 10, 1.0, 0.1), 0.1, 1e-12);
    EXPECT_NEAR(scheduleLr(9, 100, 10, 1.0, 0.1), 1.0, 1e-12);
    EXPECT_NEAR(scheduleLr(10, 100, 10, 1.0, 0.1), 1.0, 1e-12);
    EXPECT_NEAR(scheduleLr(55, 100, 10, 1.0, 0.1), 0.55, 1e-12); // half-way down the cosine
    EXPECT_NEAR(scheduleLr(100, 100, 10, 1.0, 0.1), 0.1, 1e-12);
    std::vector<float> g = {3, 4};
    EXPECT_NEAR(clipGradNorm(g.data(), 2, 1.0), 5.0, 1e-9);
    EXPECT_NEAR(std::hypot(g[0], g[1]), 1.0, 1e-5);
    std::vector<float> h = {0.3f, 0.4f};
    clipGradNorm(h.data(), 2, 1.0);
    EXPECT_EQ(h[0], 0.3f); // below the limit: untouched
}

TEST(TrainModel, AdamWMatchesClosedFormFirstStep)
{
    // first AdamW step moves every coordinate by lr·sign(g) (bias-corrected m/√v = ±1),
    // plus decoupled decay on matrices only
    MambaTrainConfig c {6, 4, 1, 8, 2, 4, 1};
    MambaTrainModel m(c);
    for (auto& v : m.params().values())
        v = 1.0f;
    std::vector<float> g(size_t(m.params().numel()), 0.5f);
    AdamWOptions o;
    o.weightDecay = 0.1;
    o.eps = 0;
    AdamW adam(m.params(), o);
    adam.step(m.params(), g.data(), 0.01);
    const ParamStore& p = m.params();
    EXPECT_NEAR(p.data(p.find("backbone.embeddings.weight"))[0], 1.0f * (1 - 0.001f) - 0.01f, 1e-6);
    EXPECT_NEAR(p.data(p.find("backbone.norm_f.weight"))[0], 1.0f - 0.01f, 1e-6);
}

TEST(Tasks, SelectiveCopyLayout)
{
    auto task = makeSelectiveCopyTask({20, 5, 6});
    const Batch b = task->batch(9, 4, false);
    ASSERT_EQ(b.T, 25);
    for (int64_t s = 0; s < b.B; ++s) {
        const int32_t* ids = b.ids.data() + s * b.T;
        const int32_t* tg = b.targets.data() + s * b.T;
        std::vector<int32_t> data;
        for (int64_t t = 0; t < 20; ++t)
            if (ids[t] != 0)
                data.push_back(ids[t]);
        ASSERT_EQ(data.size(), 5u);
        EXPECT_EQ(ids[20], 1); // marker
        for (int64_t i = 0; i < 5; ++i) {
            EXPECT_EQ(tg[20 + i], data[size_t(i)]); // copied in order
            if (i < 4) {
                EXPECT_EQ(ids[21 + i], data[size_t(i)]);
            }
        }
        for (int64_t t = 0; t < 20; ++t)
            EXPECT_EQ(tg[t], -1);
        for (int32_t v : data)
            EXPECT_TRUE(v >= 2 && v < 8);
    }
    // seeded: same seed, same data; another seed, other data
    EXPECT_EQ(task->batch(9, 4, false).ids, b.ids);
    EXPECT_NE(task->batch(10, 4, false).ids, b.ids);
    EXPECT_NE(stepSeed(1, 0), evalSeed(1, 0));
    // the description round-trips
    auto again = taskFromJson(task->toJson(), ".");
    EXPECT_EQ(again->batch(3, 2, true).ids, task->batch(3, 2, true).ids);
}

TEST(Tasks, SymbolicTokenizerShowsIdsAsCharacters)
{
    const Tokenizer tok = Tokenizer::fromJson(symbolicTokenizerJson(10), "symbolic");
    EXPECT_EQ(tok.encode("..a.c|ac", false), (std::vector<int32_t>{0, 0, 2, 0, 4, 1, 2, 4}));
    const std::vector<int32_t> ids = {0, 1, 9};
    EXPECT_EQ(tok.decode(ids), ".|h");
    EXPECT_TRUE(symbolicTokenizerJson(100).empty());
}

TEST(Tasks, InductionLayout)
{
    auto task = makeInductionTask({16, 5});
    const Batch b = task->batch(1, 16, false);
    for (int64_t s = 0; s < b.B; ++s) {
        const int32_t* ids = b.ids.data() + s * b.T;
        EXPECT_EQ(ids[16], 1);
        int triggers = 0, value = -1;
        for (int64_t t = 0; t < 16; ++t)
            if (ids[t] == 1) {
                ++triggers;
                value = ids[t + 1];
            }
        EXPECT_EQ(triggers, 1);
        EXPECT_EQ(b.targets[size_t(s * b.T + 16)], value);
    }
    EXPECT_THROW(makeSelectiveCopyTask({4, 5, 3}), Error);
}

TEST(Tasks, TextHoldsOutTheLastTenth)
{
    std::vector<int32_t> toks(1000);
    for (size_t i = 0; i < toks.size(); ++i)
        toks[i] = int32_t(i % 50);
    auto task = makeTextTask(toks, 50, 8, "x.txt");
    const Batch train = task->batch(1, 64, false), held = task->batch(1, 64, true);
    for (int64_t i = 0; i < 64 * 8; ++i)
        EXPECT_EQ(held.targets[size_t(i)], (held.ids[size_t(i)] + 1) % 50);
    EXPECT_THROW(makeTextTask({1, 2, 3}, 5, 8, "short.txt"), Error);
}
