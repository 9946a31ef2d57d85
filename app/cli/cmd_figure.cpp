// archlens-cli figure: render one of the GUI's views offscreen, from a model run or a trace,
// to PNG/SVG/PDF (the GUI's own painting code, paper theme) or its numbers as CSV. Built
// only with ARCHLENS_GUI; otherwise the command says it is unavailable.
#include <charconv>
#include <set>

#include <fmt/format.h>

#include "base/strings.h"
#include "common.h"
#include "figure_moe.h"

#ifdef ARCHLENS_HAVE_GUI
#include <QApplication>

#include "backends/backend_factory.h"
#include "export/exporter.h"
#include "models/model.h"
#include "formats/hf_cache.h"
#include "runtime/run_session.h"
#include "session/session_source.h"
#if ARCHLENS_HAVE_HDF5
#include "runtime/session_trace.h"
#endif
#include "views/channel_charts.h"
#include "views/heatmap_figures.h"
#include "views/horizon_figure.h"
#include "views/stepper_figure.h"
#endif

namespace archlens::cli {

namespace {

const char* kViews = "delta, B, C, gate, state, state-norm, stepper, channels, horizon";

#ifdef ARCHLENS_HAVE_GUI
// "0-15,32" -> {0..15, 32}
std::vector<int64_t> parseChannels(const std::string& spec)
{
    std::set<int64_t> out;
    for (std::string_view item : splitCommaList(spec)) {
        auto num = [&](std::string_view s) {
            int64_t v = -1;
            const auto r = std::from_chars(s.data(), s.data() + s.size(), v);
            if (r.ec != std::errc() || r.ptr != s.data() + s.size() || v < 0)
                throw makeError(ErrorCode::InvalidArgument, "--channels: '{}' is not a channel number or range like 0-15",
                                std::string(item));
            return v;
        };
        const size_t dash = item.find('-');
        if (dash == std::string_view::npos) {
            out.insert(num(item));
        } else {
            const int64_t a = num(item.substr(0, dash)), b = num(item.substr(dash + 1));
            if (b < a)
                throw makeError(ErrorCode::InvalidArgument, "--channels: range '{}' runs backwards", std::string(item));
            for (int64_t c = a; c <= b; ++c)
                out.insert(c);
        }
    }
    return {out.begin(), out.end()};
}
#endif

} // namespace

void addFigureCommand(CLI::App& app)
{
    auto* cmd = app.add_subcommand("figure", "Render a view (Δ, B, C, gate, state, stepper, charts, horizon) to "
                                             "PNG/SVG/PDF or its numbers to CSV, without a display");
    struct Opts {
        std::string model, prompt, tokens, trace, view, channels, size = "1600x900", out, backend = "auto";
        int layer = 0, token = -1, dpi = 150;
    };
    auto o = std::make_shared<Opts>();
    auto* modelOpt = cmd->add_option("--model", o->model, "Model folder, or org/name in the Hugging Face cache");
    auto* promptOpt = cmd->add_option("--prompt", o->prompt, "Prompt text (with --model)");
    auto* tokensOpt = cmd->add_option("--tokens", o->tokens, "Prompt as token ids (with --model), e.g. 1,2,3");
    auto* traceOpt = cmd->add_option("--trace", o->trace, "An HDF5 trace to draw instead of running a model");
    promptOpt->excludes(tokensOpt);
    traceOpt->excludes(modelOpt);
    cmd->add_option("--view", o->view, std::string("One of: ") + kViews + ", " + moeFigureViews())->required();
    auto* layerOpt = cmd->add_option("--layer", o->layer, "Layer (of the view's kind; ignored by all-layer views)");
    auto moe = addMoeFigureOptions(cmd);
    cmd->add_option("--token", o->token, "Token for state and stepper, cursor elsewhere (default: the last)");
    cmd->add_option("--channels", o->channels,
                    "Channels, e.g. 0-15,32 (default: all for heatmaps; the most active one for stepper/charts)");
    cmd->add_option("--size", o->size, "Image size WxH in pixels")->capture_default_str();
    cmd->add_option("--dpi", o->dpi, "Resolution (text scales with it)")->capture_default_str();
    cmd->add_option("--backend", o->backend, "auto | cpu | cuda")->capture_default_str();
    cmd->add_option("--out", o->out, "Output file: .png, .svg, .pdf or .csv")->required();
    cmd->callback([o, modelOpt, promptOpt, tokensOpt, traceOpt, layerOpt, moe] {
#ifndef ARCHLENS_HAVE_GUI
        (void)o, (void)modelOpt, (void)promptOpt, (void)tokensOpt, (void)traceOpt, (void)layerOpt, (void)moe;
        throw Error(ErrorCode::Unsupported,
                    "figure is unavailable in this build: it draws with the GUI's Qt views (configure with ARCHLENS_GUI=ON)");
#else
        using namespace archlens::ui;
        if (!traceOpt->count() && !modelOpt->count())
            throw Error(ErrorCode::InvalidArgument, "give a model (--model DIR with --prompt or --tokens) or --trace FILE");
        if (modelOpt->count() && !promptOpt->count() && !tokensOpt->count())
            throw Error(ErrorCode::InvalidArgument, "--model needs the prompt as --prompt TEXT or --tokens 1,2,3");
        if (isMoeFigureView(o->view)) {
            int w = 0, h = 0;
            if (std::sscanf(o->size.c_str(), "%dx%d", &w, &h) != 2 || w < 16 || h < 16)
                throw makeError(ErrorCode::InvalidArgument, "--size '{}' must look like 1600x900", o->size);
            runMoeFigure({o->model, o->prompt, o->tokens, o->trace, o->view, o->channels, o->out, o->backend, o->layer,
                          o->token, o->dpi, w, h, promptOpt->count() > 0, tokensOpt->count() > 0, traceOpt->count() > 0,
                          layerOpt->count() > 0},
                         *moe);
            return;
        }
        if (!layerOpt->count())
            throw makeError(ErrorCode::InvalidArgument, "--layer is required for the '{}' view", o->view);
        const std::set<std::string> views = {"delta", "B", "C", "gate", "state", "state-norm", "stepper", "channels", "horizon"};
        if (!views.count(o->view))
            throw makeError(ErrorCode::InvalidArgument, "--view '{}' is not a view; use one of: {}, {}", o->view, kViews,
                            moeFigureViews());
        int w = 0, h = 0;
        if (std::sscanf(o->size.c_str(), "%dx%d", &w, &h) != 2 || w < 16 || h < 16)
            throw makeError(ErrorCode::InvalidArgument, "--size '{}' must look like 1600x900", o->size);
        std::vector<int64_t> channels;
        if (!o->channels.empty())
            channels = parseChannels(o->channels);

        // offscreen, set here so no display is ever needed
        qputenv("QT_QPA_PLATFORM", "offscreen");
        // Qt's own notices (no XDG_RUNTIME_DIR, fonts ...) would break "one line on failure"
        qInstallMessageHandler([](QtMsgType type, const QMessageLogContext&, const QString& msg) {
            if (type == QtFatalMsg)
                std::fprintf(stderr, "archlens-cli: Qt: %s\n", qPrintable(msg));
        });
        static int argc = 1;
        static char name[] = "archlens-cli";
        static char* argv[] = {name, nullptr};
        QApplication qapp(argc, argv);

        // The same path as the GUI: a RunSession (or a TraceSession) fills a FrameStore, and the
        // TraceModel the figures draw from reads it.
        TraceModel data;
        std::unique_ptr<Model> model;
        std::unique_ptr<RunSession> run;
#if ARCHLENS_HAVE_HDF5
        std::unique_ptr<TraceSession> trace;
#endif
        if (traceOpt->count()) {
#if ARCHLENS_HAVE_HDF5
            trace = std::make_unique<TraceSession>(o->trace);
            startFromTrace(data, *trace, QString::fromStdString(o->trace));
            trace->load({0, int64_t(trace->tokens().size())}, /*states=*/true);
#else
            throw Error(ErrorCode::Unsupported, "this build has no HDF5 support, so --trace cannot be read");
#endif
        } else {
            const std::filesystem::path dir = resolveModelPath(o->model);
            BackendChoice choice = createBackend(o->backend);
            model = loadModel(dir, choice.backend);
            const auto tok = tokenizerForModel(dir);
            std::vector<int32_t> ids;
            if (promptOpt->count()) {
                if (!tok)
                    throw Error(ErrorCode::InvalidArgument, "this model folder has no tokenizer.json, so --prompt cannot be encoded",
                                dir.string(), "give token ids with --tokens 1,2,3");
                ids = tok->encode(o->prompt, true);
            } else {
                ids = parseIds(o->tokens, "--tokens");
            }
            if (ids.empty())
                throw Error(ErrorCode::InvalidArgument, "the prompt encodes to no tokens");
            for (int32_t id : ids)
                if (id < 0 || id >= model->info().vocabRows)
                    throw makeError(ErrorCode::InvalidArgument, "token id {} is outside the model's vocabulary (0..{})",
                                    id, model->info().vocabRows - 1);
            const ModelInfo& info = model->info();
            RunMeta meta;
            meta.modelName = QString::fromStdString(dir.filename().string());
            meta.modelPath = QString::fromStdString(std::filesystem::absolute(dir).string());
            meta.revision = QString::fromStdString(cacheRevisionOf(dir));
            meta.architecture = QString::fromStdString(info.architecture);
            meta.backend = QString::fromStdString(choice.backend->name());
            meta.prompt = QString::fromStdString(o->prompt);
            meta.dInner = info.dInner;
            meta.dState = info.dState;
            meta.layers = info.layers;
            for (const auto& m : info.layerMixer)
                meta.layerMixer << QString::fromStdString(m);
            meta.source = QStringLiteral("live");
            SessionOptions so;
            so.prefillChunk = int64_t(ids.size()); // the whole prompt in one chunk-path call, as `trace` runs it
            so.frames.probes.probes.insert(Probe::SsmState);
            run = std::make_unique<RunSession>(*model, so);
            run->setPrompt(ids);
            run->prefill();
            fillFromSession(data, *run, meta, vocabTexts(tok ? &*tok : nullptr, info.vocabRows));
        }
        data.sync();
        const int T = data.tokenCount();
        if (o->layer < 0 || o->layer >= data.layerCount())
            throw makeError(ErrorCode::InvalidArgument, "--layer {}: the model has layers 0..{}", o->layer,
                            data.layerCount() - 1);
        if (!data.isMambaLayer(o->layer)) {
            std::string mamba;
            for (int l = 0; l < data.layerCount(); ++l)
                if (data.isMambaLayer(l))
                    mamba += (mamba.empty() ? "" : ",") + std::to_string(l);
            throw makeError(ErrorCode::InvalidArgument,
                            "--layer {} is an {} layer; the '{}' view shows a Mamba layer's selective scan (Mamba layers: {})",
                            o->layer, data.meta().layerMixer.value(o->layer).toStdString(), o->view,
                            mamba.empty() ? "none" : mamba);
        }
        if (o->token >= T)
            throw makeError(ErrorCode::InvalidArgument, "--token {}: the run has tokens 0..{}", o->token, T - 1);
        const int token = o->token >= 0 ? o->token : T - 1;
#if ARCHLENS_HAVE_HDF5
        if (trace) { // h at the token and before it, rebuilt from a checkpoint when not recorded
            trace->jumpTo(token);
            data.sync();
            data.refreshStates({std::max(token - 1, 0), token + 1});
        }
#endif
        Selection sel;
        sel.setLayer(o->layer);
        sel.setToken(token);
        if (!channels.empty()) {
            if (channels.back() >= data.dInner())
                throw makeError(ErrorCode::InvalidArgument, "--channels: channel {} does not exist (layer has 0..{})",
                                channels.back(), data.dInner() - 1);
            sel.setChannel(int(channels.front()));
        } else if (const ProbeSeries* d = data.series(o->layer, Probe::SsmDelta)) {
            // a sensible default channel for the stepper and charts: the largest Δ at the token
            int64_t best = 0;
            for (int64_t c = 1; c < d->width(); ++c)
                if (d->at(token, c) > d->at(token, best))
                    best = c;
            sel.setChannel(int(best));
        }

        std::unique_ptr<Figure> fig;
        const std::map<std::string, Quantity> heat = {{"delta", Quantity::Delta}, {"B", Quantity::B}, {"C", Quantity::C},
                                                      {"gate", Quantity::Gate}, {"state-norm", Quantity::StateNorm}};
        if (auto it = heat.find(o->view); it != heat.end()) {
            auto f = std::make_unique<TokenHeatmapFigure>(&data, &sel, it->second);
            if (it->second == Quantity::Delta)
                f->setLogScale(true);
            fig = std::move(f);
        } else if (o->view == "state") {
            fig = std::make_unique<StateFigure>(&data, &sel);
        } else if (o->view == "stepper") {
            fig = std::make_unique<StepperFigure>(&data, &sel);
        } else if (o->view == "channels") {
            fig = std::make_unique<ChannelChartsFigure>(&data, &sel);
        } else {
            fig = std::make_unique<HorizonFigure>(&data, &sel);
        }
        if (!(fig->key() == "stepper" || fig->key() == "channels") || channels.size() > 0)
            fig->setChannels(channels);
        fig->setFixedLayer(o->layer);
        fig->setFixedToken(token);
        if (const QString why = fig->unavailableReason(); !why.isEmpty())
            throw Error(ErrorCode::InvalidArgument, why.toStdString());
        exportFigures(QString::fromStdString(o->out), {fig.get()}, ExportOptions{QSize(w, h), o->dpi});
        fmt::print("wrote {}: {} of layer {} at token {}\n", o->out, o->view, o->layer, token);
#endif
    });
}

} // namespace archlens::cli
