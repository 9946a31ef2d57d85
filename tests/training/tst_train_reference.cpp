// The Mamba training model's loss and whole-model gradients against PyTorch autograd
// (tests/reference/make_train_goldens.py), and its LoRA forward against the reference's
// merged-weight computation of PEFT adapters. Tolerance 1e-4 relative (max abs error over
// max abs value, per tensor).
#include <fstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "formats/safetensors.h"
#include "test_support.h"
#include "training/mamba_train_model.h"

using namespace archlens;
using namespace archlens::train;

namespace {

const std::filesystem::path kData = std::filesystem::path(ARCHLENS_TEST_DATA) / "training";

Tensor fromVector(const std::vector<float>& v, const Shape& shape) { return Tensor::fromVector(shape, v); }

} // namespace

TEST(TrainReference, LossAndGradientsMatchAutograd)
{
    const auto dir = kData / "mamba_grad";
    const MambaTrainModel model = MambaTrainModel::load(dir);
    std::ifstream f(dir / "batch.json");
    const nlohmann::json batch = nlohmann::json::parse(f);
    std::vector<int32_t> ids, targets;
    int64_t B = 0, T = 0;
    for (const auto& row : batch["ids"]) {
        ++B;
        T = int64_t(row.size());
        for (const auto& v : row)
            ids.push_back(v.get<int32_t>());
    }
    for (const auto& row : batch["targets"])
        for (const auto& v : row)
            targets.push_back(std::max(-1, v.get<int32_t>()));
    std::vector<float> grads(size_t(model.params().numel()), 0.f);
    ThreadPool pool(2);
    const BatchStats st = model.lossAndGrad(ids.data(), targets.data(), B, T, grads.data(), &pool);
    EXPECT_NEAR(st.meanLoss(), batch["loss"].get<double>(), 1e-5 * std::max(1.0, batch["loss"].get<double>()));

    const auto golden = SafetensorsFile::open(dir / "grads.safetensors");
    ASSERT_EQ(int(golden->tensors().size()), model.params().count());
    for (int i = 0; i < model.params().count(); ++i) {
        const ParamInfo& p = model.params().info(i);
        ASSERT_TRUE(golden->contains(p.name)) << p.name;
        const Tensor ours = fromVector(std::vector<float>(grads.begin() + p.offset, grads.begin() + p.offset + p.numel),
                                       p.shape);
        EXPECT_LT(test::relError(ours, golden->tensor(p.name)), 1e-4) << p.name;
    }
    // one thread gives the same numbers up to summation order
    std::vector<float> g1(grads.size(), 0.f);
    model.lossAndGrad(ids.data(), targets.data(), B, T, g1.data(), nullptr);
    EXPECT_LT(test::relError(fromVector(g1, {int64_t(g1.size())}), fromVector(grads, {int64_t(grads.size())})), 1e-6);
}

TEST(TrainReference, LoraForwardMatchesReference)
{
    for (const char* name : {"lora", "lora_rslora"}) {
        SCOPED_TRACE(name);
        MambaTrainModel model = MambaTrainModel::load(kData / "mamba_grad");
        model.loadAdapter(kData / name);
        const auto golden = SafetensorsFile::open(kData / name / "logits.safetensors");
        const Tensor idsT = golden->tensor("ids");
        const Tensor want = golden->tensor("logits");
        const std::vector<int32_t> ids(idsT.i32(), idsT.i32() + idsT.numel());
        const auto got = model.logits(ids.data(), int64_t(ids.size()));
        EXPECT_LT(test::relError(fromVector(got, want.shape()), want), 1e-4);
        // merged weights compute the same function
        model.mergeLora();
        const auto merged = model.logits(ids.data(), int64_t(ids.size()));
        EXPECT_LT(test::relError(fromVector(merged, want.shape()), want), 1e-4);
    }
}
