#include "figure_moe.h"

#include <algorithm>
#include <set>

#include <fmt/format.h>

#include "base/strings.h"
#include "common.h"

#ifdef ARCHLENS_HAVE_GUI
#include <QApplication>

#include "analysis/route_report.h"
#include "backends/backend_factory.h"
#include "export/exporter.h"
#include "formats/hf_cache.h"
#include "models/model.h"
#include "runtime/run_session.h"
#include "session/session_source.h"
#if ARCHLENS_HAVE_HDF5
#include "runtime/session_trace.h"
#endif
#include "views/attention_figures.h"
#endif

namespace archlens::cli {

namespace {
const std::set<std::string> kMoeViews = {"router",    "router-overview",   "expert-load",      "expert-path",
                                         "coactivation", "attention",      "attention-overview", "hidden-attention",
                                         "layer-map"};
} // namespace

const char* moeFigureViews()
{
    return "router, router-overview, expert-load, expert-path, coactivation, attention, attention-overview, "
           "hidden-attention, layer-map";
}

bool isMoeFigureView(const std::string& view) { return kMoeViews.count(view) > 0; }

std::shared_ptr<MoeFigureOptions> addMoeFigureOptions(CLI::App* cmd)
{
    auto o = std::make_shared<MoeFigureOptions>();
    cmd->add_option("--head", o->head, "attention: the head to show (default 0)");
    cmd->add_option("--compare-model", o->compareModel,
                    "hidden-attention/attention: a second model run on the same prompt, drawn on the right "
                    "(its first attention layer, or its first Mamba layer's hidden attention)");
    cmd->add_option("--compare-layer", o->compareLayer, "layer of --compare-model (default: as above)");
    cmd->add_option("--compare-tokens", o->compareTokens, "token ids for --compare-model when --tokens are given");
    cmd->add_option("--corpus", o->corpora, "expert-load: up to two corpora (file or folder) shown side by side");
    cmd->add_option("--tokenizer", o->tokenizer, "expert-load corpora: tokenizer.json when the model has none");
    cmd->add_option("--corpus-tokens", o->corpusTokens, "expert-load: at most this many tokens per corpus (0: all)");
    cmd->add_option("--cap", o->cap, "hidden-attention: most tokens shown (default 1024)");
    return o;
}

#ifdef ARCHLENS_HAVE_GUI
namespace {
using namespace archlens::ui;

// One session's data: the scan explorer's TraceModel (filled the way cmd_figure fills it, from a
// RunSession or a TraceSession) plus the routing/attention source.
struct Run {
    TraceModel data;
    MoeSource src;
    std::unique_ptr<Model> model;
    std::optional<Tokenizer> tok;
    std::unique_ptr<RunSession> session;
#if ARCHLENS_HAVE_HDF5
    std::unique_ptr<TraceSession> trace;
#endif
};

void runModel(Run& run, const std::string& modelSpec, const FigureRequest& req, const std::string& tokensSpec)
{
    const std::filesystem::path dir = resolveModelPath(modelSpec);
    BackendChoice choice = createBackend(req.backend);
    run.model = loadModel(dir, choice.backend);
    run.tok = tokenizerForModel(dir);
    std::vector<int32_t> ids;
    if (!tokensSpec.empty()) {
        ids = parseIds(tokensSpec, "--tokens");
    } else {
        if (!run.tok)
            throw Error(ErrorCode::InvalidArgument, "this model folder has no tokenizer.json, so --prompt cannot be encoded",
                        dir.string(), "give token ids with --tokens 1,2,3");
        ids = run.tok->encode(req.prompt, true);
    }
    if (ids.empty())
        throw Error(ErrorCode::InvalidArgument, "the prompt encodes to no tokens");
    const ModelInfo& info = run.model->info();
    for (int32_t id : ids)
        if (id < 0 || id >= info.vocabRows)
            throw makeError(ErrorCode::InvalidArgument, "token id {} is outside the model's vocabulary (0..{})", id,
                            info.vocabRows - 1);
    RunMeta meta;
    meta.modelName = QString::fromStdString(dir.filename().string());
    meta.modelPath = QString::fromStdString(std::filesystem::absolute(dir).string());
    meta.revision = QString::fromStdString(cacheRevisionOf(dir));
    meta.architecture = QString::fromStdString(info.architecture);
    meta.backend = QString::fromStdString(choice.backend->name());
    meta.prompt = QString::fromStdString(req.prompt);
    meta.dInner = info.dInner;
    meta.dState = info.dState;
    meta.layers = info.layers;
    for (const auto& m : info.layerMixer)
        meta.layerMixer << QString::fromStdString(m);
    meta.source = QStringLiteral("live");
    SessionOptions so;
    so.prefillChunk = int64_t(ids.size()); // the whole prompt in one chunk-path call, as `trace` runs it
    run.session = std::make_unique<RunSession>(*run.model, so);
    run.session->setPrompt(ids);
    run.session->prefill();
    fillFromSession(run.data, *run.session, meta, vocabTexts(run.tok ? &*run.tok : nullptr, info.vocabRows));
    run.data.sync();
    // the router and attention probes: one more forward of the same tokens into a recorder
    analysis::RoutingRecorder rec(true);
    rec.reset(info.layerMixer, info.layerFfn, int64_t(ids.size()));
    auto state = run.model->newState();
    run.model->forward(ids, *state, &rec, ForwardMode::Chunk, false);
    run.src.routing = rec.snapshot();
}

void readTrace(Run& run, const std::string& path)
{
#if ARCHLENS_HAVE_HDF5
    run.trace = std::make_unique<TraceSession>(path);
    startFromTrace(run.data, *run.trace, QString::fromStdString(path));
    run.trace->load({0, int64_t(run.trace->tokens().size())}, /*states=*/false);
    run.data.sync();
    run.src.routing = analysis::readRoutingTrace(path);
#else
    (void)run;
    throw Error(ErrorCode::Unsupported, "this build has no HDF5 support, so --trace cannot be read", path);
#endif
}

std::string layerList(const std::vector<int>& v)
{
    std::string s;
    for (int l : v)
        s += (s.empty() ? "" : ",") + std::to_string(l);
    return s.empty() ? "none" : s;
}

// Checks the layer fits the view; an all-layer view ignores it.
void checkLayer(const Run& run, const std::string& view, int layer)
{
    if (view == "router-overview" || view == "expert-path" || view == "attention-overview" || view == "layer-map")
        return;
    const int L = run.data.layerCount();
    if (layer < 0 || layer >= L)
        throw makeError(ErrorCode::InvalidArgument, "--layer {}: the model has layers 0..{}", layer, L - 1);
    auto kind = [&](int l) {
        const auto& m = run.src.routing.layerMixer;
        return size_t(l) < m.size() ? m[size_t(l)] : run.data.meta().layerMixer.value(l).toStdString();
    };
    if (view == "hidden-attention" && !run.data.isMambaLayer(layer)) {
        std::vector<int> mamba;
        for (int l = 0; l < L; ++l)
            if (run.data.isMambaLayer(l))
                mamba.push_back(l);
        throw makeError(ErrorCode::InvalidArgument,
                        "--layer {} is an {} layer; 'hidden-attention' shows a Mamba layer (Mamba layers: {})", layer,
                        kind(layer), layerList(mamba));
    }
    if (view == "attention" && !run.src.routing.attention(layer))
        throw makeError(ErrorCode::InvalidArgument,
                        "--layer {} is not an attention layer with recorded weights; 'attention' shows one (attention "
                        "layers: {})",
                        layer, layerList(run.src.routing.attentionLayers()));
    if ((view == "router" || view == "expert-load" || view == "coactivation") && !run.src.routing.routing(layer)) {
        if (view == "expert-load" && !run.src.corpora.empty())
            return;
        throw makeError(ErrorCode::InvalidArgument, "--layer {} has no routed experts; '{}' shows a MoE layer (MoE layers: {})",
                        layer, view, layerList(run.src.routing.moeLayers()));
    }
}

std::unique_ptr<Figure> makeFigure(Run& run, const std::string& view, const std::vector<int64_t>& channels, int head)
{
    std::unique_ptr<Figure> f;
    if (view == "router")
        f = std::make_unique<RouterFigure>(&run.data, nullptr, &run.src);
    else if (view == "router-overview")
        f = std::make_unique<RouterOverviewFigure>(&run.data, nullptr, &run.src);
    else if (view == "expert-load")
        f = std::make_unique<ExpertLoadFigure>(&run.data, nullptr, &run.src);
    else if (view == "expert-path")
        f = std::make_unique<ExpertPathFigure>(&run.data, nullptr, &run.src);
    else if (view == "coactivation")
        f = std::make_unique<CoactivationFigure>(&run.data, nullptr, &run.src);
    else if (view == "attention") {
        auto a = std::make_unique<AttentionFigure>(&run.data, nullptr, &run.src);
        a->setHead(head);
        f = std::move(a);
    } else if (view == "attention-overview")
        f = std::make_unique<AttentionOverviewFigure>(&run.data, nullptr, &run.src);
    else if (view == "hidden-attention") {
        auto h = std::make_unique<HiddenAttentionFigure>(&run.data, nullptr, &run.src);
        h->setChannels(channels);
        f = std::move(h);
    } else
        f = std::make_unique<LayerMapFigure>(&run.data, nullptr, &run.src);
    return f;
}

std::vector<int64_t> parseChannelSpec(const std::string& spec)
{
    if (spec.empty() || spec == "mean")
        return {};
    std::vector<int64_t> out;
    for (std::string_view item : splitCommaList(spec)) {
        const size_t dash = item.find('-');
        auto num = [&](std::string_view s) {
            try {
                size_t used = 0;
                const long long v = std::stoll(std::string(s), &used);
                if (used != s.size() || v < 0)
                    throw 0;
                return int64_t(v);
            } catch (...) {
                throw makeError(ErrorCode::InvalidArgument, "--channels: '{}' is not a channel, a range like 0-15, or 'mean'",
                                std::string(item));
            }
        };
        if (dash == std::string_view::npos)
            out.push_back(num(item));
        else
            for (int64_t c = num(item.substr(0, dash)); c <= num(item.substr(dash + 1)); ++c)
                out.push_back(c);
    }
    return out;
}
} // namespace

void runMoeFigure(const FigureRequest& req, const MoeFigureOptions& opts)
{
    qputenv("QT_QPA_PLATFORM", "offscreen");
    qInstallMessageHandler([](QtMsgType type, const QMessageLogContext&, const QString& msg) {
        if (type == QtFatalMsg)
            std::fprintf(stderr, "archlens-cli: Qt: %s\n", qPrintable(msg));
    });
    static int argc = 1;
    static char name[] = "archlens-cli";
    static char* argv[] = {name, nullptr};
    QApplication qapp(argc, argv);

    const std::vector<int64_t> channels = parseChannelSpec(req.channels);
    Run run;
    if (req.hasTrace)
        readTrace(run, req.trace);
    else
        runModel(run, req.model, req, req.hasTokens ? req.tokens : std::string());
    if (opts.cap > 0)
        run.src.hiddenAttentionCap = opts.cap;
    const std::string& view = req.view;
    if (!opts.corpora.empty()) {
        if (view != "expert-load")
            throw Error(ErrorCode::InvalidArgument, "--corpus is for the expert-load view");
        if (opts.corpora.size() > 2)
            throw Error(ErrorCode::InvalidArgument, "--corpus: at most two corpora are shown side by side");
        if (!run.model)
            throw Error(ErrorCode::InvalidArgument, "--corpus needs --model (a trace cannot route new text)");
        std::optional<Tokenizer> tok = run.tok;
        if (!opts.tokenizer.empty())
            tok = Tokenizer::fromFile(opts.tokenizer);
        if (!tok)
            throw Error(ErrorCode::InvalidArgument, "the model folder has no tokenizer.json to encode the corpus", req.model,
                        "give --tokenizer FILE");
        for (const std::string& c : opts.corpora) {
            CorpusRoute cr;
            auto p = std::filesystem::absolute(c).lexically_normal();
            if (!p.has_filename())
                p = p.parent_path();
            // sample corpora share file names (code/heldout.txt, de/heldout.txt): keep the folder
            const bool shared = std::count_if(opts.corpora.begin(), opts.corpora.end(), [&](const std::string& o) {
                                    auto q = std::filesystem::absolute(o).lexically_normal();
                                    return (q.has_filename() ? q : q.parent_path()).filename() == p.filename();
                                }) > 1;
            cr.name = QString::fromStdString(shared ? (p.parent_path().filename() / p.filename()).string()
                                                    : p.filename().string());
            cr.source = QString::fromStdString(c);
            std::vector<int32_t> ids;
            for (const auto& [file, text] : analysis::readCorpus(c)) {
                const auto part = tok->encode(text, false);
                ids.insert(ids.end(), part.begin(), part.end());
                if (opts.corpusTokens > 0 && int64_t(ids.size()) >= opts.corpusTokens)
                    break;
            }
            if (opts.corpusTokens > 0 && int64_t(ids.size()) > opts.corpusTokens)
                ids.resize(size_t(opts.corpusTokens));
            analysis::routeTokens(*run.model, ids, cr.route);
            run.src.corpora.push_back(std::move(cr));
        }
        run.src.tokenText = [tok](int32_t id) { return QString::fromStdString(tokenDisplay(tok, id)); };
    }
    checkLayer(run, view, req.layer);
    const int T = run.data.tokenCount();
    if (req.token >= T)
        throw makeError(ErrorCode::InvalidArgument, "--token {}: the run has tokens 0..{}", req.token, T - 1);
    const int token = req.token >= 0 ? req.token : T - 1;
    std::unique_ptr<Figure> fig = makeFigure(run, view, channels, opts.head);
    fig->setFixedLayer(req.layer);
    fig->setFixedToken(token);
    if (const QString why = fig->unavailableReason(); !why.isEmpty())
        throw Error(ErrorCode::InvalidArgument, why.toStdString());

    Run other;
    if (!opts.compareModel.empty()) {
        if (view != "hidden-attention" && view != "attention")
            throw Error(ErrorCode::InvalidArgument, "--compare-model is for the hidden-attention and attention views");
        if (req.hasTokens && opts.compareTokens.empty())
            throw Error(ErrorCode::InvalidArgument,
                        "--compare-model with --tokens needs --compare-tokens (token ids mean different text to another "
                        "model); or give --prompt");
        runModel(other, opts.compareModel, req, req.hasTokens ? opts.compareTokens : std::string());
        // the other side: its attention if it has attention layers, else its hidden attention
        std::unique_ptr<Figure> right = makeAttentionSide(&other.data, nullptr, &other.src, opts.compareLayer, opts.head);
        if (!right)
            throw Error(ErrorCode::InvalidArgument, "--compare-model: the model has neither attention nor Mamba layers");
        right->setFixedToken(other.data.tokenCount() - 1);
        if (const QString why = right->unavailableReason(); !why.isEmpty())
            throw Error(ErrorCode::InvalidArgument, "--compare-model: " + why.toStdString());
        fig = std::make_unique<SideBySideFigure>(std::move(fig), std::move(right));
    }
    exportFigures(QString::fromStdString(req.out), {fig.get()}, ExportOptions{QSize(req.width, req.height), req.dpi});
    const bool allLayers = view == "router-overview" || view == "expert-path" || view == "attention-overview" ||
                           view == "layer-map";
    fmt::print("wrote {}: {}{} at token {}\n", req.out, view,
               fig->key() == "compare" ? " compared side by side"
               : allLayers             ? std::string(" (all layers)")
                                       : fmt::format(" of layer {}", req.layer),
               token);
}
#else
void runMoeFigure(const FigureRequest&, const MoeFigureOptions&)
{
    throw Error(ErrorCode::Unsupported,
                "figure is unavailable in this build: it draws with the GUI's Qt views (configure with ARCHLENS_GUI=ON)");
}
#endif

} // namespace archlens::cli
