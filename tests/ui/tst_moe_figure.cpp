// archlens-cli figure for the MoE and attention views, end to end without a display: every new
// view to PNG from a model run (Mixtral, Jamba, the demo Mamba), router CSV against a trace of
// the same tokens, a figure from a trace, the side-by-side of a Mamba's hidden attention and a
// Transformer's attention on the same prompt, expert load over two corpora, and clear errors for
// a layer of the wrong kind.
#include <QFile>
#include <QImageReader>
#include <QTest>

#include "formats/trace.h"
#include "tiny_moe.h"
#include "ui_test_util.h"

using namespace archlens;

namespace {
QString refCase(const char* name) { return QStringLiteral(ARCHLENS_SOURCE_DIR "/tests/reference/data/%1").arg(name); }
const char* kIds = "1,5,9,3,7,2,8,4,6";
} // namespace

class TestMoeFigure : public QObject {
    Q_OBJECT
    QTemporaryDir tmp;

private slots:
    void everyViewRendersToPng()
    {
        struct Case {
            const char* view;
            const char* model;
            const char* layer;
            QStringList extra;
        };
        const Case cases[] = {
            {"router", "mixtral", "1", {}},
            {"router-overview", "jamba", "0", {}},
            {"expert-load", "olmoe", "0", {}},
            {"expert-path", "jamba", "3", {}}, // --layer ignored by all-layer views
            {"coactivation", "qwen2_moe", "2", {}},
            {"attention", "jamba", "4", {"--head", "2"}},
            {"attention-overview", "mixtral", "0", {}},
            {"hidden-attention", "jamba", "2", {"--channels", "mean"}},
            {"layer-map", "jamba", "0", {}},
        };
        for (const Case& c : cases) {
            const QString out = tmp.filePath(QStringLiteral("%1.png").arg(c.view));
            QStringList args = {"figure", "--model", refCase(c.model), "--tokens", kIds, "--view", c.view,
                                "--layer",  c.layer, "--size", "640x400", "--dpi", "110", "--out", out};
            args += c.extra;
            const auto r = uitest::runCli(args);
            QVERIFY2(r.code == 0, qPrintable(QStringLiteral("%1: %2").arg(c.view, r.err)));
            QCOMPARE(QImageReader(out).size(), QSize(640, 400));
        }
        // hidden attention of one channel of the demo Mamba, from a prompt
        const QString out = tmp.filePath("hidden-demo.svg");
        const auto r = uitest::runCli({"figure", "--model", uitest::demoModel(), "--prompt", uitest::kPrompt, "--view",
                                       "hidden-attention", "--layer", "1", "--channels", "5", "--out", out});
        QVERIFY2(r.code == 0, qPrintable(r.err));
        QFile f(out);
        QVERIFY(f.open(QIODevice::ReadOnly));
        QVERIFY(f.readAll().contains("channel 5"));
    }

    void routerCsvFromATraceMatchesIt()
    {
        const QString h5 = tmp.filePath("m.h5");
        auto r = uitest::runCli({"trace", "--model", refCase("mixtral"), "--tokens", kIds, "--probes",
                                 "moe.router_probs,moe.topk_experts,moe.topk_weights,attn.weights", "--out", h5});
        QVERIFY2(r.code == 0, qPrintable(r.err));
        r = uitest::runCli({"figure", "--trace", h5, "--view", "router", "--layer", "1", "--out", tmp.filePath("r.csv")});
        QVERIFY2(r.code == 0, qPrintable(r.err));
        QFile csv(tmp.filePath("r.csv"));
        QVERIFY(csv.open(QIODevice::ReadOnly));
        const QStringList lines = QString::fromUtf8(csv.readAll()).split('\n', Qt::SkipEmptyParts);
        const TraceReader trace = TraceReader::open(h5.toStdString());
        const Tensor probs = trace.read("/layers/1/moe/router_probs");
        const Tensor topk = trace.read("/layers/1/moe/topk_experts");
        QCOMPARE(lines.size(), int(probs.dim(0)) + 1);
        QCOMPARE(lines[0], QStringLiteral("token,text,p0,p1,p2,expert1,weight1,expert2,weight2"));
        const QStringList row = lines[6].split(',');
        for (int e = 0; e < 3; ++e)
            QVERIFY(std::fabs(row[2 + e].toDouble() - probs.f32()[5 * 3 + e]) < 1e-6);
        QCOMPARE(row[5].toInt(), topk.i32()[5 * 2]);
        // attention from the same trace
        r = uitest::runCli({"figure", "--trace", h5, "--view", "attention", "--layer", "0", "--head", "3", "--out",
                            tmp.filePath("a.pdf")});
        QVERIFY2(r.code == 0, qPrintable(r.err));
    }

    void sideBySideHiddenAttentionAndAttention()
    {
        const QString moe = tmp.filePath("tiny-moe");
        test::writeTinyMoe(moe.toStdString(), refCase("mixtral").toStdString());
        const QString out = tmp.filePath("compare.png");
        const auto r = uitest::runCli({"figure", "--model", uitest::demoModel(), "--prompt", "the river ran past the mill",
                                       "--view", "hidden-attention", "--layer", "0", "--compare-model", moe, "--size",
                                       "1400x600", "--out", out});
        QVERIFY2(r.code == 0, qPrintable(r.err));
        QVERIFY(r.out.contains("side by side"));
        QCOMPARE(QImageReader(out).size(), QSize(1400, 600));
        // two corpora side by side in the expert-load view
        QFile a(tmp.filePath("a.txt")), b(tmp.filePath("b.txt"));
        QVERIFY(a.open(QIODevice::WriteOnly) && b.open(QIODevice::WriteOnly));
        a.write("The river ran quietly past the old mill, and the miller counted the sacks twice.");
        b.write("for (int i = 0; i < n; ++i) { total += values[i] * weights[i]; } return total;");
        a.close();
        b.close();
        const auto r2 = uitest::runCli({"figure", "--model", moe, "--prompt", "the mill", "--view", "expert-load",
                                        "--layer", "0", "--corpus", a.fileName(), "--corpus", b.fileName(), "--out",
                                        tmp.filePath("load.csv")});
        QVERIFY2(r2.code == 0, qPrintable(r2.err));
        QFile csv(tmp.filePath("load.csv"));
        QVERIFY(csv.open(QIODevice::ReadOnly));
        QCOMPARE(QString::fromUtf8(csv.readLine()).trimmed(), QStringLiteral("expert,this run,a.txt,b.txt,uniform"));
    }

    void wrongLayerKindsAreOneClearLine()
    {
        struct Bad {
            const char* view;
            const char* model;
            const char* layer;
            const char* says;
        };
        const Bad bad[] = {
            {"router", "jamba", "1", "has no routed experts; 'router' shows a MoE layer (MoE layers: 0,2,4)"},
            {"hidden-attention", "jamba", "1", "is an attention layer; 'hidden-attention' shows a Mamba layer (Mamba layers: 0,2,3,5)"},
            {"attention", "jamba", "0", "is not an attention layer"},
            {"hidden-attention", "mixtral", "0", "Mamba layers: none"},
            {"coactivation", "mixtral", "7", "the model has layers 0..1"},
        };
        for (const Bad& b : bad) {
            const auto r = uitest::runCli({"figure", "--model", refCase(b.model), "--tokens", kIds, "--view", b.view,
                                           "--layer", b.layer, "--out", tmp.filePath("x.png")});
            QCOMPARE(r.code, 1);
            QVERIFY2(r.err.contains(b.says), qPrintable(r.err));
            QCOMPARE(r.err.count('\n'), 1);
        }
        QVERIFY(!QFile::exists(tmp.filePath("x.png")));
        const auto r = uitest::runCli({"figure", "--model", refCase("mixtral"), "--tokens", kIds, "--view", "delta",
                                       "--out", tmp.filePath("x.png")});
        QCOMPARE(r.code, 1);
        QVERIFY2(r.err.contains("--layer is required"), qPrintable(r.err));
    }
};

QTEST_MAIN(TestMoeFigure)
#include "tst_moe_figure.moc"
