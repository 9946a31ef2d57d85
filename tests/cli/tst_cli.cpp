// archlens-cli end to end: traces match the PyTorch reference, generation matches its
// greedy tokens, tokenizer commands round-trip, and bad input exits non-zero with one
// line on stderr.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include "backends/backend.h"
#include "formats/safetensors.h"
#include "formats/trace.h"
#include "models/model.h"
#include "cli_runner.h"
#include "test_support.h"

using namespace archlens;
namespace fs = std::filesystem;

namespace {

using test::CliResult;
using test::cli;
using test::slurp;

std::string idsArg(const Tensor& t)
{
    std::vector<int32_t> v(t.i32(), t.i32() + t.numel());
    return fmt::format("{}", fmt::join(v, ","));
}

const char* kCases[] = {"mamba_f32_tied",       "mamba_f32_untied_bias", "mamba_f32_noconvbias",
                        "mamba_bf16",           "mamba_original_layout", "mamba_sharded"};
const char* kProbeLeaves[] = {"x", "delta", "B", "C", "state", "state_norm", "y", "gate"};

class CliTrace : public ::testing::TestWithParam<const char*> {};

TEST_P(CliTrace, MatchesReference)
{
    const fs::path dir = test::referenceCase(GetParam());
    auto golden = SafetensorsFile::open(dir / "golden.safetensors");
    test::TempDir tmp;
    const fs::path out = tmp.path() / "trace.h5";
    const auto r = cli({"trace", "--model", dir.string(), "--tokens", idsArg(golden->tensor("input_ids")), "--out",
                        out.string(), "--backend", "cpu"});
    ASSERT_EQ(r.rc, 0) << r.err;
    const TraceReader trace = TraceReader::open(out);
    EXPECT_EQ(trace.meta().schemaVersion, kTraceSchemaVersion);
    EXPECT_EQ(trace.meta().backend, "cpu");
    EXPECT_EQ(trace.meta().prompt, "");
    EXPECT_EQ(trace.meta().seed, -1);
    EXPECT_EQ(trace.meta().promptLength, golden->tensor("input_ids").numel());
    EXPECT_EQ(trace.meta().modelType, "mamba");
    EXPECT_EQ(trace.meta().weightDType, std::string(GetParam()) == "mamba_bf16" ? "BF16" : "F32");
    const auto tokens = trace.tokens();
    const Tensor ids = golden->tensor("input_ids");
    ASSERT_EQ(int64_t(tokens.size()), ids.numel());
    EXPECT_TRUE(std::equal(tokens.begin(), tokens.end(), ids.i32()));
    EXPECT_EQ(trace.tokenText().front(), fmt::format("#{}", ids.i32()[0])); // no tokenizer in these folders
    EXPECT_LE(test::relError(trace.read("/logits"), golden->tensor("logits")), 1e-4);
    const int layers = int(trace.layers().size());
    EXPECT_GE(layers, 2);
    for (int i = 0; i < layers; ++i) {
        for (const char* leaf : kProbeLeaves)
            EXPECT_LE(test::relError(trace.read(fmt::format("/layers/{}/ssm/{}", i, leaf)),
                                     golden->tensor(fmt::format("layers.{}.ssm.{}", i, leaf))),
                      1e-4)
                << leaf << " layer " << i;
        EXPECT_LE(test::relError(trace.read(fmt::format("/layers/{}/ssm/A", i)),
                                 golden->tensor(fmt::format("layers.{}.ssm.A", i))),
                  1e-6);
    }
}

TEST_P(CliTrace, GenerateMatchesReferenceGreedyTokens)
{
    const fs::path dir = test::referenceCase(GetParam());
    auto golden = SafetensorsFile::open(dir / "golden.safetensors");
    const auto r = cli({"generate", "--model", dir.string(), "--tokens", idsArg(golden->tensor("input_ids")),
                        "--max-new-tokens", "8", "--backend", "cpu"});
    ASSERT_EQ(r.rc, 0) << r.err;
    EXPECT_EQ(r.out, idsArg(golden->tensor("generated_ids")) + "\n");
}

INSTANTIATE_TEST_SUITE_P(Reference, CliTrace, ::testing::ValuesIn(kCases));

// Every other architecture: the trace holds what the golden has (attention weights when named,
// /layers/{i}/moe/*, Jamba's ssm/*), the model-level root attributes, and generate matches.
const char* kArchCases[] = {"llama_gqa",      "llama_bf16",    "llama_tied", "llama_rope_linear", "llama_rope_dynamic",
                            "llama_rope_llama3", "llama_rope_yarn", "neox_parallel", "neox_sequential", "mixtral",
                            "olmoe",          "olmoe_norm",    "qwen2_moe",  "jamba"};

std::string everyProbe()
{
    std::vector<std::string> names;
    for (Probe p : allProbes())
        names.emplace_back(probeName(p));
    return fmt::format("{}", fmt::join(names, ","));
}

class CliArchTrace : public ::testing::TestWithParam<const char*> {};

TEST_P(CliArchTrace, MatchesReferenceWithEveryProbe)
{
    const fs::path dir = test::referenceCase(GetParam());
    auto golden = SafetensorsFile::open(dir / "golden.safetensors");
    test::TempDir tmp;
    const fs::path out = tmp.path() / "trace.h5";
    const auto r = cli({"trace", "--model", dir.string(), "--tokens", idsArg(golden->tensor("input_ids")), "--out",
                        out.string(), "--backend", "cpu", "--probes", everyProbe()});
    ASSERT_EQ(r.rc, 0) << r.err;
    const TraceReader trace = TraceReader::open(out);
    EXPECT_LE(test::relError(trace.read("/logits"), golden->tensor("logits")), 1e-4);
    int compared = 0;
    for (const auto& [name, info] : golden->tensors()) {
        if (name.rfind("layers.", 0) != 0)
            continue;
        // layers.{i}.{group}.{leaf} -> /layers/{i}/{group}/{leaf}
        std::string path = "/" + name;
        std::replace(path.begin(), path.end(), '.', '/');
        ASSERT_TRUE(trace.has(path)) << path;
        const Tensor got = trace.read(path), want = golden->tensor(name);
        ASSERT_EQ(got.numel(), want.numel()) << path;
        if (want.dtype() == DType::I32 || want.dtype() == DType::I64) {
            ASSERT_EQ(got.dtype(), want.dtype()) << path;
            EXPECT_EQ(std::memcmp(got.raw(), want.raw(), want.nbytes()), 0) << path;
        } else {
            EXPECT_LE(test::relError(got, want), 1e-4) << path;
        }
        ++compared;
    }
    EXPECT_GT(compared, 0);
    const ModelInfo info = describeModel(dir);
    EXPECT_EQ(trace.attribute("kv_cache_bytes_per_token"), std::to_string(info.kvCacheBytesPerToken));
    EXPECT_GT(info.kvCacheBytesPerToken, 0u);
    EXPECT_EQ(trace.attributeStrings("layer_mixer"), info.layerMixer);
    EXPECT_EQ(trace.attributeStrings("layer_ffn"), info.layerFfn);
    if (golden->contains("load_balancing_loss")) {
        const double want = golden->tensor("load_balancing_loss").f32()[0];
        const std::string got = trace.attribute("load_balancing_loss");
        ASSERT_FALSE(got.empty());
        EXPECT_NEAR(std::stod(got), want, 1e-4 * want);
    } else {
        EXPECT_EQ(trace.attribute("load_balancing_loss"), "");
    }
}

TEST_P(CliArchTrace, DefaultProbesLeaveOutAttentionWeights)
{
    const fs::path dir = test::referenceCase(GetParam());
    auto golden = SafetensorsFile::open(dir / "golden.safetensors");
    test::TempDir tmp;
    const fs::path out = tmp.path() / "trace.h5";
    const auto r = cli({"trace", "--model", dir.string(), "--tokens", idsArg(golden->tensor("input_ids")), "--out",
                        out.string(), "--backend", "cpu"});
    ASSERT_EQ(r.rc, 0) << r.err;
    const TraceReader trace = TraceReader::open(out);
    for (int layer : trace.layers())
        EXPECT_FALSE(trace.has(fmt::format("/layers/{}/attn/weights", layer)));
}

TEST_P(CliArchTrace, GenerateMatchesReferenceGreedyTokens)
{
    const fs::path dir = test::referenceCase(GetParam());
    auto golden = SafetensorsFile::open(dir / "golden.safetensors");
    const auto r = cli({"generate", "--model", dir.string(), "--tokens", idsArg(golden->tensor("input_ids")),
                        "--max-new-tokens", "8", "--backend", "cpu"});
    ASSERT_EQ(r.rc, 0) << r.err;
    EXPECT_EQ(r.out, idsArg(golden->tensor("generated_ids")) + "\n");
}

TEST_P(CliArchTrace, InfoReportsParametersAndMemory)
{
    const auto r = cli({"info", "--model", test::referenceCase(GetParam()).string(), "--backend", "cpu"});
    ASSERT_EQ(r.rc, 0) << r.err;
    for (const char* key : {"parameters", "active/token", "KV cache", "memory needed", "fits cpu          yes"})
        EXPECT_NE(r.out.find(key), std::string::npos) << key << "\n" << r.out;
    EXPECT_EQ(r.out.find("SSM state") != std::string::npos, std::string(GetParam()) == "jamba") << r.out;
}

INSTANTIATE_TEST_SUITE_P(Reference, CliArchTrace, ::testing::ValuesIn(kArchCases));

const fs::path kDemo = fs::path(ARCHLENS_SOURCE_DIR) / "resources/models/mamba-text";

TEST(Cli, TraceSelectsLayersAndProbes)
{
    test::TempDir tmp;
    const fs::path out = tmp.path() / "t.h5";
    const auto r = cli({"trace", "--model", kDemo.string(), "--prompt", "Hello state space", "--out", out.string(),
                        "--layers", "1,3", "--probes", "ssm.delta,ssm.B"});
    ASSERT_EQ(r.rc, 0) << r.err;
    const TraceReader trace = TraceReader::open(out);
    EXPECT_EQ(trace.layers(), (std::vector<int>{1, 3}));
    EXPECT_TRUE(trace.has("/layers/1/ssm/delta"));
    EXPECT_TRUE(trace.has("/layers/3/ssm/B"));
    EXPECT_TRUE(trace.has("/layers/3/ssm/A"));
    EXPECT_TRUE(trace.has("/layers/3/ssm/D"));
    EXPECT_FALSE(trace.has("/layers/1/ssm/state"));
    EXPECT_EQ(trace.meta().prompt, "Hello state space");
    EXPECT_EQ(trace.meta().architecture, "MambaForCausalLM");
    // token text comes from the tokenizer and joins back into the prompt
    std::string joined;
    for (const auto& t : trace.tokenText())
        joined += t;
    EXPECT_EQ(joined, "Hello state space");
}

TEST(Cli, TraceRefusesAboveMaxBytesWithTheNumber)
{
    test::TempDir tmp;
    const fs::path out = tmp.path() / "t.h5";
    const auto r = cli({"trace", "--model", kDemo.string(), "--prompt", "Hello", "--out", out.string(), "--max-bytes",
                        "1000"});
    EXPECT_NE(r.rc, 0);
    EXPECT_NE(r.err.find("--max-bytes 1000"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("bytes"), std::string::npos) << r.err;
    EXPECT_FALSE(fs::exists(out));
}

TEST(Cli, InfoReportsModelFacts)
{
    const auto r = cli({"info", "--model", test::referenceCase("mamba_f32_tied").string()});
    ASSERT_EQ(r.rc, 0) << r.err;
    EXPECT_NE(r.out.find("MambaForCausalLM"), std::string::npos);
    EXPECT_NE(r.out.find("layers            2"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("memory needed"), std::string::npos);
}

TEST(Cli, TokenizeAndDetokenizeRoundTrip)
{
    const std::string text = "Mamba's scan: h_t = exp(Δ·A)·h + Δ·B·x — 42 tokens.\n";
    auto r = cli({"tokenize", "--tokenizer", kDemo.string(), "--text", text});
    ASSERT_EQ(r.rc, 0) << r.err;
    ASSERT_GE(r.out.size(), 3u);
    EXPECT_EQ(r.out.front(), '[');
    const std::string ids = r.out.substr(1, r.out.find(']') - 1);
    r = cli({"detokenize", "--tokenizer", (kDemo / "tokenizer.json").string(), "--ids", ids});
    ASSERT_EQ(r.rc, 0) << r.err;
    EXPECT_EQ(r.out, text);
    r = cli({"detokenize", "--tokenizer", kDemo.string(), "--ids", ""});
    EXPECT_EQ(r.rc, 0);
    EXPECT_EQ(r.out, "");
    // --text-file uses the file's bytes unchanged
    test::TempDir tmp;
    std::ofstream(tmp.path() / "t.txt", std::ios::binary) << text;
    auto fromFile = cli({"tokenize", "--tokenizer", kDemo.string(), "--text-file", (tmp.path() / "t.txt").string()});
    EXPECT_EQ(fromFile.out, "[" + ids + "]\n");
}

TEST(Cli, GenerateStreamsTextAndSeedsReproduce)
{
    const std::vector<std::string> args = {"generate", "--model", kDemo.string(), "--prompt", "The state",
                                           "--max-new-tokens", "6", "--temperature", "1.0", "--top-k", "20",
                                           "--seed", "7"};
    const auto a = cli(args), b = cli(args);
    ASSERT_EQ(a.rc, 0) << a.err;
    EXPECT_EQ(a.out, b.out);
    EXPECT_FALSE(a.out.empty());
}

// ---- a Mixtral-8x7B-sized checkpoint made of sparse files ----------------------------------

struct Measured {
    int rc = -1;
    std::string out, err;
    long maxRssKiB = 0;
};

// Runs the CLI as a direct child so wait4 reports its own peak resident memory.
Measured cliMeasured(const std::vector<std::string>& args)
{
    static test::TempDir tmp;
    const fs::path out = tmp.path() / "out.txt", err = tmp.path() / "err.txt";
    std::vector<std::string> argv = {ARCHLENS_CLI};
    argv.insert(argv.end(), args.begin(), args.end());
    const pid_t pid = fork();
    if (pid == 0) {
        const int o = ::open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
        const int e = ::open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
        dup2(o, 1);
        dup2(e, 2);
        std::vector<char*> cargv;
        for (auto& a : argv)
            cargv.push_back(a.data());
        cargv.push_back(nullptr);
        execv(cargv[0], cargv.data());
        _exit(127);
    }
    int status = 0;
    struct rusage ru {};
    wait4(pid, &status, 0, &ru);
    return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, slurp(out), slurp(err), ru.ru_maxrss};
}

// Writes safetensors headers declaring the real tensor shapes in BF16 and extends each shard
// to its full size with ftruncate, so ~93 GB of "weights" take no disk space.
void writeSparseShard(const fs::path& path, const std::vector<std::pair<std::string, Shape>>& tensors)
{
    nlohmann::json header;
    header["__metadata__"] = {{"format", "pt"}};
    uint64_t offset = 0;
    for (const auto& [name, shape] : tensors) {
        const uint64_t bytes = uint64_t(shapeNumel(shape)) * 2;
        header[name] = {{"dtype", "BF16"}, {"shape", shape}, {"data_offsets", {offset, offset + bytes}}};
        offset += bytes;
    }
    std::string text = header.dump();
    text.append((8 - text.size() % 8) % 8, ' ');
    std::ofstream f(path, std::ios::binary);
    const uint64_t n = text.size();
    f.write(reinterpret_cast<const char*>(&n), 8);
    f.write(text.data(), std::streamsize(text.size()));
    f.close();
    fs::resize_file(path, 8 + n + offset);
}

int64_t writeSparseMixtral8x7B(const fs::path& dir)
{
    const int64_t D = 4096, I = 14336, V = 32000, L = 32, X = 8, Hkv = 8, Dh = 128;
    fs::create_directories(dir);
    std::ofstream(dir / "config.json") << nlohmann::json{
        {"architectures", {"MixtralForCausalLM"}}, {"model_type", "mixtral"}, {"hidden_size", D},
        {"intermediate_size", I}, {"num_hidden_layers", L}, {"num_attention_heads", 32},
        {"num_key_value_heads", Hkv}, {"num_local_experts", X}, {"num_experts_per_tok", 2}, {"vocab_size", V},
        {"rms_norm_eps", 1e-5}, {"rope_theta", 1e6}, {"max_position_embeddings", 32768},
        {"sliding_window", nullptr}, {"tie_word_embeddings", false}, {"torch_dtype", "bfloat16"}}.dump(2);
    const int shards = 17; // two layers per shard, then the embedding, final norm and head
    nlohmann::json weightMap;
    int64_t params = 0;
    for (int s = 0; s < shards; ++s) {
        std::vector<std::pair<std::string, Shape>> t;
        if (s == shards - 1) {
            t = {{"model.embed_tokens.weight", {V, D}}, {"model.norm.weight", {D}}, {"lm_head.weight", {V, D}}};
        } else {
            for (int64_t i = 2 * s; i < 2 * s + 2; ++i) {
                const std::string p = fmt::format("model.layers.{}.", i);
                t.push_back({p + "input_layernorm.weight", {D}});
                t.push_back({p + "post_attention_layernorm.weight", {D}});
                t.push_back({p + "self_attn.q_proj.weight", {D, D}});
                t.push_back({p + "self_attn.k_proj.weight", {Hkv * Dh, D}});
                t.push_back({p + "self_attn.v_proj.weight", {Hkv * Dh, D}});
                t.push_back({p + "self_attn.o_proj.weight", {D, D}});
                t.push_back({p + "block_sparse_moe.gate.weight", {X, D}});
                for (int64_t e = 0; e < X; ++e) {
                    const std::string q = fmt::format("{}block_sparse_moe.experts.{}.", p, e);
                    t.push_back({q + "w1.weight", {I, D}});
                    t.push_back({q + "w2.weight", {D, I}});
                    t.push_back({q + "w3.weight", {I, D}});
                }
            }
        }
        const std::string file = fmt::format("model-{:05}-of-{:05}.safetensors", s + 1, shards);
        writeSparseShard(dir / file, t);
        for (const auto& [name, shape] : t) {
            weightMap[name] = file;
            params += shapeNumel(shape);
        }
    }
    std::ofstream(dir / "model.safetensors.index.json")
        << nlohmann::json{{"metadata", {{"total_size", params * 2}}}, {"weight_map", weightMap}}.dump();
    return params;
}

TEST(Cli, Mixtral8x7BSizedCheckpointInfoWorksAndGenerateIsRefused)
{
    test::TempDir tmp;
    const fs::path dir = tmp.path() / "mixtral-8x7b-sparse";
    const int64_t params = writeSparseMixtral8x7B(dir);
    EXPECT_EQ(params, 46'702'792'704); // model-formats §12
    const uint64_t need = uint64_t(params) * 4;
    const auto available = makeCpuReferenceBackend()->memoryAvailable();
    if (available && *available >= need)
        GTEST_SKIP() << "this machine could actually load it";

    const auto info = cliMeasured({"info", "--model", dir.string(), "--backend", "cpu"});
    ASSERT_EQ(info.rc, 0) << info.err;
    EXPECT_NE(info.out.find("MixtralForCausalLM"), std::string::npos) << info.out;
    EXPECT_NE(info.out.find("46.70B (46702792704)"), std::string::npos) << info.out;
    // 6 of 8 experts idle per token in each of 32 layers
    EXPECT_NE(info.out.find(std::to_string(params - 32LL * 6 * 3 * 14336 * 4096)), std::string::npos) << info.out;
    EXPECT_NE(info.out.find("KV cache          256.00 KiB per token"), std::string::npos) << info.out;
    EXPECT_NE(info.out.find("fits cpu          no"), std::string::npos) << info.out;

    const auto gen = cliMeasured({"generate", "--model", dir.string(), "--tokens", "1,2,3", "--backend", "cpu"});
    EXPECT_NE(gen.rc, 0);
    EXPECT_NE(gen.err.find(std::to_string(need)), std::string::npos) << gen.err;
    EXPECT_NE(gen.err.find("GiB"), std::string::npos) << gen.err;
    EXPECT_NE(gen.err.find("MemAvailable"), std::string::npos) << gen.err;
    EXPECT_EQ(std::count(gen.err.begin(), gen.err.end(), '\n'), 1) << gen.err;
    // headers only: the processes stay small although 93 GB are mapped
    EXPECT_LT(info.maxRssKiB, 200 * 1024) << "info peaked at " << info.maxRssKiB << " KiB";
    EXPECT_LT(gen.maxRssKiB, 200 * 1024) << "generate peaked at " << gen.maxRssKiB << " KiB";
}

struct BadCall {
    std::vector<std::string> args;
    std::string mustMention;
};

TEST(Cli, BadInputExitsNonZeroWithOneLine)
{
    const std::string demo = kDemo.string(), ref = test::referenceCase("mamba_f32_tied").string();
    const std::vector<BadCall> calls = {
        {{"info", "--model", "/no/such/folder"}, "/no/such/folder"},
        {{"generate", "--model", demo, "--prompt", "x", "--backend", "cuda"}, "CUDA"},
        {{"generate", "--model", demo, "--prompt", "x", "--backend", "tpu"}, "tpu"},
        {{"generate", "--model", demo, "--tokens", "1,x,3"}, "'x'"},
        {{"generate", "--model", demo, "--tokens", "99999"}, "99999"},
        {{"generate", "--model", ref, "--prompt", "hello"}, "tokenizer.json"},
        {{"trace", "--model", demo, "--prompt", "x", "--out", "/tmp/never.h5", "--probes", "ssm.nope"}, "ssm.nope"},
        {{"trace", "--model", demo, "--prompt", "x", "--out", "/tmp/never.h5", "--layers", "9"}, "layer 9"},
        {{"detokenize", "--tokenizer", demo, "--ids", "5,-2"}, "-2"},
        {{"tokenize", "--tokenizer", "/no/tok.json", "--text", "x"}, "/no/tok.json"},
        {{"frobnicate"}, "frobnicate"},
    };
    for (const auto& c : calls) {
        const auto r = cli(c.args);
        EXPECT_NE(r.rc, 0) << fmt::format("{}", fmt::join(c.args, " "));
        EXPECT_NE(r.err.find(c.mustMention), std::string::npos) << r.err;
        EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    }
}

TEST(Cli, HelpEverywhere)
{
    for (const char* sub : {"info", "tokenize", "detokenize", "generate", "trace", "init-model"}) {
        const auto r = cli({sub, "--help"});
        EXPECT_EQ(r.rc, 0) << sub;
        EXPECT_NE(r.out.find("--"), std::string::npos) << sub;
    }
    EXPECT_EQ(cli({"--help"}).rc, 0);
}

} // namespace
