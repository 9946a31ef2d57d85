// archlens-cli figure, end to end without a display: every view from a model run, PNG of
// the requested size, CSV numbers that match the trace, a figure from a trace file, and
// clear errors for a layer of the wrong kind or out of range.
#include <QFile>
#include <QImageReader>
#include <QTest>

#include "formats/trace.h"
#include "ui_test_util.h"

using namespace archlens;

class TestCliFigure : public QObject {
    Q_OBJECT
    QTemporaryDir tmp;

private slots:
    void everyViewRendersToPng()
    {
        for (const char* view : {"delta", "B", "C", "gate", "state", "state-norm", "stepper", "channels", "horizon"}) {
            const QString out = tmp.filePath(QStringLiteral("%1.png").arg(view));
            const auto r = uitest::runCli({"figure", "--model", uitest::demoModel(), "--prompt", uitest::kPrompt, "--view",
                                           view, "--layer", "1", "--size", "640x400", "--dpi", "110", "--out", out});
            QVERIFY2(r.code == 0, qPrintable(QStringLiteral("%1: %2").arg(view, r.err)));
            QCOMPARE(QImageReader(out).size(), QSize(640, 400));
        }
    }

    void svgPdfAndCsvFromATrace()
    {
        const QString h5 = tmp.filePath("t.h5");
        auto r = uitest::runCli({"trace", "--model", uitest::demoModel(), "--prompt", uitest::kPrompt, "--out", h5});
        QVERIFY2(r.code == 0, qPrintable(r.err));
        r = uitest::runCli({"figure", "--trace", h5, "--view", "delta", "--layer", "2", "--channels", "0-3,9", "--out",
                            tmp.filePath("d.csv")});
        QVERIFY2(r.code == 0, qPrintable(r.err));
        QFile csv(tmp.filePath("d.csv"));
        QVERIFY(csv.open(QIODevice::ReadOnly));
        const QStringList lines = QString::fromUtf8(csv.readAll()).split('\n', Qt::SkipEmptyParts);
        const TraceReader trace = TraceReader::open(h5.toStdString());
        QCOMPARE(lines.size(), int(trace.tokens().size()) + 1);
        QCOMPARE(lines[0], QStringLiteral("token,text,ch0,ch1,ch2,ch3,ch9"));
        const Tensor delta = trace.read("/layers/2/ssm/delta");
        const double v = lines[3].split(',').last().toDouble();
        QVERIFY(std::fabs(v - delta.f32()[2 * delta.dim(1) + 9]) < 1e-6);
        for (const char* ext : {"svg", "pdf"}) {
            const QString out = tmp.filePath(QStringLiteral("s.%1").arg(ext));
            r = uitest::runCli({"figure", "--trace", h5, "--view", "state", "--layer", "0", "--token", "2", "--out", out});
            QVERIFY2(r.code == 0, qPrintable(r.err));
            QFile f(out);
            QVERIFY(f.open(QIODevice::ReadOnly));
            QVERIFY(f.read(5) == (QByteArray(ext) == "pdf" ? "%PDF-" : "<?xml"));
        }
    }

    void errorsAreOneClearLine()
    {
        auto r = uitest::runCli({"figure", "--model", uitest::demoModel(), "--prompt", "hi", "--view", "delta", "--layer",
                                 "9", "--out", tmp.filePath("x.png")});
        QCOMPARE(r.code, 1);
        QVERIFY(r.err.contains("layers 0..3"));
        QCOMPARE(r.err.count('\n'), 1);
        r = uitest::runCli({"figure", "--model", uitest::demoModel(), "--prompt", "hi", "--view", "nope", "--layer", "0",
                            "--out", tmp.filePath("x.png")});
        QCOMPARE(r.code, 1);
        QVERIFY(r.err.contains("not a view"));
    }
};

QTEST_MAIN(TestCliFigure)
#include "tst_cli_figure.moc"
