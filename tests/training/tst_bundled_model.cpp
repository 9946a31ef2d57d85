// The bundled trained models (resources/models/mamba-selective-copy, mamba-induction): they load with loadModel
// (the app's path), its card says what it is, and it copies fresh held-out sequences exactly.
// 1,000 fresh sequences (the number the model card reports) take about a second, so the whole
// check is a unit test.
#include <fstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "backends/backend_factory.h"
#include "models/model.h"
#include "test_support.h"
#include "training/trainer.h"

using namespace archlens;
using namespace archlens::train;
namespace fs = std::filesystem;

namespace {

const fs::path kModel = fs::path(ARCHLENS_SOURCE_DIR) / "resources/models/mamba-selective-copy";

nlohmann::json readJson(const fs::path& p)
{
    std::ifstream f(p);
    return nlohmann::json::parse(f);
}

double accuracy(int64_t samples, uint64_t seed, const fs::path& dir = kModel)
{
    const MambaTrainModel model = MambaTrainModel::load(dir);
    const auto task = loadTask(dir);
    ThreadPool pool(2);
    return evaluate(model, *task, seed, samples, &pool).accuracy;
}

} // namespace

TEST(BundledModel, CardTaskAndHeldOutAccuracy)
{
    ASSERT_TRUE(fs::exists(kModel / "model.safetensors")) << kModel;
    const auto card = readJson(kModel / "archlens_card.json");
    EXPECT_EQ(card["trained"], true);
    EXPECT_EQ(card["task"]["task"], "selective-copy");
    EXPECT_GE(card["metrics"]["exact_sequence_accuracy"].get<double>(), 0.95);
    EXPECT_FALSE(card["command"].get<std::string>().empty());
    const auto task = readJson(kModel / "archlens_task.json");
    EXPECT_EQ(task["task"], "selective-copy");
    // the app's loader reads it and agrees with the training model
    auto m = loadModel(kModel, createBackend("cpu").backend);
    EXPECT_EQ(m->info().layers, 2);
    EXPECT_EQ(m->info().dModel, 64);
    EXPECT_GE(accuracy(1000, 424242), 0.95);
    // the text form: '.' noise, '|' marker, letters for the symbols
    EXPECT_TRUE(fs::exists(kModel / "tokenizer.json"));
}

TEST(BundledModel, InductionModel)
{
    const fs::path dir = fs::path(ARCHLENS_SOURCE_DIR) / "resources/models/mamba-induction";
    ASSERT_TRUE(fs::exists(dir / "model.safetensors")) << dir;
    const auto card = readJson(dir / "archlens_card.json");
    EXPECT_EQ(card["trained"], true);
    EXPECT_EQ(card["task"]["task"], "induction");
    EXPECT_GE(accuracy(1000, 424242, dir), 0.95);
}
