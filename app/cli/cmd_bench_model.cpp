// archlens-cli bench model: prefill and decode throughput of a whole model, from a
// checkpoint folder or a synthetic model of a published shape (random weights built in
// memory, see core/models/synthetic.h), with the peak host memory of the process.
#include <chrono>
#include <random>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "backends/backend_factory.h"
#include "bench_util.h"
#include "common.h"
#include "formats/hf_cache.h"
#include "models/synthetic.h"

namespace archlens::cli {

namespace {

using Clock = std::chrono::steady_clock;

double secondsSince(Clock::time_point t0)
{
    return std::chrono::duration<double>(Clock::now() - t0).count();
}

struct RunTimes {
    double prefill = 0, decode = 0;
};

// Prefill `prompt` through the chunk path, then `gen` greedy tokens one recurrent step
// each. Timed by the backend's device clock when it has one (CUDA events on its stream,
// which every op synchronises, so this is the wall time of the GPU's timeline), else by
// the host's steady clock.
RunTimes runOnce(Model& model, const std::vector<int32_t>& prompt, int gen, bool deviceClock)
{
    Backend& be = model.backend();
    auto state = model.newState();
    RunTimes r;
    auto t0 = Clock::now();
    if (deviceClock)
        be.timerStart();
    Tensor logits = model.forward(prompt, *state, nullptr, ForwardMode::Chunk, /*allLogits=*/false);
    r.prefill = deviceClock ? *be.timerSeconds() : secondsSince(t0);
    uint64_t rng = 0;
    t0 = Clock::now();
    if (deviceClock)
        be.timerStart();
    for (int i = 0; i < gen; ++i) {
        const int32_t id = be.sample(logits, SamplingParams {}, rng);
        const int32_t one[1] = { id };
        logits = model.forward(one, *state, nullptr, ForwardMode::Recurrent, false);
    }
    r.decode = deviceClock ? *be.timerSeconds() : secondsSince(t0);
    return r;
}

} // namespace

void addBenchModelCommand(CLI::App* bench)
{
    std::string synthNames;
    for (const auto& s : syntheticModels())
        synthNames += (synthNames.empty() ? "" : ", ") + s.name;
    auto* cmd = bench->add_subcommand("model", "Prefill and decode tokens/s and peak memory of a whole model");
    struct Opts {
        std::string model, synthetic, backend = "cpu", isa = "auto";
        int64_t promptLength = 128;
        int genLength = 32, threads = 0, repeats = 3;
        uint64_t seed = 1;
        bool json = false;
    };
    auto o = std::make_shared<Opts>();
    auto* modelOpt = cmd->add_option("--model", o->model, "Model folder, or org/name in the Hugging Face cache");
    auto* synthOpt = cmd->add_option("--synthetic", o->synthetic, "Random weights of a published shape: " + synthNames);
    modelOpt->excludes(synthOpt);
    cmd->add_option("--backend", o->backend, "cpu | cpu-reference | cuda | auto")->capture_default_str();
    cmd->add_option("--prompt-length", o->promptLength, "Prompt tokens (random ids)")
        ->capture_default_str()
        ->check(CLI::Range(int64_t(1), int64_t(1) << 20));
    cmd->add_option("--gen-length", o->genLength, "Tokens decoded one at a time after the prompt")
        ->capture_default_str()
        ->check(CLI::Range(0, 1 << 20));
    cmd->add_option("--threads", o->threads, "CPU threads (0: every CPU this process may use)")
        ->capture_default_str()
        ->check(CLI::Range(0, 4096));
    cmd->add_option("--isa", o->isa, "CPU kernels: auto | scalar | avx2 | avx512")->capture_default_str();
    cmd->add_option("--repeats", o->repeats, "Timed runs (fresh state each); medians and best are reported")
        ->capture_default_str()
        ->check(CLI::Range(1, 1000));
    cmd->add_option("--seed", o->seed, "Seed for the prompt ids and synthetic weights")->capture_default_str();
    cmd->add_flag("--json", o->json, "Print one JSON object");
    cmd->callback([o, modelOpt, synthOpt] {
        if (modelOpt->count() == 0 && synthOpt->count() == 0)
            throw Error(ErrorCode::InvalidArgument, "give a model as --model DIR or --synthetic NAME");
        BackendOptions bo;
        bo.threads = o->threads;
        bo.cpuIsa = o->isa == "auto" ? "" : o->isa;
        BackendChoice choice = createBackend(o->backend, bo);
        if (!choice.notice.empty())
            logInfo("{}", choice.notice);
        const auto tLoad = Clock::now();
        std::unique_ptr<Model> model;
        std::string source;
        if (synthOpt->count()) {
            model = makeSyntheticModel(o->synthetic, choice.backend, o->seed, availableHostBytes());
            source = "synthetic " + o->synthetic + " (mirrors " + findSyntheticModel(o->synthetic).mirrors + ")";
        } else {
            const auto dir = resolveModelPath(o->model);
            model = loadModel(dir, choice.backend);
            source = dir.string();
        }
        const double loadSeconds = secondsSince(tLoad);
        const ModelInfo& info = model->info();
        std::mt19937 rng { uint32_t(o->seed) };
        std::uniform_int_distribution<int32_t> pick(0, int32_t(info.vocabRows - 1));
        std::vector<int32_t> prompt(size_t(o->promptLength));
        for (auto& id : prompt)
            id = pick(rng);

        // warm-up: first-touch of weights and scratch, thread pool start, caches
        const std::vector<int32_t> warmPrompt(prompt.begin(), prompt.begin() + std::min<int64_t>(8, o->promptLength));
        const int warmDecode = std::min(2, o->genLength);
        model->backend().timerStart();
        const bool deviceClock = model->backend().timerSeconds().has_value();
        runOnce(*model, warmPrompt, warmDecode, deviceClock);

        std::vector<double> prefill, decode;
        for (int r = 0; r < o->repeats; ++r) {
            const RunTimes t = runOnce(*model, prompt, o->genLength, deviceClock);
            prefill.push_back(t.prefill);
            decode.push_back(t.decode);
        }
        const Stats p = Stats::of(prefill), d = Stats::of(decode);
        const Backend& be = model->backend();
        nlohmann::ordered_json j;
        j["bench"] = "model";
        j["model"] = source;
        j["architecture"] = info.architecture;
        j["parameters"] = info.parameters;
        j["layers"] = info.layers;
        j["d_model"] = info.dModel;
        j["backend"] = be.name();
        j["description"] = be.description();
        j["isa"] = be.isa();
        j["threads"] = be.threads();
        j["weight_dtype"] = synthOpt->count() ? "F32" : info.weightDType;
        j["compute_dtype"] = "F32";
        j["prompt_length"] = o->promptLength;
        j["gen_length"] = o->genLength;
        j["repeats"] = o->repeats;
        j["warmup"] = { { "prefill_tokens", warmPrompt.size() }, { "decode_tokens", warmDecode } };
        j["load_seconds"] = loadSeconds;
        j["prefill_tokens_per_s"] = double(o->promptLength) / p.median;
        j["prefill_tokens_per_s_best"] = double(o->promptLength) / p.min;
        j["decode_tokens_per_s"] = o->genLength > 0 ? double(o->genLength) / d.median : 0.0;
        j["decode_tokens_per_s_best"] = o->genLength > 0 ? double(o->genLength) / d.min : 0.0;
        j["prefill_seconds_median"] = p.median;
        j["decode_seconds_median"] = d.median;
        j["peak_host_bytes"] = peakHostBytes();
        j["peak_device_bytes"] = be.peakDeviceBytes(); // 0 for the CPU backends
        j["timer"] = deviceClock ? "device events" : "host steady_clock";
        j["graphs"] = false; // no CUDA graphs yet: every op synchronises its stream
        if (o->json) {
            fmt::print("{}\n", j.dump());
            return;
        }
        fmt::print("model     {} ({}, {} parameters, {} layers)\n", source, info.architecture,
            humanCount(info.parameters), info.layers);
        fmt::print("backend   {}  weights {} computed in F32  (loaded in {:.2f} s)\n", be.description(),
            std::string(j["weight_dtype"]), loadSeconds);
        fmt::print("prefill   {:9.1f} tokens/s median, {:9.1f} best   ({} tokens, {} runs after a warm-up)\n",
            double(j["prefill_tokens_per_s"]), double(j["prefill_tokens_per_s_best"]), o->promptLength, o->repeats);
        fmt::print("decode    {:9.1f} tokens/s median, {:9.1f} best   ({} tokens)\n", double(j["decode_tokens_per_s"]),
            double(j["decode_tokens_per_s_best"]), o->genLength);
        fmt::print("memory    peak host {} (VmHWM), device {}\n", humanBytes(peakHostBytes()),
            humanBytes(be.peakDeviceBytes()));
    });
}

} // namespace archlens::cli
