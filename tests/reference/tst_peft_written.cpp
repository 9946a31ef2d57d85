// An adapter written BY peft (tests/reference/device_oracle.py on a machine with transformers +
// peft: LoraConfig on training/mamba_grad, in_proj / x_proj / dt_proj / embeddings, rsLoRA, B
// non-zero) loads with MambaTrainModel::loadAdapter and gives the logits transformers + peft
// computed (expected.json), within 1e-4 relative. ARCHLENS_PEFT_WRITTEN names the folder
// (device_oracle.py's OUT/peft_written); without it the test skips and says so.
#include <cmath>
#include <cstdlib>
#include <fstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "test_support.h"
#include "training/mamba_train_model.h"

using namespace archlens;
using namespace archlens::train;

namespace {

std::filesystem::path peftWrittenDir()
{
    const char* dir = std::getenv("ARCHLENS_PEFT_WRITTEN");
    return dir && *dir ? std::filesystem::path(dir) : std::filesystem::path();
}

} // namespace

TEST(PeftWritten, AdapterPeftWroteGivesPeftsLogits)
{
    const auto dir = peftWrittenDir();
    if (dir.empty())
        GTEST_SKIP() << "ARCHLENS_PEFT_WRITTEN is not set: it names the peft_written/ folder that "
                        "tests/reference/device_oracle.py writes on a machine with transformers and peft "
                        "(packaging/device-check.sh runs both)";
    const auto expectedPath = dir / "expected.json";
    ASSERT_TRUE(std::filesystem::exists(expectedPath)) << expectedPath << " is missing";
    std::ifstream f(expectedPath);
    const nlohmann::json expected = nlohmann::json::parse(f);
    const auto base = std::filesystem::path(ARCHLENS_TEST_DATA) / expected.at("base").get<std::string>();

    MambaTrainModel model = MambaTrainModel::load(base);
    model.loadAdapter(dir);
    EXPECT_NEAR(model.loraScaling(), expected.at("scaling").get<double>(), 1e-9);

    const auto ids = expected.at("ids").get<std::vector<int32_t>>();
    const auto rows = expected.at("logits").get<std::vector<std::vector<float>>>();
    ASSERT_EQ(rows.size(), ids.size());
    std::vector<float> want;
    for (const auto& r : rows)
        want.insert(want.end(), r.begin(), r.end());
    const int64_t T = int64_t(ids.size());
    const int64_t V = int64_t(rows.front().size());
    const double tol = expected.value("tolerance", 1e-4);

    const auto got = model.logits(ids.data(), T);
    ASSERT_EQ(got.size(), want.size());
    const Tensor wantT = Tensor::fromVector({T, V}, want);
    EXPECT_LE(test::relError(Tensor::fromVector({T, V}, got), wantT), tol)
        << "adapter written by peft " << expected.value("versions", nlohmann::json::object()).dump();

    // the adapter matters: the base alone is far from PEFT's logits
    const MambaTrainModel plain = MambaTrainModel::load(base);
    EXPECT_GT(test::relError(Tensor::fromVector({T, V}, plain.logits(ids.data(), T)), wantT), 100 * tol);

    // merged weights compute the same function
    model.mergeLora();
    EXPECT_LE(test::relError(Tensor::fromVector({T, V}, model.logits(ids.data(), T)), wantT), tol);
}
