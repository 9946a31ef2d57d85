#include "session/trace_io.h"

#include <algorithm>
#include <numeric>
#include <optional>

#include "base/error.h"
#include "ops/math.h"
#include "tokenizer/tokenizer.h"
#ifdef ARCHLENS_HAVE_HDF5
#include "formats/trace.h"
#endif

namespace archlens::ui {

namespace {
constexpr Probe kSsm[8] = {Probe::SsmX,         Probe::SsmDelta, Probe::SsmB, Probe::SsmC, Probe::SsmState,
                           Probe::SsmStateNorm, Probe::SsmY,     Probe::SsmGate};
}

TraceSnapshot snapshotOf(const TraceModel& model)
{
    TraceSnapshot s;
    s.meta = model.meta();
    s.ids = model.ids();
    s.texts = model.texts();
    s.layers.resize(size_t(model.layerCount()));
    for (int l = 0; l < model.layerCount(); ++l) {
        for (int i = 0; i < 8; ++i)
            if (const ProbeSeries* ser = model.series(l, kSsm[i]))
                s.layers[size_t(l)][size_t(i)] = ser->view();
        s.A.push_back(model.A(l));
        s.D.push_back(model.D(l));
    }
    return s;
}

#ifdef ARCHLENS_HAVE_HDF5
bool traceSupported() { return true; }

void writeTrace(const std::filesystem::path& path, const TraceSnapshot& snap, const std::vector<float>* logits,
                int64_t vocab)
{
    const int64_t T = int64_t(snap.ids.size());
    if (T == 0)
        throw Error(ErrorCode::InvalidArgument, "nothing to save: run a prompt first");
    TraceMeta meta;
    meta.modelType = "mamba";
    meta.architecture = snap.meta.architecture.toStdString();
    meta.backend = snap.meta.backend.toStdString();
    meta.weightDType = "F32";
    meta.computeDType = "F32";
    meta.prompt = snap.meta.prompt.toStdString();
    meta.promptLength = T;
    meta.seed = snap.meta.seed;
    meta.modelPath = snap.meta.modelPath.toStdString();
    meta.revision = snap.meta.revision.toStdString();
    ProbeSelection sel;
    for (Probe p : kSsm)
        sel.probes.insert(p);
    TraceWriter w(path, meta, sel);
    std::vector<std::string> mixer;
    for (const QString& m : snap.meta.layerMixer)
        mixer.push_back(m.toStdString());
    if (!mixer.empty())
        w.setAttribute("layer_mixer", mixer);
    for (size_t l = 0; l < snap.layers.size(); ++l) {
        bool any = false;
        for (int i = 0; i < 8; ++i) {
            const SeriesView& v = snap.layers[l][size_t(i)];
            if (!v.valid() || v.count() < T || v.firstKept() > 0)
                continue;
            any = true;
            // in blocks so a long run never needs one huge buffer
            for (int64_t t0 = 0; t0 < T; t0 += 256) {
                const int64_t t1 = std::min(T, t0 + 256);
                Shape shape = {t1 - t0, v.width()};
                if (kSsm[i] == Probe::SsmState)
                    shape = {t1 - t0, snap.meta.dInner, v.width() / std::max<int64_t>(1, snap.meta.dInner)};
                Tensor block = Tensor::empty(shape);
                for (int64_t t = t0; t < t1; ++t)
                    std::copy_n(v.row(t), v.width(), block.f32() + (t - t0) * v.width());
                w.record(int(l), kSsm[i], t0, block);
            }
        }
        if (any && !snap.A[l].empty()) {
            const int64_t E = int64_t(snap.D[l].size());
            w.recordConstant(int(l), "ssm", "A", Tensor::fromVector({E, int64_t(snap.A[l].size()) / E}, snap.A[l]));
            w.recordConstant(int(l), "ssm", "D", Tensor::fromVector({E}, snap.D[l]));
        }
    }
    std::vector<std::string> texts;
    for (const QString& s : snap.texts)
        texts.push_back(s.toStdString());
    w.appendTokens(snap.ids, texts);
    if (logits && vocab > 0 && int64_t(logits->size()) >= T * vocab)
        w.appendLogits(0, Tensor::fromVector({T, vocab}, std::vector<float>(logits->begin(), logits->begin() + T * vocab)));
    w.finish();
}

int replayTrace(const std::filesystem::path& path, LiveSink& sink, const std::atomic<bool>& cancel,
                const std::function<void(int, int)>& onBlock)
{
    const TraceReader r = TraceReader::open(path);
    const TraceMeta& tm = r.meta();
    RunMeta meta;
    meta.modelPath = QString::fromStdString(tm.modelPath);
    meta.modelName = QString::fromStdString(std::filesystem::path(tm.modelPath).filename().string());
    if (meta.modelName.isEmpty())
        meta.modelName = QString::fromStdString(path.filename().string());
    meta.architecture = QString::fromStdString(tm.architecture);
    meta.revision = QString::fromStdString(tm.revision);
    meta.backend = QString::fromStdString(tm.backend);
    meta.prompt = QString::fromStdString(tm.prompt);
    meta.seed = tm.seed;
    meta.source = QString::fromStdString(path.string());
    const std::vector<int> layers = r.layers();
    meta.layers = layers.empty() ? 0 : *std::max_element(layers.begin(), layers.end()) + 1;
    for (const std::string& m : r.attributeStrings("layer_mixer"))
        meta.layerMixer << QString::fromStdString(m);
    meta.layers = std::max<qint64>(meta.layers, meta.layerMixer.size());
    for (int l : layers) {
        const std::string base = "/layers/" + std::to_string(l) + "/ssm/";
        if (r.has(base + "delta"))
            meta.dInner = r.shape(base + "delta")[1];
        if (r.has(base + "B"))
            meta.dState = r.shape(base + "B")[1];
    }
    sink.reset(meta);

    // The model folder's tokenizer, when it is still there, names the predicted tokens.
    std::optional<Tokenizer> tok;
    try {
        if (std::filesystem::exists(std::filesystem::path(tm.modelPath) / "tokenizer.json"))
            tok = Tokenizer::fromFile(std::filesystem::path(tm.modelPath) / "tokenizer.json");
    } catch (const std::exception&) {
        tok.reset();
    }
    for (int l : layers)
        for (const char* c : {"A", "D"}) {
            const std::string p = "/layers/" + std::to_string(l) + "/ssm/" + c;
            if (r.has(p))
                sink.recordConstant(l, "ssm", c, r.read(p));
        }

    const int64_t T = int64_t(r.tokens().size());
    const bool hasLogits = r.has("/logits");
    const int64_t V = hasLogits ? r.shape("/logits")[1] : 0;
    std::vector<int32_t> order(static_cast<size_t>(V));
    std::vector<float> probs(static_cast<size_t>(V));
    for (int64_t t0 = 0; t0 < T; t0 += 128) {
        if (cancel)
            throw Error(ErrorCode::Cancelled, "opening the trace was cancelled");
        const int64_t t1 = std::min(T, t0 + 128);
        for (int l : layers)
            for (Probe p : kSsm) {
                const std::string ds = "/layers/" + std::to_string(l) + "/ssm/" + std::string(probeLeaf(p));
                if (r.has(ds))
                    sink.record(l, p, t0, r.readRows(ds, t0, t1));
            }
        std::vector<int32_t> ids(r.tokens().begin() + t0, r.tokens().begin() + t1);
        QStringList texts;
        QVector<QVector<Prediction>> top5;
        const Tensor logits = hasLogits ? r.readRows("/logits", t0, t1) : Tensor();
        for (int64_t t = t0; t < t1; ++t) {
            texts << QString::fromStdString(r.tokenText()[size_t(t)]);
            QVector<Prediction> top;
            if (hasLogits) {
                softmax(logits.f32() + (t - t0) * V, probs.data(), V);
                std::iota(order.begin(), order.end(), 0);
                const size_t k = std::min<size_t>(5, order.size());
                std::partial_sort(order.begin(), order.begin() + long(k), order.end(),
                                  [&](int32_t a, int32_t b) { return probs[size_t(a)] > probs[size_t(b)]; });
                for (size_t j = 0; j < k; ++j) {
                    const int32_t id = order[j];
                    const QString text = tok && id < tok->vocabSize() ? QString::fromStdString(tok->tokenText(id))
                                                                      : QStringLiteral("#%1").arg(id);
                    top.append({id, text, probs[size_t(id)]});
                }
            }
            top5.append(top);
        }
        sink.addTokens(ids, texts, top5);
        if (onBlock)
            onBlock(int(t1), int(T));
    }
    return int(T);
}
#else
bool traceSupported() { return false; }
void writeTrace(const std::filesystem::path&, const TraceSnapshot&, const std::vector<float>*, int64_t)
{
    throw Error(ErrorCode::Unsupported, "this build has no HDF5 support (configured with ARCHLENS_HDF5=OFF)");
}
int replayTrace(const std::filesystem::path&, LiveSink&, const std::atomic<bool>&, const std::function<void(int, int)>&)
{
    throw Error(ErrorCode::Unsupported, "this build has no HDF5 support (configured with ARCHLENS_HDF5=OFF)");
}
#endif

} // namespace archlens::ui
