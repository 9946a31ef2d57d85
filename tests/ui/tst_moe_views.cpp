// The MoE and attention views (offscreen): the router view holds exactly the probabilities and
// top-k choices of an `archlens-cli trace` of the same tokens, expert-load bars are the counts
// of the top-k choices (prompt and generated split at prompt_length), the co-activation and
// expert-path views agree with the choices, hidden attention is the core's α normalised by
// rows (and says when it is capped), views of a layer of the wrong kind explain themselves, the
// layer map reads Jamba's schedule, and every view exports valid PNG, SVG, PDF and CSV.
#include <QFile>
#include <QImage>
#include <QImageReader>
#include <QPainter>
#include <QTest>

#include "analysis/hidden_attention.h"
#include "analysis/route_report.h"
#include "export/exporter.h"
#include "formats/trace.h"
#include "runtime/run_session.h"
#include "session/session_source.h"
#include "ui_test_util.h"
#include "views/attention_figures.h"

using namespace archlens;
using namespace archlens::ui;

namespace {
QString refCase(const char* name) { return QStringLiteral(ARCHLENS_SOURCE_DIR "/tests/reference/data/%1").arg(name); }
const std::vector<int32_t> kIds = {1, 5, 9, 3, 7, 2, 8, 4, 6, 11, 12, 3};

// A session: the TraceModel filled through a RunSession (as the GUI and CLI fill it), and the
// routing recorded the way the MoE panel records it: the prompt in one call, then one token at
// a time (as generation does).
struct Session {
    TraceModel data;
    MoeSource src;
    std::unique_ptr<Model> model;
    std::unique_ptr<RunSession> session;
    void run(const QString& dir, const std::vector<int32_t>& ids, int64_t promptLength)
    {
        model = loadModel(dir.toStdString(), std::shared_ptr<Backend>(makeCpuReferenceBackend()));
        const ModelInfo& info = model->info();
        RunMeta meta;
        meta.modelName = QFileInfo(dir).fileName();
        meta.modelPath = dir;
        meta.dInner = info.dInner;
        meta.dState = info.dState;
        meta.layers = info.layers;
        for (const auto& x : info.layerMixer)
            meta.layerMixer << QString::fromStdString(x);
        meta.source = "live";
        SessionOptions o;
        o.prefillChunk = int64_t(ids.size());
        session = std::make_unique<RunSession>(*model, o);
        session->setPrompt(ids);
        session->prefill();
        fillFromSession(data, *session, meta, vocabTexts(nullptr, info.vocabRows));
        data.sync();
        analysis::RoutingRecorder rec(true);
        rec.reset(info.layerMixer, info.layerFfn, promptLength);
        auto st = model->newState();
        model->forward(std::span(ids).first(size_t(promptLength)), *st, &rec, ForwardMode::Chunk, false);
        for (size_t i = size_t(promptLength); i < ids.size(); ++i)
            model->forward(std::span(ids).subspan(i, 1), *st, &rec, ForwardMode::Auto, false);
        src.routing = rec.snapshot();
    }
};

QString idsArg(const std::vector<int32_t>& ids)
{
    QStringList s;
    for (int32_t i : ids)
        s << QString::number(i);
    return s.join(',');
}

QImage paintOnce(Figure& f, QSize size = {900, 500})
{
    QImage img(size, QImage::Format_ARGB32);
    img.fill(Qt::white);
    QPainter p(&img);
    f.paint(p, QRectF(QPointF(0, 0), QSizeF(size)), Theme::paperTheme(), synchronousImages());
    return img;
}
} // namespace

class TestMoeViews : public QObject {
    Q_OBJECT
    QTemporaryDir tmp;

private slots:
    void routerViewHoldsTheTracesProbabilitiesAndTopk()
    {
        const QString h5 = tmp.filePath("mixtral.h5");
        const auto r = uitest::runCli({"trace", "--model", refCase("mixtral"), "--tokens", idsArg(kIds), "--probes",
                                       "moe.router_probs,moe.topk_experts,moe.topk_weights,moe.router_entropy", "--out", h5});
        QVERIFY2(r.code == 0, qPrintable(r.err));
        const TraceReader trace = TraceReader::open(h5.toStdString());
        Session s;
        s.run(refCase("mixtral"), kIds, 8);
        Selection sel;
        for (int layer : {0, 1}) {
            RouterFigure f(&s.data, &sel, &s.src);
            f.setFixedLayer(layer);
            QVERIFY(f.unavailableReason().isEmpty());
            paintOnce(f);
            const Tensor probs = trace.read(QStringLiteral("/layers/%1/moe/router_probs").arg(layer).toStdString());
            const Tensor topk = trace.read(QStringLiteral("/layers/%1/moe/topk_experts").arg(layer).toStdString());
            const int64_t T = probs.dim(0), X = probs.dim(1), k = topk.dim(1);
            QCOMPARE(T, int64_t(kIds.size()));
            for (int64_t t = 0; t < T; ++t)
                for (int64_t e = 0; e < X; ++e) {
                    QVERIFY(std::fabs(f.shownProbability(t, e) - probs.f32()[t * X + e]) < 1e-5f);
                    int slot = -1;
                    for (int64_t j = 0; j < k; ++j)
                        if (topk.i32()[t * k + j] == e)
                            slot = int(j);
                    QCOMPARE(f.chosenSlot(t, e), slot);
                }
            // the CSV is the same numbers, with the weights the model uses
            const QStringList lines = f.csv().split('\n', Qt::SkipEmptyParts);
            QCOMPARE(lines.size(), int(T) + 1);
            const QStringList row3 = lines[4].split(',');
            const Tensor w = trace.read(QStringLiteral("/layers/%1/moe/topk_weights").arg(layer).toStdString());
            QVERIFY(std::fabs(row3[int(2 + X + 1)].toDouble() - w.f32()[3 * k]) < 1e-5);
        }
    }

    void expertLoadBarsAreTheTopkCounts()
    {
        Session s;
        s.run(refCase("olmoe"), kIds, 8);
        Selection sel;
        ExpertLoadFigure f(&s.data, &sel, &s.src);
        f.setFixedLayer(1);
        QVERIFY(f.unavailableReason().isEmpty());
        paintOnce(f);
        const auto& R = *s.src.routing.routing(1);
        std::vector<double> prompt(size_t(R.experts)), gen(size_t(R.experts));
        for (int64_t t = 0; t < R.tokens(); ++t)
            for (int64_t j = 0; j < R.topK; ++j)
                (t < 8 ? prompt : gen)[size_t(R.topk[size_t(t * R.topK + j)])] += 1;
        const auto bars = f.bars();
        QCOMPARE(bars.size(), size_t(2));
        QCOMPARE(bars[0].values, prompt);
        QCOMPARE(bars[1].values, gen);
        QCOMPARE(f.uniformLevel(), double(R.tokens() * R.topK) / double(R.experts) / 2.0);
        // with a corpus: shares, uniform 1/X
        CorpusRoute c;
        c.name = "c";
        analysis::RoutingData d = s.src.routing;
        c.route.add(d, kIds);
        s.src.corpora.push_back(std::move(c));
        QVERIFY(f.showsShares());
        QCOMPARE(f.uniformLevel(), 1.0 / double(R.experts));
        const auto withCorpus = f.bars();
        QCOMPARE(withCorpus.size(), size_t(2));
        QCOMPARE(withCorpus[1].name, QStringLiteral("c"));
        double sum = 0;
        for (double v : withCorpus[1].values)
            sum += v;
        QVERIFY(std::fabs(sum - 1.0) < 1e-9);
        QVERIFY(f.toolTipAt(QPointF(450, 300)).isEmpty() || f.toolTipAt(QPointF(450, 300)).contains("expert"));
    }

    void coactivationAndPathFollowTheChoices()
    {
        Session s;
        s.run(refCase("qwen2_moe"), kIds, int64_t(kIds.size()));
        Selection sel;
        CoactivationFigure co(&s.data, &sel, &s.src);
        co.setFixedLayer(0);
        QVERIFY(co.unavailableReason().isEmpty());
        paintOnce(co, {600, 560});
        const QStringList rows = co.csv().split('\n', Qt::SkipEmptyParts);
        const auto& R = *s.src.routing.routing(0);
        QCOMPARE(rows.size(), int(R.experts) + 1);
        int64_t pairs = 0;
        for (int i = 1; i < rows.size(); ++i)
            for (const QString& v : rows[i].split(',').mid(1))
                pairs += v.toLongLong();
        QCOMPARE(pairs, R.tokens() * R.topK * (R.topK - 1)); // each token: k(k-1) ordered pairs
        ExpertPathFigure path(&s.data, &sel, &s.src);
        paintOnce(path);
        const QStringList p = path.csv().split('\n', Qt::SkipEmptyParts);
        QCOMPARE(p.size(), int(kIds.size()) + 1);
        QCOMPARE(p[5].split(',')[2].toInt(), R.top1(4)); // token 4, first MoE layer
    }

    void hiddenAttentionIsTheCoresAlphaAndSaysWhenCapped()
    {
        TraceModel data;
        uitest::fillFromDemo(data);
        MoeSource src;
        Selection sel;
        HiddenAttentionFigure f(&data, &sel, &src);
        f.setFixedLayer(1);
        QVERIFY(f.unavailableReason().isEmpty());
        paintOnce(f, {700, 640});
        const int T = data.tokenCount();
        const auto* d = data.series(1, Probe::SsmDelta);
        const auto* b = data.series(1, Probe::SsmB);
        const auto* c = data.series(1, Probe::SsmC);
        std::vector<float> delta, B, C;
        for (int t = 0; t < T; ++t) {
            delta.insert(delta.end(), d->row(t), d->row(t) + d->width());
            B.insert(B.end(), b->row(t), b->row(t) + b->width());
            C.insert(C.end(), c->row(t), c->row(t) + c->width());
        }
        analysis::ScanInputs in{T, d->width(), b->width(), delta.data(), B.data(), C.data(), data.A(1).data()};
        auto want = analysis::hiddenAttentionMean(in, {}, analysis::hiddenAttentionWindow(T - 1));
        analysis::normaliseRowsByAbsSum(want, T);
        const auto& got = f.shown();
        QCOMPARE(got.size(), want.size());
        for (size_t i = 0; i < got.size(); ++i)
            QVERIFY(std::fabs(got[i] - want[i]) < 1e-9);
        // one channel
        f.setChannels({3});
        QVERIFY(f.quantity().contains("channel 3"));
        auto one = analysis::hiddenAttention(in, 3, analysis::hiddenAttentionWindow(T - 1));
        analysis::normaliseRowsByAbsSum(one, T);
        QVERIFY(std::fabs(f.shown()[size_t(T * T - 1)] - one[size_t(T * T - 1)]) < 1e-9);
        // the GUI's work budget lowers the cap of a mean over channels, not of one channel
        src.hiddenAttentionWork = 1000;
        QCOMPARE(f.effectiveCap(), int64_t(analysis::kDefaultHiddenAttentionCap)); // one channel (3)
        f.setChannels({});
        QCOMPARE(f.effectiveCap(), int64_t(16));
        f.setChannels({3});
        src.hiddenAttentionWork = 0;
        // capped
        src.hiddenAttentionCap = 4;
        QVERIFY(f.window().capped);
        QCOMPARE(f.window().size(), int64_t(4));
        QCOMPARE(f.csv().split('\n', Qt::SkipEmptyParts).size(), 4 + 2);
    }

    void wrongKindsOfLayerExplainThemselves()
    {
        Session s;
        s.run(refCase("jamba"), {1, 5, 9, 3, 7, 2}, 6);
        Selection sel;
        RouterFigure router(&s.data, &sel, &s.src);
        router.setFixedLayer(1); // attention + MLP
        QVERIFY(router.unavailableReason().contains("no routed experts"));
        QVERIFY(router.unavailableReason().contains("0,2,4"));
        HiddenAttentionFigure hidden(&s.data, &sel, &s.src);
        hidden.setFixedLayer(1);
        QVERIFY(hidden.unavailableReason().contains("attention layer"));
        AttentionFigure attn(&s.data, &sel, &s.src);
        attn.setFixedLayer(0);
        QVERIFY(attn.unavailableReason().contains("not an attention layer"));
        attn.setFixedLayer(1);
        QVERIFY(attn.unavailableReason().isEmpty());
        attn.setHead(9);
        QVERIFY(attn.unavailableReason().contains("Head 9"));
        hidden.setFixedLayer(0);
        QVERIFY(hidden.unavailableReason().isEmpty());
        // the layer map reads the schedule and maps clicks to layers
        LayerMapFigure map(&s.data, &sel, &s.src);
        paintOnce(map, {1000, 600});
        QCOMPARE(map.mixer(1), QStringLiteral("attention"));
        QCOMPARE(map.mixer(0), QStringLiteral("mamba"));
        QCOMPARE(map.ffn(0), QStringLiteral("moe"));
        QCOMPARE(map.ffn(1), QStringLiteral("mlp"));
        QCOMPARE(map.csv().split('\n', Qt::SkipEmptyParts).size(), 6 * 6 + 1);
        int seen = 0;
        for (int y = 0; y < 600; y += 4)
            if (map.layerAt(QPointF(500, y)) == 4)
                ++seen;
        QVERIFY(seen > 0);
    }

    void everyViewExports()
    {
        Session s;
        s.run(refCase("jamba"), {1, 5, 9, 3, 7, 2, 8}, 5);
        Selection sel;
        std::vector<std::unique_ptr<Figure>> figs;
        figs.push_back(std::make_unique<RouterFigure>(&s.data, &sel, &s.src));
        figs.push_back(std::make_unique<RouterOverviewFigure>(&s.data, &sel, &s.src));
        figs.push_back(std::make_unique<ExpertLoadFigure>(&s.data, &sel, &s.src));
        figs.push_back(std::make_unique<ExpertPathFigure>(&s.data, &sel, &s.src));
        figs.push_back(std::make_unique<CoactivationFigure>(&s.data, &sel, &s.src));
        figs.push_back(std::make_unique<AttentionFigure>(&s.data, &sel, &s.src));
        figs.push_back(std::make_unique<AttentionOverviewFigure>(&s.data, &sel, &s.src));
        figs.push_back(std::make_unique<HiddenAttentionFigure>(&s.data, &sel, &s.src));
        figs.push_back(std::make_unique<LayerMapFigure>(&s.data, &sel, &s.src));
        for (auto& f : figs) {
            const bool attention = f->key() == "attention";
            const bool hidden = f->key() == "hidden-attention";
            f->setFixedLayer(attention ? 4 : hidden ? 2 : 0);
            QVERIFY2(f->unavailableReason().isEmpty(), qPrintable(f->key() + ": " + f->unavailableReason()));
            for (const char* ext : {"png", "svg", "pdf", "csv"}) {
                const QString out = tmp.filePath(QStringLiteral("%1.%2").arg(f->key(), ext));
                exportFigures(out, {f.get()}, ExportOptions{QSize(800, 500), 100});
                QFile file(out);
                QVERIFY2(file.open(QIODevice::ReadOnly), qPrintable(out));
                const QByteArray head = file.read(8);
                if (QByteArray(ext) == "png")
                    QCOMPARE(QImageReader(out).size(), QSize(800, 500));
                else if (QByteArray(ext) == "svg")
                    QVERIFY(head.startsWith("<?xml"));
                else if (QByteArray(ext) == "pdf")
                    QVERIFY(head.startsWith("%PDF-"));
                else
                    QVERIFY2(file.size() > 20, qPrintable(out));
            }
        }
    }
};

QTEST_MAIN(TestMoeViews)
#include "tst_moe_views.moc"
