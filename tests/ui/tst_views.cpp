// The selective-scan views on live data, offscreen: after a run, stepping the cursor to a
// token makes every view hold exactly that token's numbers (compared with an HDF5 trace that
// archlens-cli trace wrote for the same prompt, read back with TraceReader); stepping,
// scrubbing and extending past the end; saving a trace and replaying it without the model;
// cancelling a long run; downsampling that keeps peaks and signs; wrong-kind layers.
#include <QSignalSpy>
#include <QSlider>
#include <QTest>

#include <cmath>

#include "controls/playback_controller.h"
#include "formats/trace.h"
#include "main_window.h"
#include "render/heatmap_renderer.h"
#include "token_strip.h"
#include "ui_test_util.h"
#include "views/channel_charts.h"
#include "views/figure_widget.h"
#include "views/heatmap_figures.h"
#include "views/horizon_figure.h"
#include "views/stepper_figure.h"

using namespace archlens;
using namespace archlens::ui;

namespace {
bool close(double a, double b, double tol = 1e-4) { return std::fabs(a - b) <= tol * std::max(1.0, std::fabs(b)); }
} // namespace

class TestViews : public QObject {
    Q_OBJECT
    QTemporaryDir tmp;

    void loadAndRun(MainWindow& w, const QString& prompt = QString::fromLatin1(uitest::kPrompt))
    {
        QSignalSpy ready(&w, &MainWindow::modelReady);
        w.openModel(uitest::demoModel());
        QVERIFY(ready.wait(20000));
        w.setPrompt(prompt);
        QSignalSpy done(&w, &MainWindow::runFinished);
        w.runPrompt();
        QVERIFY(done.wait(20000));
    }

private slots:
    void viewsHoldTheCurrentTokensValues()
    {
        const QString h5 = tmp.filePath("cli.h5");
        const auto r = uitest::runCli({"trace", "--model", uitest::demoModel(), "--prompt", uitest::kPrompt, "--out", h5});
        QVERIFY2(r.code == 0, qPrintable(r.err));
        const TraceReader trace = TraceReader::open(h5.toStdString());

        MainWindow w;
        w.resize(1400, 900);
        w.show();
        loadAndRun(w);
        const TraceModel* m = w.session()->model();
        QCOMPARE(m->tokenCount(), int(trace.tokens().size()));
        const int64_t E = m->dInner(), N = m->dState();

        const int layer = 2, token = 4, channel = 37;
        w.selection()->setLayer(layer);
        w.playback()->home();
        for (int i = 0; i < token; ++i)
            w.playback()->stepForward();
        w.selection()->setChannel(channel);
        QCOMPARE(w.selection()->token(), token);
        for (FigureWidget* v : w.views())
            v->grab(); // paint every view once (charts rebuild on paint)

        const std::string base = "/layers/" + std::to_string(layer) + "/ssm/";
        const Tensor delta = trace.readRows(base + "delta", token, token + 1);
        const Tensor B = trace.readRows(base + "B", token, token + 1);
        const Tensor state = trace.readRows(base + "state", token, token + 1);
        const Tensor y = trace.readRows(base + "y", token, token + 1);
        auto* deltaFig = static_cast<TokenHeatmapFigure*>(w.view("delta")->figure());
        auto* bFig = static_cast<TokenHeatmapFigure*>(w.view("B")->figure());
        auto* stateFig = static_cast<StateFigure*>(w.view("state")->figure());
        QCOMPARE(deltaFig->layer(), layer);
        QCOMPARE(deltaFig->token(), token);
        for (int64_t c = 0; c < E; ++c)
            QVERIFY(close(deltaFig->valueAt(token, c), delta.f32()[c]));
        for (int64_t n = 0; n < N; ++n)
            QVERIFY(close(bFig->valueAt(token, n), B.f32()[n]));
        for (int64_t c = 0; c < E; ++c)
            for (int64_t n = 0; n < N; ++n)
                QVERIFY(close(stateFig->valueAt(n, c), state.f32()[c * N + n]));

        // the stepper's numbers: recorded h_t is the trace's, and h_{t-1}·decay + write reproduces it
        auto* stepper = static_cast<StepperFigure*>(w.view("stepper")->figure());
        const auto s = stepper->step();
        QVERIFY(s.has_value());
        QCOMPARE(s->channel, channel);
        const Tensor prev = trace.readRows(base + "state", token - 1, token);
        for (int64_t n = 0; n < N; ++n) {
            QVERIFY(close(s->hRecorded[size_t(n)], state.f32()[channel * N + n]));
            QVERIFY(close(s->hPrev[size_t(n)], prev.f32()[channel * N + n]));
            QVERIFY(close(s->h[size_t(n)], s->hRecorded[size_t(n)], 1e-4));
        }
        QVERIFY(close(s->y, y.f32()[channel], 1e-4));
        QVERIFY(close(s->yRecorded, y.f32()[channel]));

        // the charts plot this channel's h over every token
        auto* charts = static_cast<ChannelChartsFigure*>(w.view("channels")->figure());
        const auto pts = charts->statePoints();
        QCOMPARE(pts.size(), m->tokenCount());
        const int64_t n0 = charts->chartDims().front();
        QVERIFY(close(pts[token].y(), state.f32()[channel * N + n0]));

        // CSV: a header and one row per token, token + text + E channels
        const QStringList lines = deltaFig->csv().split('\n', Qt::SkipEmptyParts);
        QCOMPARE(lines.size(), m->tokenCount() + 1);
        QCOMPARE(lines[0].split(',').size(), int(E) + 2);
        QVERIFY(!stateFig->toolTipAt(QPointF(-1, -1)).size());
    }

    void steppingScrubbingAndExtending()
    {
        MainWindow w;
        w.show();
        loadAndRun(w);
        const int T = w.session()->model()->tokenCount();
        QCOMPARE(w.selection()->token(), T - 1);
        w.playback()->stepBack();
        QCOMPARE(w.selection()->token(), T - 2);
        w.playback()->home();
        QCOMPARE(w.selection()->token(), 0);
        auto* scrub = w.findChild<QSlider*>("scrub");
        scrub->setValue(5);
        QCOMPARE(w.selection()->token(), 5);
        QCOMPARE(w.findChild<TokenStrip*>("tokenStrip")->current(), 5);
        // → at the end computes one more token through the recurrent step
        w.playback()->end();
        QSignalSpy done(&w, &MainWindow::workFinished);
        w.playback()->stepForward();
        QVERIFY(done.wait(20000));
        QCOMPARE(w.session()->model()->tokenCount(), T + 1);
        QCOMPARE(w.selection()->token(), T);
        QVERIFY(w.session()->model()->series(0, Probe::SsmState)->row(T));

        // Step in: one prompt token, then → feeds the next prompt token
        QSignalSpy first(&w, &MainWindow::workFinished);
        w.stepIn();
        QVERIFY(first.wait(20000));
        QCOMPARE(w.session()->model()->tokenCount(), 1);
        QCOMPARE(w.session()->promptLeft(), T - 1);
        QSignalSpy next(&w, &MainWindow::workFinished);
        w.playback()->stepForward();
        QVERIFY(next.wait(20000));
        QCOMPARE(w.session()->model()->tokenCount(), 2);
        const Tokenizer tok = Tokenizer::fromFile(uitest::demoModel().toStdString());
        QCOMPARE(w.session()->model()->ids()[1], tok.encode(uitest::kPrompt, true)[1]);

        // playback runs through the computed range on its timer
        w.playback()->setExtendAtEnd(false);
        w.playback()->home();
        w.playback()->setSpeed(200);
        w.playback()->setPlaying(true);
        QTRY_COMPARE_WITH_TIMEOUT(w.selection()->token(), 1, 2000);
        QTRY_VERIFY_WITH_TIMEOUT(!w.playback()->playing(), 2000);
    }

    void saveAndReopenTrace()
    {
        const QString file = tmp.filePath("saved.h5");
        MainWindow w;
        loadAndRun(w);
        QSignalSpy saved(&w, &MainWindow::workFinished);
        w.saveTrace(file);
        QVERIFY(saved.wait(20000));
        QCOMPARE(saved.takeFirst().at(0).value<WorkDone>().kind, QStringLiteral("save"));

        MainWindow w2;
        QSignalSpy opened(&w2, &MainWindow::runFinished);
        w2.openTrace(file);
        QVERIFY(opened.wait(20000));
        const TraceModel* a = w.session()->model();
        const TraceModel* b = w2.session()->model();
        QCOMPARE(b->tokenCount(), a->tokenCount());
        QCOMPARE(b->texts(), a->texts());
        QCOMPARE(b->meta().source, file);
        for (int l = 0; l < a->layerCount(); ++l)
            for (Probe p : {Probe::SsmDelta, Probe::SsmB, Probe::SsmState}) {
                const ProbeSeries* sa = a->series(l, p);
                const ProbeSeries* sb = b->series(l, p);
                QVERIFY(sa && sb);
                for (int t = 0; t < a->tokenCount(); ++t)
                    QVERIFY(std::memcmp(sa->row(t), sb->row(t), size_t(sa->width()) * sizeof(float)) == 0);
            }
        QCOMPARE(b->A(1), a->A(1));
        // top-5 predictions come back from the saved logits
        const int last = a->tokenCount() - 1;
        QCOMPARE(b->predictions(last).front().id, a->predictions(last).front().id);
        QVERIFY(std::fabs(b->predictions(last).front().probability - a->predictions(last).front().probability) < 1e-6f);
        // a replay cannot compute new tokens: → at the end stops
        w2.playback()->end();
        w2.playback()->stepForward();
        QVERIFY(!w2.session()->isBusy());
    }

    void cancelALongRun()
    {
        MainWindow w;
        QString prompt;
        for (int i = 0; i < 300; ++i)
            prompt += QStringLiteral("The state keeps some tokens and forgets others. ");
        QSignalSpy ready(&w, &MainWindow::modelReady);
        w.openModel(uitest::demoModel());
        QVERIFY(ready.wait(20000));
        w.session()->setPrefillChunk(4);
        w.setPrompt(prompt);
        QSignalSpy done(&w, &MainWindow::workFinished);
        QSignalSpy progress(w.session(), &SessionController::progress);
        w.runPrompt();
        QVERIFY(progress.wait(20000));
        const int total = progress.first().at(1).toInt();
        w.session()->cancel();
        QVERIFY(done.wait(20000));
        const WorkDone d = done.takeFirst().at(0).value<WorkDone>();
        QVERIFY(d.cancelled);
        QVERIFY(d.tokens < total);
        QCOMPARE(w.session()->model()->tokenCount(), d.tokens);
        QVERIFY(!w.isBusy());
    }

    void downsamplingKeepsPeaksAndSigns()
    {
        ProbeSeries s(2);
        std::vector<float> rows(2000 * 2, 0.01f);
        rows[size_t(777 * 2)] = -5.f; // one negative spike in column 0
        rows[size_t(1500 * 2 + 1)] = 4.f;
        s.append(rows.data(), 2000);
        HeatmapRequest r;
        r.series = s.view();
        r.x0 = 0;
        r.x1 = 2000;
        r.rows = {0, 1};
        r.pixels = QSize(20, 2);
        r.map = Colormap::Diverging;
        r.scale = {-5.f, 5.f, false};
        const QImage img = renderHeatmap(r);
        QCOMPARE(img.size(), QSize(20, 2));
        const auto& lut = colormapLut(Colormap::Diverging);
        QCOMPARE(img.pixel(777 * 20 / 2000, 0), lut[0]);           // most negative survives
        QCOMPARE(img.pixel(1500 * 20 / 2000, 1), lut[size_t(std::lround(0.9 * 255))]); // +4 of ±5
        QVERIFY(img.pixel(3, 0) != lut[0]);
    }

    void wrongKindOfLayerSaysSo()
    {
        TraceModel m;
        RunMeta meta;
        meta.modelName = "hybrid";
        meta.layers = 2;
        meta.layerMixer = {"mamba", "attention"};
        meta.dInner = 4;
        meta.dState = 2;
        m.clear(meta);
        m.addTokens(0, {1, 2}, {"a", "b"});
        Selection sel;
        sel.setLayer(1);
        TokenHeatmapFigure f(&m, &sel, Quantity::Delta);
        QVERIFY(f.unavailableReason().contains("attention"));
        StateFigure st(&m, &sel);
        QVERIFY(st.unavailableReason().contains("attention"));
    }

    void horizonAndCapOnLiveData()
    {
        TraceModel m;
        uitest::fillFromDemo(m);
        Selection sel;
        sel.setLayer(0);
        HorizonFigure h(&m, &sel);
        QVERIFY(h.unavailableReason().isEmpty());
        const MemoryHorizon& mh = h.horizon();
        QCOMPARE(mh.tokens, int64_t(m.tokenCount()));
        // the last token's horizon is always censored (nothing after it)
        QVERIFY(std::isnan(mh.horizon.at(mh.tokens - 1, 0)));
        // a memory cap drops the oldest states first, and the model lets go of them too
        const int64_t stateRow = m.dInner() * m.dState() * 4;
        m.store()->setCapBytes(uint64_t(stateRow) * 40);
        m.sync();
        QVERIFY(!m.series(0, Probe::SsmState)->row(0));
        QVERIFY(m.series(0, Probe::SsmDelta)->row(0));
        QVERIFY(m.store()->usage().droppedStates > 0);
    }
};

QTEST_MAIN(TestViews)
#include "tst_views.moc"
