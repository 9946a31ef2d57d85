// archlens-cli trace: run a prompt and record the probes into an HDF5 trace.
#include <chrono>

#include <fmt/chrono.h>
#include <fmt/format.h>

#include "common.h"
#include "run_options.h"

#ifdef ARCHLENS_HAVE_HDF5
#include "formats/trace.h"
#endif

namespace archlens::cli {

void addTraceCommand(CLI::App& app)
{
    auto* cmd = app.add_subcommand("trace", "Run a prompt and write its logits and probes to an HDF5 trace");
    struct Opts {
        RunOptions run;
        std::string out, layers = "all", probes = "all";
        uint64_t maxBytes = uint64_t(2) << 30;
    };
    auto o = std::make_shared<Opts>();
    o->run.add(cmd, "auto");
    cmd->add_option("--out", o->out, "Trace file to write (.h5)")->required();
    cmd->add_option("--layers", o->layers, "all, or layer indices such as 0,3")->capture_default_str();
    cmd->add_option("--probes", o->probes,
                    "all (every probe except the quadratic attn.weights), or names such as "
                    "ssm.delta,moe.router_probs,attn.weights")
        ->capture_default_str();
    cmd->add_option("--max-bytes", o->maxBytes, "Refuse traces estimated above this size (bytes)")->capture_default_str();
    cmd->callback([o] {
#ifndef ARCHLENS_HAVE_HDF5
        throw Error(ErrorCode::Unsupported, "this build has no HDF5 support (configured with ARCHLENS_HDF5=OFF)");
#else
        PreparedRun run = prepareRun(o->run);
        const ModelInfo& info = run.model->info();
        ProbeSelection sel;
        sel.layers = ProbeSelection::parseLayers(o->layers, int(info.layers));
        sel.probes = ProbeSelection::parseProbes(o->probes);
        const TraceDims dims{int64_t(run.ids.size()), info.vocabRows, info.dInner, info.dState,
                             info.experts, info.expertsPerToken, info.heads};
        const uint64_t estimate = estimateTraceBytes(dims, sel, int(info.layers));
        if (estimate > o->maxBytes)
            throw makeError(ErrorCode::InvalidArgument,
                            "the trace would take about {} ({} bytes) before compression, above --max-bytes {}; "
                            "record fewer layers or probes (ssm.state alone is T·E·N floats per layer), or raise --max-bytes",
                            humanBytes(estimate), estimate, o->maxBytes);
        TraceMeta meta;
        meta.modelType = info.modelType;
        meta.architecture = info.architecture;
        meta.backend = run.backendName;
        meta.weightDType = info.weightDType;
        meta.computeDType = "F32";
        meta.prompt = run.prompt;
        meta.promptLength = int64_t(run.ids.size());
        meta.seed = -1;
        meta.modelPath = std::filesystem::absolute(run.modelDir).string();
        meta.revision = run.revision;
        TraceWriter writer(o->out, meta, sel);
        writer.setAttribute("layer_mixer", info.layerMixer);
        writer.setAttribute("layer_ffn", info.layerFfn);
        writer.setAttribute("kv_cache_bytes_per_token", int64_t(info.kvCacheBytesPerToken));
        // MoE models also get the root attribute load_balancing_loss from the forward pass itself.
        auto state = run.model->newState();
        const Tensor logits = run.model->forward(run.ids, *state, &writer, ForwardMode::Chunk, /*allLogits=*/true);
        std::vector<std::string> texts;
        for (int32_t id : run.ids)
            texts.push_back(tokenDisplay(run.tokenizer, id));
        writer.appendTokens(run.ids, texts);
        writer.appendLogits(0, logits);
        writer.finish();
        fmt::print("wrote {}: {} tokens, {} layers (estimated {} before compression)\n", o->out, run.ids.size(),
                   sel.layers.size(), humanBytes(estimate));
#endif
    });
}

} // namespace archlens::cli
