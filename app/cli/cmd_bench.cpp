// archlens-cli bench scan: times the selective-scan op exactly as the Mamba model calls it
// (softplus of Δ with bias, discretisation, recurrence, C readout, D skip, SiLU(z) gating;
// no probes) on the chosen backend and, in the same run on the same inputs, on the CPU
// reference, and reports nanoseconds per state update (E·N·T·B updates per call).
// Benchmarks are commands, never timed tests: numbers depend on the machine and its load.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <random>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "backends/backend_factory.h"
#include "bench_util.h"
#include "common.h"

namespace archlens::cli {

namespace {

struct ScanInputs {
    Tensor x, dt, dtBias, A, B, C, D, z, state, y;
};

// Values shaped like a trained Mamba's: Δ mostly in [1e-3, 1e-1], A = −(1..N).
ScanInputs makeScanInputs(int64_t T, int64_t E, int64_t N, uint64_t seed)
{
    std::mt19937 rng { uint32_t(seed) };
    std::normal_distribution<float> normal(0.f, 1.f);
    std::uniform_real_distribution<float> uni(0.f, 1.f);
    auto randn = [&](const Shape& s, float scale, float shift) {
        Tensor t = Tensor::empty(s);
        for (float& v : t.span())
            v = normal(rng) * scale + shift;
        return t;
    };
    ScanInputs in;
    in.x = randn({ T, E }, 1.f, 0.f);
    in.dt = randn({ T, E }, 0.5f, 0.f);
    in.dtBias = Tensor::empty({ E });
    for (float& v : in.dtBias.span()) {
        const float dt = std::exp(std::log(1e-3f) + uni(rng) * (std::log(1e-1f) - std::log(1e-3f)));
        v = dt + std::log(-std::expm1(-dt));
    }
    in.A = Tensor::empty({ E, N });
    for (int64_t c = 0; c < E; ++c)
        for (int64_t n = 0; n < N; ++n)
            in.A.f32()[c * N + n] = -float(n + 1);
    in.B = randn({ T, N }, 1.f, 0.f);
    in.C = randn({ T, N }, 1.f, 0.f);
    in.D = randn({ E }, 0.1f, 1.f);
    in.z = randn({ T, E }, 1.f, 0.f);
    in.state = Tensor::zeros({ E, N });
    in.y = Tensor::empty({ T, E });
    return in;
}

// The same inputs in the backend's own memory (CUDA: managed memory the kernels use in
// place, as a model's activations), so a device backend is timed without host copies.
ScanInputs resident(Backend& be, const ScanInputs& in)
{
    auto move = [&](const Tensor& t) {
        Tensor r = be.newTensor(t.shape(), t.dtype());
        std::memcpy(r.raw(), t.raw(), t.nbytes());
        return r;
    };
    return { move(in.x), move(in.dt), move(in.dtBias), move(in.A), move(in.B), move(in.C), move(in.D), move(in.z),
        move(in.state), move(in.y) };
}

// Times `batch` scans (one per sequence, as the model runs them) per run: with the
// backend's device clock when it has one (CUDA events), else the host's steady clock.
std::vector<double> timeScan(Backend& be, std::vector<ScanInputs>& seqs, int warmup, int runs, bool deviceClock)
{
    auto once = [&] {
        if (deviceClock)
            be.timerStart();
        const auto t0 = std::chrono::steady_clock::now();
        for (auto& s : seqs) {
            ScanArgs a;
            a.x = &s.x;
            a.dt = &s.dt;
            a.dtBias = &s.dtBias;
            a.A = &s.A;
            a.B = &s.B;
            a.C = &s.C;
            a.D = &s.D;
            a.z = &s.z;
            a.state = &s.state;
            a.y = &s.y;
            be.selectiveScan(a);
        }
        if (deviceClock)
            return *be.timerSeconds();
        return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    };
    auto reset = [&] {
        for (auto& s : seqs)
            s.state.fill(0.f);
    };
    for (int i = 0; i < warmup; ++i) {
        reset();
        once();
    }
    std::vector<double> seconds;
    for (int i = 0; i < runs; ++i) {
        reset();
        seconds.push_back(once());
    }
    return seconds;
}

} // namespace

void addBenchScanCommand(CLI::App* bench)
{
    auto* cmd
        = bench->add_subcommand("scan", "Time the selective scan (ns per state update) against the CPU reference");
    struct Opts {
        std::string backend = "cpu", isa = "auto";
        int64_t E = 1536, N = 16, T = 2048, batch = 1;
        int threads = 0, runs = 9, warmup = 2, referenceRuns = 7;
        uint64_t seed = 1;
        bool noReference = false, json = false;
    };
    auto o = std::make_shared<Opts>();
    cmd->add_option("--backend", o->backend, "cpu | cpu-reference | cuda")->capture_default_str();
    cmd->add_option("--d-inner", o->E, "E, channels")
        ->capture_default_str()
        ->check(CLI::Range(int64_t(1), int64_t(1) << 20));
    cmd->add_option("--d-state", o->N, "N, state size per channel")->capture_default_str()->check(CLI::Range(1, 4096));
    cmd->add_option("--length", o->T, "T, tokens per sequence")
        ->capture_default_str()
        ->check(CLI::Range(int64_t(1), int64_t(1) << 24));
    cmd->add_option("--batch", o->batch, "B, sequences (scanned one after another, as the model runs them)")
        ->capture_default_str()
        ->check(CLI::Range(1, 4096));
    cmd->add_option("--threads", o->threads, "CPU threads (0: every CPU this process may use)")
        ->capture_default_str()
        ->check(CLI::Range(0, 4096));
    cmd->add_option("--isa", o->isa, "CPU kernels: auto | scalar | avx2 | avx512")->capture_default_str();
    cmd->add_option("--runs", o->runs, "Timed runs of the backend (at least 7; at least 100 with a device clock)")
        ->capture_default_str()
        ->check(CLI::Range(7, 100000));
    cmd->add_option("--warmup", o->warmup, "Untimed runs first")->capture_default_str()->check(CLI::Range(0, 1000));
    cmd->add_option("--reference-runs", o->referenceRuns, "Timed runs of the reference (at least 7)")
        ->capture_default_str()
        ->check(CLI::Range(7, 100000));
    cmd->add_flag("--no-reference", o->noReference, "Skip the reference (no ratio)");
    cmd->add_option("--seed", o->seed, "Input seed")->capture_default_str();
    cmd->add_flag("--json", o->json, "Print one JSON object");
    cmd->callback([o] {
        const uint64_t bytesPerSeq = uint64_t(o->T) * uint64_t(4 * o->E + 2 * o->N) * 4 + uint64_t(o->E * o->N) * 8;
        const uint64_t bytes = bytesPerSeq * uint64_t(o->batch);
        const uint64_t avail = availableHostBytes();
        if (avail && bytes > avail / 2)
            throw makeError(ErrorCode::InvalidArgument,
                "the inputs would take {} ({} bytes), more than half the available memory ({})", humanBytes(bytes),
                bytes, humanBytes(avail));
        BackendOptions bo;
        bo.threads = o->threads;
        bo.cpuIsa = o->isa == "auto" ? "" : o->isa;
        BackendChoice choice = createBackend(o->backend, bo);
        Backend& be = *choice.backend;
        // a backend with a device clock (CUDA) is timed by it, over at least 100 runs
        be.timerStart();
        const bool deviceClock = be.timerSeconds().has_value();
        const int runs = deviceClock ? std::max(o->runs, 100) : o->runs;
        std::vector<ScanInputs> seqs;
        for (int64_t b = 0; b < o->batch; ++b)
            seqs.push_back(resident(be, makeScanInputs(o->T, o->E, o->N, o->seed + uint64_t(b))));

        const double updates = double(o->E) * double(o->N) * double(o->T) * double(o->batch);
        const Stats fast = Stats::of(timeScan(be, seqs, std::max(o->warmup, deviceClock ? 3 : 0), runs, deviceClock));
        std::vector<Tensor> fastY;
        for (auto& s : seqs)
            fastY.push_back(s.y.clone());

        nlohmann::ordered_json j;
        j["bench"] = "scan";
        j["backend"] = be.name();
        j["description"] = be.description();
        j["isa"] = be.isa();
        j["threads"] = be.threads();
        j["d_inner"] = o->E;
        j["d_state"] = o->N;
        j["length"] = o->T;
        j["batch"] = o->batch;
        j["updates_per_run"] = updates;
        j["runs"] = runs;
        j["timer"] = deviceClock ? "device events" : "host steady_clock";
        j["warmup_runs"] = o->warmup;
        j["ns_per_update"] = fast.median * 1e9 / updates;
        j["ns_per_update_median"] = fast.median * 1e9 / updates;
        j["ns_per_update_min"] = fast.min * 1e9 / updates;
        j["seconds_median"] = fast.median;
        j["seconds_min"] = fast.min;
        if (!o->noReference) {
            auto ref = makeCpuReferenceBackend();
            // the reference's own thread count is 1 by construction
            const Stats rs = Stats::of(timeScan(*ref, seqs, 1, o->referenceRuns, false));
            double maxDiff = 0, maxRef = 0;
            for (size_t b = 0; b < seqs.size(); ++b)
                for (int64_t i = 0; i < seqs[b].y.numel(); ++i) {
                    maxDiff = std::max(maxDiff, double(std::fabs(fastY[b].f32()[i] - seqs[b].y.f32()[i])));
                    maxRef = std::max(maxRef, double(std::fabs(seqs[b].y.f32()[i])));
                }
            j["reference_ns_per_update"] = rs.median * 1e9 / updates;
            j["reference_ns_per_update_median"] = rs.median * 1e9 / updates;
            j["reference_ns_per_update_min"] = rs.min * 1e9 / updates;
            j["reference_runs"] = o->referenceRuns;
            j["speedup_median"] = rs.median / fast.median;
            j["speedup_min"] = rs.min / fast.min;
            j["max_rel_diff_vs_reference"] = maxRef > 0 ? maxDiff / maxRef : maxDiff;
        }
        if (o->json) {
            fmt::print("{}\n", j.dump());
            return;
        }
        fmt::print("selective scan  E={} N={} T={} B={}  ({:.3g} state updates per run)\n", o->E, o->N, o->T, o->batch,
            updates);
        fmt::print("{:<34} median {:8.3f} ns/update   min {:8.3f}   ({} runs after {} warm-up)\n", be.description(),
            double(j["ns_per_update_median"]), double(j["ns_per_update_min"]), runs, o->warmup);
        if (!o->noReference) {
            fmt::print("{:<34} median {:8.3f} ns/update   min {:8.3f}   ({} runs)\n", "CPU reference (1 thread)",
                double(j["reference_ns_per_update_median"]), double(j["reference_ns_per_update_min"]),
                o->referenceRuns);
            fmt::print("speed-up over the reference: {:.1f}x (medians), {:.1f}x (minima); max rel. diff of y {:.2g}\n",
                double(j["speedup_median"]), double(j["speedup_min"]), double(j["max_rel_diff_vs_reference"]));
        }
    });
}

void addBenchCommand(CLI::App& app)
{
    auto* bench = app.add_subcommand("bench", "Benchmarks: the selective scan, or a whole model");
    bench->require_subcommand(1);
    addBenchScanCommand(bench);
    addBenchModelCommand(bench);
}

} // namespace archlens::cli
