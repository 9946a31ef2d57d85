// The CUDA plugin loader and the backend factory's "auto"/"cuda" decisions, with stand-in
// plugins (fake_backend_plugin.cpp) chosen through ARCHLENS_CUDA_PLUGIN: no plugin, a plugin
// that works, one that reports why it cannot run, a wrong ABI, a library that is no plugin,
// and the real skeleton plugin when this build has it.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>

#include "backends/backend_factory.h"
#include "backends/plugin_abi.h"
#include "backends/plugin_loader.h"
#include "base/log.h"

using namespace archlens;

namespace {

class PluginLoader : public ::testing::Test {
protected:
    void TearDown() override { ::unsetenv("ARCHLENS_CUDA_PLUGIN"); }
    static void use(const char* path) { ::setenv("ARCHLENS_CUDA_PLUGIN", path, 1); }

    // "auto" falls back to the fast CPU backend saying `why`; "cuda" fails saying it too.
    static void expectFallback(const std::string& why)
    {
        BackendChoice c = createBackend("auto");
        EXPECT_EQ(c.backend->name(), "cpu");
        EXPECT_NE(c.notice.find("using the CPU backend"), std::string::npos) << c.notice;
        EXPECT_NE(c.notice.find(why), std::string::npos) << c.notice;
        try {
            createBackend("cuda");
            ADD_FAILURE() << "--backend cuda should fail";
        } catch (const Error& e) {
            EXPECT_EQ(e.code(), ErrorCode::Backend);
            EXPECT_NE(std::string(e.what()).find("the CUDA backend cannot run"), std::string::npos) << e.what();
            EXPECT_NE(std::string(e.what()).find(why), std::string::npos) << e.what();
        }
    }
};

TEST_F(PluginLoader, WithoutAPluginSaysWhereItLooked)
{
    ::unsetenv("ARCHLENS_CUDA_PLUGIN");
    const auto paths = cudaPluginSearchPaths();
    ASSERT_EQ(paths.size(), 2u);
    EXPECT_EQ(paths[0].filename(), kCudaPluginFile);
    EXPECT_NE(paths[1].string().find("lib/archlens"), std::string::npos);
    const PluginLoad r = loadCudaPlugin();
    EXPECT_FALSE(r.backend);
    EXPECT_NE(r.reason.find("no CUDA plugin found"), std::string::npos) << r.reason;
    EXPECT_NE(r.reason.find(paths[0].string()), std::string::npos) << r.reason;
    expectFallback("no CUDA plugin found");
}

TEST_F(PluginLoader, ExplicitPathThatDoesNotExist)
{
    use("/nonexistent/libarchlens_cuda.so");
    expectFallback("no CUDA plugin at /nonexistent/libarchlens_cuda.so");
}

TEST_F(PluginLoader, AWorkingPluginIsUsedByAutoAndCuda)
{
    use(FAKE_PLUGIN_OK_PATH);
    std::vector<std::string> logged;
    setLogSink([&](LogLevel, const std::string& m) { logged.push_back(m); });
    BackendChoice c = createBackend("auto");
    setLogSink(nullptr);
    EXPECT_TRUE(c.notice.empty()) << c.notice;
    EXPECT_EQ(c.backend->name(), "cpu-reference"); // what the fake plugin hands over
    ASSERT_FALSE(logged.empty());
    EXPECT_NE(logged[0].find("fake plugin"), std::string::npos);
    EXPECT_EQ(createBackend("cuda").backend->name(), "cpu-reference");
    // and it computes
    Tensor a = Tensor::fromVector({ 2 }, { 1.f, 2.f }), b = Tensor::fromVector({ 2 }, { 3.f, 4.f }),
           o = Tensor::empty({ 2 });
    c.backend->add(a, b, o);
    EXPECT_EQ(o.f32()[1], 6.f);
}

TEST_F(PluginLoader, APluginThatCannotRunSaysWhy)
{
    use(FAKE_PLUGIN_TOO_OLD_PATH);
    const PluginLoad r = loadCudaPlugin();
    EXPECT_EQ(r.status, ARCHLENS_PLUGIN_DRIVER_TOO_OLD);
    expectFallback("needs CUDA 13.0 or newer");
}

TEST_F(PluginLoader, AnotherAbiIsRefused)
{
    use(FAKE_PLUGIN_WRONG_ABI_PATH);
    expectFallback("rebuild the plugin together with this program");
}

TEST_F(PluginLoader, ALibraryThatIsNoPluginIsRefused)
{
    use(NOT_A_PLUGIN_PATH);
    expectFallback("is not an ArchLens backend plugin");
}

TEST_F(PluginLoader, TheRealPluginRunsOrSaysWhy)
{
#ifndef CUDA_PLUGIN_PATH
    GTEST_SKIP() << "this build has no CUDA plugin (no CUDA toolkit found at configure time)";
#else
    use(CUDA_PLUGIN_PATH);
    const PluginLoad r = loadCudaPlugin();
    if (r.backend) { // a usable device: the backend it hands over is the CUDA one
        EXPECT_EQ(r.status, ARCHLENS_PLUGIN_OK);
        EXPECT_EQ(r.backend->name(), "cuda");
        std::printf("the CUDA plugin on this machine: %s\n", r.backend->description().c_str());
        return;
    }
    EXPECT_NE(r.status, ARCHLENS_PLUGIN_OK);
    EXPECT_FALSE(r.reason.empty());
    std::printf("the CUDA plugin on this machine: %s\n", r.reason.c_str());
    expectFallback(r.reason);
#endif
}

} // namespace
