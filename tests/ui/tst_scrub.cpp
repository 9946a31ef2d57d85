// The GUI on the engine, offscreen: stepping token by token and scrubbing back show the states
// of the recurrent path; states the memory cap dropped are recomputed on the worker from the
// nearest checkpoint, bit-identical to what the live run showed; a trace saved with its
// checkpoints reopens without the model, scrubs, and shows the same numbers.
#include <QSignalSpy>
#include <QTest>

#include <cmath>
#include <cstring>

#include "controls/playback_controller.h"
#include "formats/trace.h"
#include "main_window.h"
#include "ui_test_util.h"
#include "views/figure_widget.h"
#include "views/heatmap_figures.h"
#include "views/stepper_figure.h"

using namespace archlens;
using namespace archlens::ui;

namespace {
// every layer's h after token t, as the window's model holds it (empty where missing)
std::vector<std::vector<float>> statesAt(const TraceModel& m, int t)
{
    std::vector<std::vector<float>> out;
    for (int l = 0; l < m.layerCount(); ++l) {
        const ProbeSeries* s = m.series(l, Probe::SsmState);
        const float* row = s ? s->row(t) : nullptr;
        out.push_back(row ? std::vector<float>(row, row + s->width()) : std::vector<float>{});
    }
    return out;
}
// The stepper redoes the scan in the recorded expression order; the fast backend's kernels may
// round a product differently (FMA), so its h_t is compared within float rounding.
void expectClose(const std::vector<float>& got, const std::vector<float>& want)
{
    QCOMPARE(got.size(), want.size());
    for (size_t i = 0; i < got.size(); ++i)
        QVERIFY(std::fabs(got[i] - want[i]) <= 1e-6f * std::max(1e-3f, std::fabs(want[i])));
}
bool allPresent(const std::vector<std::vector<float>>& v)
{
    return std::all_of(v.begin(), v.end(), [](const auto& r) { return !r.empty(); });
}
} // namespace

class TestScrub : public QObject {
    Q_OBJECT
    QTemporaryDir tmp;

    void load(MainWindow& w)
    {
        QSignalSpy ready(&w, &MainWindow::modelReady);
        w.openModel(uitest::demoModel());
        QVERIFY(ready.wait(20000));
    }
    void waitIdle(MainWindow& w)
    {
        QTRY_VERIFY_WITH_TIMEOUT(!w.session()->isBusy() && !w.session()->model()->hasPending(), 20000);
    }

private slots:
    void steppingAndScrubbingBackShowTheRecurrentStates()
    {
        MainWindow w;
        w.show();
        load(w);
        w.setPrompt(QString::fromLatin1(uitest::kPrompt));
        QSignalSpy first(&w, &MainWindow::workFinished);
        w.stepIn(); // the first token, then → feeds the rest one recurrent step at a time
        QVERIFY(first.wait(20000));
        const TraceModel* m = w.session()->model();
        const int steps = 20; // past the prompt: generated tokens too
        std::vector<std::vector<std::vector<float>>> shown;
        shown.push_back(statesAt(*m, 0));
        for (int i = 1; i <= steps; ++i) {
            QSignalSpy next(&w, &MainWindow::workFinished);
            w.playback()->stepForward();
            QVERIFY(next.wait(20000));
            QCOMPARE(w.selection()->token(), i);
            shown.push_back(statesAt(*m, i));
            QVERIFY(allPresent(shown.back()));
        }

        // the same tokens through a session that runs every token recurrently from the start
        auto model = loadModel(uitest::demoModel().toStdString(), std::shared_ptr<Backend>(makeCpuReferenceBackend()));
        SessionOptions o;
        o.prefillMode = ForwardMode::Recurrent;
        o.frames.probes.probes.insert(Probe::SsmState);
        RunSession ref(*model, o);
        ref.setPrompt(std::vector<int32_t>(m->ids().begin(), m->ids().end()));
        ref.prefill();
        auto stateFig = static_cast<StateFigure*>(w.view("state")->figure());
        const int64_t N = m->dState();
        for (int t = steps; t >= 0; --t) { // scrubbing back
            w.selection()->setToken(t);
            waitIdle(w);
            const auto now = statesAt(*m, t);
            for (int l = 0; l < m->layerCount(); ++l) {
                const StatePtr want = ref.store().state(t, l);
                QVERIFY(want);
                QCOMPARE(now[size_t(l)], shown[size_t(t)][size_t(l)]); // scrubbing shows what stepping showed
                for (size_t i = 0; i < want->h.size(); ++i)
                    QVERIFY2(std::fabs(now[size_t(l)][i] - want->h[i]) <= 1e-5f * std::max(1.f, std::fabs(want->h[i])),
                             qPrintable(QStringLiteral("token %1 layer %2 element %3").arg(t).arg(l).arg(i)));
            }
            const int L = w.selection()->layer();
            QCOMPARE(stateFig->valueAt(3, 7), now[size_t(L)][size_t(7 * N + 3)]);
        }
    }

    void droppedStatesAreRecomputedBitIdentical()
    {
        MainWindow w;
        w.show();
        load(w);
        w.session()->setCheckpointInterval(4);
        w.session()->setPrefillChunk(4);
        w.setPrompt(QString::fromLatin1(uitest::kPrompt));
        QSignalSpy done(&w, &MainWindow::runFinished);
        w.runPrompt();
        QVERIFY(done.wait(20000));
        w.setMaxNewTokens(10);
        QSignalSpy gen(&w, &MainWindow::runFinished);
        w.generate();
        QVERIFY(gen.wait(20000));
        waitIdle(w);
        const TraceModel* m = w.session()->model();
        const int T = m->tokenCount();
        QVERIFY(T > 20);
        std::vector<std::vector<std::vector<float>>> live;
        std::vector<std::vector<float>> liveDelta;
        for (int t = 0; t < T; ++t) {
            live.push_back(statesAt(*m, t));
            QVERIFY(allPresent(live.back()));
            const float* d = m->series(1, Probe::SsmDelta)->row(t);
            liveDelta.emplace_back(d, d + m->dInner());
        }

        // a tiny cap: the store drops states and old frames, and the window lets go of them too
        const uint64_t row = uint64_t(m->dInner() * m->dState()) * sizeof(float);
        w.session()->setCapBytes(row * 12);
        QVERIFY(m->store()->usage().droppedStates > 0);
        QVERIFY(!m->series(0, Probe::SsmState)->row(1));
        const FrameStoreUsage u = m->usage();
        QVERIFY2(u.usedBytes - u.reservedBytes <= row * 12, // frames and states obey the cap (checkpoints are kept)
                 qPrintable(QStringLiteral("used %1 (states %2, frames %3, reserved %4, slack %5, pooled %6) cap %7")
                                .arg(u.usedBytes).arg(u.stateBytes).arg(u.frameBytes).arg(u.reservedBytes)
                                .arg(u.slackBytes).arg(u.pooledBytes).arg(row * 12)));

        // scrubbing back recomputes on the worker, exactly as the live run computed it
        QSignalSpy recomputed(w.session(), &SessionController::recomputed);
        for (int t : {1, 9, 2, T - 3, 13}) {
            w.selection()->setToken(t);
            waitIdle(w);
            const auto now = statesAt(*m, t);
            QVERIFY2(allPresent(now), qPrintable(QStringLiteral("token %1 not recomputed").arg(t)));
            for (int l = 0; l < m->layerCount(); ++l)
                QVERIFY2(std::memcmp(now[size_t(l)].data(), live[size_t(t)][size_t(l)].data(),
                                     now[size_t(l)].size() * sizeof(float)) == 0,
                         qPrintable(QStringLiteral("token %1 layer %2 differs from the live run").arg(t).arg(l)));
            const float* d = m->series(1, Probe::SsmDelta)->row(t);
            QVERIFY(d && std::memcmp(d, liveDelta[size_t(t)].data(), liveDelta[size_t(t)].size() * sizeof(float)) == 0);
            // the stepper's h_{t-1} came back too, and its arithmetic reproduces h_t
            auto* stepper = static_cast<StepperFigure*>(w.view("stepper")->figure());
            const auto s = stepper->step();
            QVERIFY(s.has_value());
            expectClose(s->h, s->hRecorded);
        }
        QVERIFY(recomputed.size() >= 3);
    }

    void savedTraceReopensWithoutTheModelAndScrubs()
    {
        const QString file = tmp.filePath("session.h5");
        MainWindow w;
        load(w);
        w.session()->setCheckpointInterval(8);
        w.setPrompt(QString::fromLatin1(uitest::kPrompt));
        QSignalSpy done(&w, &MainWindow::runFinished);
        w.runPrompt();
        QVERIFY(done.wait(20000));
        w.setMaxNewTokens(6);
        QSignalSpy gen(&w, &MainWindow::runFinished);
        w.generate();
        QVERIFY(gen.wait(20000));
        waitIdle(w);
        QSignalSpy saved(&w, &MainWindow::workFinished);
        w.saveTrace(file);
        QVERIFY(saved.wait(20000));
        QCOMPARE(saved.takeFirst().at(0).value<WorkDone>().kind, QStringLiteral("save"));
        const TraceReader reader = TraceReader::open(file.toStdString());
        QVERIFY(!reader.checkpoints().empty());
        QVERIFY(reader.has("/session/segments"));

        MainWindow w2; // no model opened
        QSignalSpy opened(&w2, &MainWindow::runFinished);
        w2.openTrace(file);
        QVERIFY(opened.wait(20000));
        waitIdle(w2);
        const TraceModel* a = w.session()->model();
        const TraceModel* b = w2.session()->model();
        QCOMPARE(b->tokenCount(), a->tokenCount());
        // a tiny cap on the replay too: scrubbing rebuilds what it dropped
        const uint64_t row = uint64_t(b->dInner() * b->dState()) * sizeof(float);
        w2.session()->setCapBytes(row * 12);
        for (int t : {0, 3, a->tokenCount() - 1, 10, 5}) {
            w2.selection()->setToken(t);
            waitIdle(w2);
            const auto want = statesAt(*a, t), got = statesAt(*b, t);
            QVERIFY(allPresent(got));
            for (size_t l = 0; l < want.size(); ++l)
                QVERIFY(std::memcmp(want[l].data(), got[l].data(), want[l].size() * sizeof(float)) == 0);
            for (int l = 0; l < a->layerCount(); ++l) {
                const float* da = a->series(l, Probe::SsmDelta)->row(t);
                const float* db = b->series(l, Probe::SsmDelta)->row(t);
                QVERIFY(da && db && std::memcmp(da, db, size_t(a->dInner()) * sizeof(float)) == 0);
            }
            const auto sa = scanStepOf(*a, 2, t, 17), sb = scanStepOf(*b, 2, t, 17);
            QVERIFY(sa && sb);
            QCOMPARE(sb->h, sa->h);
            expectClose(sb->h, sb->hRecorded);
        }
        QCOMPARE(b->meta().source, file);
        QVERIFY(!w2.session()->hasModel());
    }
};

QTEST_MAIN(TestScrub)
#include "tst_scrub.moc"
