// Export, offscreen: every view to PNG (exact pixel size, DPI and metadata text chunks), SVG
// (parses as XML, has title/desc/metadata), PDF (header, title), CSV (rows × columns), and a
// sheet of several views; bad sizes and formats are errors naming the problem.
#include <QFile>
#include <QImageReader>
#include <QTest>
#include <QXmlStreamReader>

#include "base/error.h"
#include "export/exporter.h"
#include "ui_test_util.h"
#include "views/channel_charts.h"
#include "views/heatmap_figures.h"
#include "views/horizon_figure.h"
#include "views/stepper_figure.h"

using namespace archlens;
using namespace archlens::ui;

class TestExport : public QObject {
    Q_OBJECT
    QTemporaryDir tmp;
    TraceModel model;
    Selection sel;
    std::vector<std::unique_ptr<Figure>> figs;

private slots:
    void initTestCase()
    {
        uitest::fillFromDemo(model);
        sel.setLayer(1);
        sel.setToken(3);
        sel.setChannel(5);
        for (Quantity q : {Quantity::Delta, Quantity::B, Quantity::C, Quantity::Gate, Quantity::StateNorm})
            figs.push_back(std::make_unique<TokenHeatmapFigure>(&model, &sel, q));
        figs.push_back(std::make_unique<StateFigure>(&model, &sel));
        figs.push_back(std::make_unique<StepperFigure>(&model, &sel));
        figs.push_back(std::make_unique<ChannelChartsFigure>(&model, &sel));
        figs.push_back(std::make_unique<HorizonFigure>(&model, &sel));
    }

    void pngOfEveryViewHasTheRequestedSizeAndMetadata()
    {
        for (const auto& f : figs) {
            const QString file = tmp.filePath(f->key() + ".png");
            exportFigures(file, {f.get()}, ExportOptions{QSize(900, 500), 200});
            QImageReader reader(file);
            QCOMPARE(reader.format(), QByteArray("png"));
            QCOMPARE(reader.size(), QSize(900, 500));
            const QImage img = reader.read();
            QCOMPARE(img.text("view"), f->key());
            QCOMPARE(img.text("layer"), QStringLiteral("1"));
            QCOMPARE(img.text("model"), QStringLiteral("mamba-demo"));
            QCOMPARE(img.text("prompt"), QString::fromLatin1(uitest::kPrompt));
            QVERIFY(img.text("seed").size() > 0);
            QCOMPARE(qRound(img.dotsPerMeterX() * 0.0254), 200);
            // not blank: a paper-white background with drawing on it
            int dark = 0;
            for (int y = 0; y < img.height(); y += 7)
                for (int x = 0; x < img.width(); x += 7)
                    dark += qGray(img.pixel(x, y)) < 200;
            QVERIFY2(dark > 50, qPrintable(f->key()));
        }
    }

    void svgParsesAndCarriesMetadata()
    {
        for (const auto& f : figs) {
            const QString file = tmp.filePath(f->key() + ".svg");
            exportFigures(file, {f.get()}, ExportOptions{QSize(800, 450), 96});
            QFile in(file);
            QVERIFY(in.open(QIODevice::ReadOnly));
            QXmlStreamReader xml(&in);
            bool title = false, desc = false, meta = false;
            while (!xml.atEnd()) {
                xml.readNext();
                if (xml.isStartElement()) {
                    title |= xml.name() == QLatin1String("title");
                    desc |= xml.name() == QLatin1String("desc");
                    meta |= xml.name() == QLatin1String("metadata");
                }
            }
            QVERIFY2(!xml.hasError(), qPrintable(xml.errorString()));
            QVERIFY(title && desc && meta);
        }
    }

    void pdfHasAHeaderAndTitle()
    {
        const QString file = tmp.filePath("delta.pdf");
        exportFigures(file, {figs[0].get()}, ExportOptions{QSize(1200, 600), 150});
        QFile in(file);
        QVERIFY(in.open(QIODevice::ReadOnly));
        const QByteArray bytes = in.readAll();
        QVERIFY(bytes.startsWith("%PDF-"));
        QVERIFY(bytes.contains("archlens:layer"));
        QVERIFY(bytes.size() > 2000);
    }

    void csvHasRowsAndColumns()
    {
        const QString file = tmp.filePath("state.csv");
        auto* state = figs[5].get();
        state->setChannels({0, 1, 2, 10});
        exportFigures(file, {state}, {});
        state->setChannels({});
        QFile in(file);
        QVERIFY(in.open(QIODevice::ReadOnly));
        const QStringList lines = QString::fromUtf8(in.readAll()).split('\n', Qt::SkipEmptyParts);
        QCOMPARE(lines.size(), 5);                              // header + 4 channels
        QCOMPARE(lines[0].split(',').size(), int(model.dState()) + 1); // channel + N
        QCOMPARE(lines[4].split(',').first(), QStringLiteral("10"));
        const float h = model.series(1, Probe::SsmState)->at(3, 10 * model.dState() + 2);
        QVERIFY(std::fabs(lines[4].split(',')[3].toDouble() - h) <= 1e-6 * std::max(1.0, std::fabs(double(h))));
    }

    void sheetOfSeveralViews()
    {
        const QString file = tmp.filePath("sheet.png");
        exportFigures(file, {figs[0].get(), figs[5].get(), figs[6].get()}, ExportOptions{QSize(1000, 1600), 150});
        QCOMPARE(QImageReader(file).size(), QSize(1000, 1600));
        QCOMPARE(QImage(file).text("view"), QStringLiteral("delta,state,stepper"));
    }

    void badRequestsAreErrors()
    {
        QVERIFY_THROWS_EXCEPTION(Error, exportFigures(tmp.filePath("x.gif"), {figs[0].get()}, {}));
        QVERIFY_THROWS_EXCEPTION(Error, exportFigures(tmp.filePath("x.png"), {figs[0].get()}, ExportOptions{QSize(2, 2), 96}));
        QVERIFY_THROWS_EXCEPTION(Error, exportFigures("/no/such/folder/x.png", {figs[0].get()}, {}));
    }
};

QTEST_MAIN(TestExport)
#include "tst_export.moc"
