// Loading checkpoints: facts read from headers, and every kind of bad input giving a
// clear Error that names the file, key or tensor — never a crash.
#include <gtest/gtest.h>

#include <fstream>

#include <nlohmann/json.hpp>

#include "formats/safetensors.h"
#include "models/model.h"
#include "test_support.h"

using namespace archlens;
namespace fs = std::filesystem;

namespace {

std::shared_ptr<Backend> cpu() { return std::shared_ptr<Backend>(makeCpuReferenceBackend()); }

// A copy of a reference checkpoint that a test may damage.
struct CaseCopy {
    test::TempDir tmp;
    fs::path dir;
    explicit CaseCopy(const std::string& name)
    {
        dir = tmp.path() / name;
        fs::copy(test::referenceCase(name), dir, fs::copy_options::recursive);
    }
    nlohmann::json config() const
    {
        std::ifstream in(dir / "config.json");
        return nlohmann::json::parse(in);
    }
    void writeConfig(const nlohmann::json& j) const { std::ofstream(dir / "config.json") << j.dump(2); }
};

std::string loadError(const fs::path& dir)
{
    try {
        loadModel(dir, cpu());
    } catch (const Error& e) {
        return e.what();
    }
    return "no error";
}

TEST(ModelLoading, DescribeReadsFactsFromHeaders)
{
    const ModelInfo info = describeModel(test::referenceCase("mamba_f32_tied"));
    EXPECT_EQ(info.architecture, "MambaForCausalLM");
    EXPECT_EQ(info.layers, 2);
    EXPECT_EQ(info.dModel, 32);
    EXPECT_EQ(info.vocabRows, 61);
    EXPECT_EQ(info.dtRank, 2); // "auto" = ceil(32 / 16)
    EXPECT_TRUE(info.tiedEmbeddings);
    EXPECT_EQ(info.weightDType, "F32");
    // parameters = the stored tensor elements (tied: the embedding counted once)
    const Checkpoint ckpt = Checkpoint::open(test::referenceCase("mamba_f32_tied"));
    EXPECT_EQ(uint64_t(info.parameters) * 4, ckpt.totalBytes());
}

TEST(ModelLoading, OriginalLayoutPadsVocabAndAcceptsSingularEmbedding)
{
    const ModelInfo info = describeModel(test::referenceCase("mamba_original_layout"));
    EXPECT_EQ(info.vocabRows, 64);
    EXPECT_EQ(info.dState, 16);
}

TEST(ModelLoading, MissingFolderAndConfig)
{
    EXPECT_NE(loadError("/nonexistent/model").find("/nonexistent/model"), std::string::npos);
    CaseCopy c("mamba_f32_tied");
    fs::remove(c.dir / "config.json");
    EXPECT_NE(loadError(c.dir).find("config.json"), std::string::npos);
}

TEST(ModelLoading, ConfigNotJson)
{
    CaseCopy c("mamba_f32_tied");
    std::ofstream(c.dir / "config.json") << "{ not json";
    const std::string err = loadError(c.dir);
    EXPECT_NE(err.find("config.json"), std::string::npos) << err;
    EXPECT_NE(err.find("JSON"), std::string::npos) << err;
}

TEST(ModelLoading, UnknownAndUnsupportedArchitectures)
{
    CaseCopy c("mamba_f32_tied");
    auto j = c.config();
    j["architectures"] = {"Mamba2ForCausalLM"};
    j["model_type"] = "mamba2";
    c.writeConfig(j);
    std::string err = loadError(c.dir);
    EXPECT_NE(err.find("unsupported architecture"), std::string::npos) << err;
    EXPECT_NE(err.find("Mamba-2"), std::string::npos) << err;
    j["architectures"] = {"FancyNetForCausalLM"};
    j["model_type"] = "fancynet";
    c.writeConfig(j);
    err = loadError(c.dir);
    EXPECT_NE(err.find("FancyNetForCausalLM"), std::string::npos) << err;
    EXPECT_NE(err.find("MambaForCausalLM"), std::string::npos) << err; // says what is supported
}

TEST(ModelLoading, ContradictoryConfigNamesTheKey)
{
    CaseCopy c("mamba_f32_tied");
    auto j = c.config();
    j["intermediate_size"] = 65;
    c.writeConfig(j);
    std::string err = loadError(c.dir);
    EXPECT_NE(err.find("intermediate_size"), std::string::npos) << err;

    j = c.config();
    j["intermediate_size"] = 64;
    j["vocab_size"] = 64;
    c.writeConfig(j);
    err = loadError(c.dir);
    EXPECT_NE(err.find("vocab_size"), std::string::npos) << err;

    j["vocab_size"] = 61;
    j["state_size"] = "sixteen";
    c.writeConfig(j);
    err = loadError(c.dir);
    EXPECT_NE(err.find("state_size"), std::string::npos) << err;
}

TEST(ModelLoading, WrongShapeNamesTensor)
{
    CaseCopy c("mamba_f32_tied");
    auto j = c.config();
    j["state_size"] = 4; // the checkpoint has 8
    c.writeConfig(j);
    const std::string err = loadError(c.dir);
    // x_proj is the first tensor whose shape depends on d_state: R + 2N rows
    EXPECT_NE(err.find("x_proj.weight"), std::string::npos) << err;
    EXPECT_NE(err.find("expected [10, 64]"), std::string::npos) << err;
    EXPECT_NE(err.find("model.safetensors"), std::string::npos) << err;
}

TEST(ModelLoading, MissingTensorNamesIt)
{
    CaseCopy c("mamba_f32_tied");
    const Checkpoint ckpt = Checkpoint::open(c.dir);
    std::vector<std::pair<std::string, Tensor>> keep;
    for (const auto& name : ckpt.names())
        if (name != "backbone.layers.1.mixer.D")
            keep.emplace_back(name, ckpt.get(name).clone());
    writeSafetensors(c.dir / "model.safetensors", keep);
    const std::string err = loadError(c.dir);
    EXPECT_NE(err.find("backbone.layers.1.mixer.D"), std::string::npos) << err;
}

TEST(ModelLoading, UntiedWithoutHeadIsAnError)
{
    CaseCopy c("mamba_f32_tied");
    auto j = c.config();
    j["tie_word_embeddings"] = false;
    c.writeConfig(j);
    const std::string err = loadError(c.dir);
    EXPECT_NE(err.find("lm_head.weight"), std::string::npos) << err;
}

TEST(ModelLoading, PytorchBinAsksForConversion)
{
    test::TempDir tmp;
    fs::copy(test::referenceCase("mamba_f32_tied") / "config.json", tmp.path() / "config.json");
    std::ofstream(tmp.path() / "pytorch_model.bin") << "PK";
    const std::string err = loadError(tmp.path());
    EXPECT_NE(err.find("safetensors"), std::string::npos) << err;
}

TEST(ModelLoading, TruncatedWeightsFile)
{
    CaseCopy c("mamba_f32_tied");
    fs::resize_file(c.dir / "model.safetensors", fs::file_size(c.dir / "model.safetensors") - 100);
    const std::string err = loadError(c.dir);
    EXPECT_NE(err.find("model.safetensors"), std::string::npos) << err;
}

} // namespace
