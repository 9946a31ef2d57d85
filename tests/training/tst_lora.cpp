// LoRA on the Mamba training model: target validation (unknown names are errors, coverage,
// targets PEFT refuses), training lowers the loss with the base frozen, the adapter saved in
// PEFT's layout round-trips, merge == unmerged forward within 1e-5 and unmerge restores.
#include <cmath>
#include <fstream>
#include <random>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "formats/safetensors.h"
#include "test_support.h"
#include "training/trainer.h"

using namespace archlens;
using namespace archlens::train;

namespace {

MambaTrainModel tinyModel(int64_t vocab)
{
    MambaInitOptions o;
    o.dModel = 16;
    o.layers = 3;
    o.dState = 4;
    o.vocabSize = vocab;
    o.seed = 5;
    return MambaTrainModel::randomInit(o);
}

double maxRel(const std::vector<float>& a, const std::vector<float>& b)
{
    return test::relError(Tensor::fromVector({int64_t(a.size())}, a), Tensor::fromVector({int64_t(b.size())}, b));
}

} // namespace

TEST(Lora, TargetValidation)
{
    MambaTrainModel m = tinyModel(10);
    const LoraCoverage all = m.resolveTargets({"in_proj", "x_proj"});
    EXPECT_EQ(all.modules.size(), 6u);
    EXPECT_EQ(all.layersCovered, 3);
    EXPECT_TRUE(all.peftRefused.empty());
    const LoraCoverage one = m.resolveTargets({"backbone.layers.1.mixer.dt_proj", "embeddings"});
    EXPECT_EQ(one.modules.size(), 2u);
    EXPECT_EQ(one.layersCovered, 1);
    EXPECT_EQ(m.resolveTargets({"out_proj"}).peftRefused, std::vector<std::string>{"out_proj"});
    try {
        m.resolveTargets({"in_proj", "q_proj"});
        FAIL();
    } catch (const Error& e) {
        EXPECT_EQ(e.code(), ErrorCode::InvalidArgument);
        EXPECT_NE(e.message().find("q_proj"), std::string::npos);
    }
    EXPECT_THROW(m.resolveTargets({"proj"}), Error); // suffix must match a whole name part
    try {
        m.resolveTargets({"conv1d"});
        FAIL();
    } catch (const Error& e) {
        EXPECT_EQ(e.code(), ErrorCode::Unsupported);
    }
    EXPECT_THROW(m.resolveTargets({}), Error);
}

TEST(Lora, TrainingLowersLossAndKeepsBaseFrozen)
{
    auto task = makeInductionTask({12, 4});
    MambaTrainModel m = tinyModel(task->vocabSize());
    const std::vector<float> base = m.params().values();
    LoraOptions lo;
    lo.r = 4;
    lo.alpha = 8;
    lo.targets = {"in_proj", "x_proj", "dt_proj", "out_proj", "embeddings"};
    m.addLora(lo);
    ThreadPool pool(2);
    // the fresh adapter is a no-op
    const Batch b = task->batch(3, 1, true);
    MambaTrainModel plain = tinyModel(task->vocabSize());
    EXPECT_LT(maxRel(m.logits(b.ids.data(), b.T), plain.logits(b.ids.data(), b.T)), 1e-6);
    const EvalResult before = evaluate(m, *task, 8, 128, &pool);
    test::TempDir dir;
    TrainOptions to;
    to.steps = 60;
    to.batch = 8;
    to.warmup = 5;
    to.lr = 1e-2;
    to.evalEvery = 0;
    to.checkpointEvery = 0;
    to.adapter = true;
    to.baseModel = "tiny";
    Trainer t(m, *task, to, dir.path(), &pool);
    t.run({}, nullptr);
    const EvalResult after = evaluate(m, *task, 8, 128, &pool);
    EXPECT_LT(after.loss, before.loss - 0.05) << before.loss << " -> " << after.loss;
    for (int i = 0; i < m.params().count(); ++i) {
        const ParamInfo& p = m.params().info(i);
        if (p.name.find(".lora_") != std::string::npos)
            continue;
        for (int64_t j = 0; j < p.numel; ++j)
            ASSERT_EQ(m.params().values()[size_t(p.offset + j)], base[size_t(p.offset + j)]) << p.name;
    }
    EXPECT_TRUE(std::filesystem::exists(dir.path() / "adapter_config.json"));
    EXPECT_FALSE(std::filesystem::exists(dir.path() / "model.safetensors"));
}

TEST(Lora, AdapterRoundTripsInPeftLayout)
{
    MambaTrainModel m = tinyModel(12);
    LoraOptions lo;
    lo.r = 2;
    lo.alpha = 5;
    lo.rslora = true;
    lo.targets = {"in_proj", "embeddings", "backbone.layers.2.mixer.out_proj"};
    m.addLora(lo);
    // give B (and the embedding A) non-zero values so the adapter matters
    for (int i = 0; i < m.params().count(); ++i)
        if (m.params().info(i).name.find(".lora_") != std::string::npos)
            for (int64_t j = 0; j < m.params().info(i).numel; ++j)
                m.params().data(i)[j] = 0.1f * float((j * 7 + i) % 11) - 0.5f;
    test::TempDir dir;
    m.saveAdapter(dir.path(), "some/base");
    std::ifstream f(dir.path() / "adapter_config.json");
    const auto cfg = nlohmann::json::parse(f);
    EXPECT_EQ(cfg["peft_type"], "LORA");
    EXPECT_EQ(cfg["r"], 2);
    EXPECT_EQ(cfg["use_rslora"], true);
    EXPECT_EQ(cfg["base_model_name_or_path"], "some/base");
    const auto st = SafetensorsFile::open(dir.path() / "adapter_model.safetensors");
    EXPECT_TRUE(st->contains("base_model.model.backbone.layers.0.mixer.in_proj.lora_A.weight"));
    EXPECT_EQ(st->info("base_model.model.backbone.layers.0.mixer.in_proj.lora_B.weight").shape,
              (Shape{2 * 32, 2}));
    EXPECT_EQ(st->info("base_model.model.backbone.embeddings.lora_embedding_A").shape, (Shape{2, 12}));
    EXPECT_EQ(st->info("base_model.model.backbone.embeddings.lora_embedding_B").shape, (Shape{16, 2}));
    EXPECT_TRUE(st->contains("base_model.model.backbone.layers.2.mixer.out_proj.lora_A.weight"));
    EXPECT_FALSE(st->contains("base_model.model.backbone.layers.1.mixer.out_proj.lora_A.weight"));

    MambaTrainModel loaded = tinyModel(12);
    loaded.loadAdapter(dir.path());
    EXPECT_NEAR(loaded.loraScaling(), 5.0 / std::sqrt(2.0), 1e-12);
    const std::vector<int32_t> ids = {1, 5, 7, 11, 0, 3, 3, 9};
    const auto want = m.logits(ids.data(), 8);
    EXPECT_EQ(loaded.logits(ids.data(), 8), want);

    // merge == unmerged within 1e-5; unmerge restores
    loaded.mergeLora();
    EXPECT_LT(maxRel(loaded.logits(ids.data(), 8), want), 1e-5);
    loaded.unmergeLora();
    EXPECT_LT(maxRel(loaded.logits(ids.data(), 8), want), 1e-6);
    // the merged model saved as a plain checkpoint gives the same logits (untied head kept)
    loaded.mergeLora();
    test::TempDir merged;
    loaded.save(merged.path());
    const MambaTrainModel fromDisk = MambaTrainModel::load(merged.path());
    EXPECT_FALSE(fromDisk.config().tied);
    EXPECT_LT(maxRel(fromDisk.logits(ids.data(), 8), want), 1e-5);
}

TEST(Lora, RefusesAdaptersItCannotApply)
{
    MambaTrainModel m = tinyModel(12);
    LoraOptions lo;
    lo.r = 2;
    lo.targets = {"in_proj"};
    m.addLora(lo);
    test::TempDir dir;
    m.saveAdapter(dir.path(), "b");
    // DoRA
    {
        std::ifstream f(dir.path() / "adapter_config.json");
        auto cfg = nlohmann::json::parse(f);
        cfg["use_dora"] = true;
        std::ofstream(dir.path() / "adapter_config.json") << cfg.dump();
        MambaTrainModel t = tinyModel(12);
        EXPECT_THROW(t.loadAdapter(dir.path()), Error);
        cfg["use_dora"] = false;
        cfg["r"] = 3; // wrong rank for the tensors
        std::ofstream(dir.path() / "adapter_config.json") << cfg.dump();
        MambaTrainModel t2 = tinyModel(12);
        try {
            t2.loadAdapter(dir.path());
            FAIL();
        } catch (const Error& e) {
            EXPECT_EQ(e.code(), ErrorCode::Shape);
        }
    }
    // an adapter for a bigger model (layer 7 does not exist)
    {
        writeSafetensors(dir.path() / "adapter_model.safetensors",
                         {{"base_model.model.backbone.layers.7.mixer.in_proj.lora_A.weight", Tensor::zeros({2, 16})}});
        MambaTrainModel t = tinyModel(12);
        EXPECT_THROW(t.loadAdapter(dir.path()), Error);
    }
}

namespace {

// A LoRA model on every linear with non-zero adapter weights (so the branch matters).
MambaTrainModel adaptedModel(double dropout)
{
    MambaTrainModel m = tinyModel(12);
    LoraOptions lo;
    lo.r = 2;
    lo.alpha = 4;
    lo.dropout = dropout;
    lo.seed = 3;
    lo.targets = {"in_proj", "x_proj", "dt_proj", "out_proj"};
    m.addLora(lo);
    for (int i = 0; i < m.params().count(); ++i)
        if (m.params().info(i).name.find(".lora_") != std::string::npos)
            for (int64_t j = 0; j < m.params().info(i).numel; ++j)
                m.params().data(i)[j] = 0.05f * float((j * 7 + i * 3) % 13) - 0.3f;
    return m;
}

const std::vector<int32_t> kIds = {1, 5, 7, 11, 0, 3, 3, 9, 2, 4, 6, 8, 10, 1, 2, 3, 5, 7};

struct LossGrad {
    double loss;
    std::vector<float> grad;
};
LossGrad trainLoss(const MambaTrainModel& m, int64_t B)
{
    const int64_t T = int64_t(kIds.size()) / B;
    std::vector<int32_t> targets(kIds.size());
    for (size_t i = 0; i < kIds.size(); ++i)
        targets[i] = kIds[(i + 1) % kIds.size()];
    LossGrad r;
    r.grad.assign(size_t(m.params().numel()), 0.f);
    r.loss = m.lossAndGrad(kIds.data(), targets.data(), B, T, r.grad.data(), nullptr).meanLoss();
    return r;
}
double evalLoss(const MambaTrainModel& m)
{
    std::vector<int32_t> targets(kIds.size());
    for (size_t i = 0; i < kIds.size(); ++i)
        targets[i] = kIds[(i + 1) % kIds.size()];
    return m.lossAndGrad(kIds.data(), targets.data(), 2, int64_t(kIds.size()) / 2, nullptr, nullptr).meanLoss();
}

} // namespace

TEST(LoraDropout, ZeroChangesNothingAndEvaluationNeverDrops)
{
    const MambaTrainModel off = adaptedModel(0.0);
    const MambaTrainModel on = adaptedModel(0.3);
    // evaluation and logits: identical with and without dropout
    EXPECT_EQ(evalLoss(on), evalLoss(off));
    EXPECT_EQ(on.logits(kIds.data(), 9), off.logits(kIds.data(), 9));
    // dropout 0: the training loss is the evaluation loss
    EXPECT_EQ(trainLoss(off, 2).loss, evalLoss(off));
    // dropout > 0 changes the training loss and gradient, reproducibly
    const LossGrad a = trainLoss(on, 2), b = trainLoss(on, 2), z = trainLoss(off, 2);
    EXPECT_NE(a.loss, z.loss);
    EXPECT_NE(a.grad, z.grad);
    EXPECT_EQ(a.loss, b.loss);
    EXPECT_EQ(a.grad, b.grad);
    // the base stays frozen: no gradient outside the adapter
    for (int i = 0; i < on.params().count(); ++i) {
        const ParamInfo& p = on.params().info(i);
        if (p.name.find(".lora_") != std::string::npos)
            continue;
        for (int64_t j = 0; j < p.numel; ++j)
            ASSERT_EQ(a.grad[size_t(p.offset + j)], 0.f) << p.name;
    }
    // merged: no adapter branch, so no dropout either
    MambaTrainModel merged = adaptedModel(0.3);
    merged.mergeLora();
    EXPECT_NEAR(trainLoss(merged, 2).loss, evalLoss(off), 1e-4);
}

TEST(LoraDropout, GradientMatchesFiniteDifferencesWithItsFixedMask)
{
    // A fixed batch has a fixed mask (seeded by the adapter seed and the tokens), so the
    // training loss is a smooth function of the adapter weights: central differences along
    // random directions of the LoRA parameters must match the analytic gradient.
    MambaTrainModel m = adaptedModel(0.4);
    const LossGrad g = trainLoss(m, 2);
    std::mt19937_64 rng(11);
    std::normal_distribution<double> nd(0, 1);
    std::vector<float>& v = m.params().values();
    for (int dirIdx = 0; dirIdx < 4; ++dirIdx) {
        std::vector<double> d(v.size(), 0.0);
        double norm = 0;
        for (int i = 0; i < m.params().count(); ++i) {
            const ParamInfo& p = m.params().info(i);
            if (p.name.find(".lora_") == std::string::npos)
                continue;
            for (int64_t j = 0; j < p.numel; ++j) {
                d[size_t(p.offset + j)] = nd(rng);
                norm += d[size_t(p.offset + j)] * d[size_t(p.offset + j)];
            }
        }
        norm = std::sqrt(norm);
        double analytic = 0;
        for (size_t i = 0; i < v.size(); ++i) {
            d[i] /= norm;
            analytic += d[i] * double(g.grad[i]);
        }
        const std::vector<float> keep = v;
        const double h = 1e-2;
        for (size_t i = 0; i < v.size(); ++i)
            v[i] = float(keep[i] + h * d[i]);
        const double lp = trainLoss(m, 2).loss;
        for (size_t i = 0; i < v.size(); ++i)
            v[i] = float(keep[i] - h * d[i]);
        const double lm = trainLoss(m, 2).loss;
        v = keep;
        const double fd = (lp - lm) / (2 * h);
        EXPECT_NEAR(fd, analytic, 2e-3 + 0.02 * std::fabs(analytic)) << "direction " << dirIdx;
    }
}

TEST(LoraDropout, StoredInAdapterConfig)
{
    const MambaTrainModel m = adaptedModel(0.25);
    test::TempDir dir;
    m.saveAdapter(dir.path(), "base");
    std::ifstream f(dir.path() / "adapter_config.json");
    EXPECT_DOUBLE_EQ(nlohmann::json::parse(f)["lora_dropout"].get<double>(), 0.25);
    MambaTrainModel loaded = tinyModel(12);
    loaded.loadAdapter(dir.path());
    EXPECT_DOUBLE_EQ(loaded.loraOptions().dropout, 0.25);
    MambaTrainModel bad = tinyModel(12);
    LoraOptions lo;
    lo.targets = {"in_proj"};
    lo.dropout = 1.0;
    EXPECT_THROW(bad.addLora(lo), Error);
}
