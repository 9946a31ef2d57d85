// The routing-and-attention dock in the main window (offscreen): after a run its views hold the
// routing of exactly the session's tokens, generation extends them live with the prompt length
// from the prompt, stepping moves their cursor, corpora route with progress and can be
// cancelled, clicks on a layer open that layer's view, and a Mamba model's hidden attention
// follows the session (computed on the worker). The routing is the session's own (no second
// model), equal to a separate recording and unchanged by scrubs that replay; the compare dock
// puts hidden attention next to a Transformer's attention; the layout follows the architecture
// and View > Reset layout restores it.
#include <QAction>
#include <QDockWidget>
#include <QFile>
#include <QImage>
#include <QSplitter>
#include <QTabBar>
#include <QTabWidget>
#include <QTest>

#include <cmath>
#include <span>

#include "compare_dock.h"
#include "export/exporter.h"
#include "layout_controller.h"
#include "main_window.h"
#include "backends/backend_factory.h"
#include "models/registry.h"
#include "tiny_moe.h"
#include "ui_test_util.h"
#include "views/attention_figures.h"
#include "views/figure_widget.h"
#include "views/moe_panel.h"

using namespace archlens;
using namespace archlens::ui;

namespace {
// Waits until the panel has caught up with the session.
bool settle(MoePanel* p, int ms = 20000)
{
    QElapsedTimer t;
    t.start();
    while (t.elapsed() < ms) {
        QTest::qWait(30);
        if (!p->isBusy())
            return true;
    }
    return false;
}
// The tab in front among the docks tabbed with the routing dock.
QString frontTab(QMainWindow& w)
{
    for (QTabBar* bar : w.findChildren<QTabBar*>())
        for (int i = 0; i < bar->count(); ++i)
            if (bar->tabText(i) == QLatin1String("Routing and attention"))
                return bar->tabText(bar->currentIndex());
    return {};
}
} // namespace

class TestMoePanel : public QObject {
    Q_OBJECT
    QTemporaryDir tmp;
    QString moe;

private slots:
    void initTestCase()
    {
        moe = tmp.filePath("tiny-moe");
        test::writeTinyMoe(moe.toStdString(), ARCHLENS_SOURCE_DIR "/tests/reference/data/mixtral");
    }

    void followsRunsGenerationAndStepping()
    {
        MainWindow w;
        w.show();
        auto* panel = w.findChild<MoePanel*>();
        QVERIFY(panel);
        auto* dock = w.findChild<QDockWidget*>("dock.moe");
        QVERIFY(dock);
        QCOMPARE(frontTab(w), QStringLiteral("B")); // tabbed behind the scan views
        QSignalSpy ready(&w, &MainWindow::modelReady);
        w.openModel(moe);
        QVERIFY(ready.wait(20000));
        w.setPrompt("The river ran past the old mill");
        QSignalSpy done(&w, &MainWindow::runFinished);
        w.runPrompt();
        QVERIFY(done.wait(20000));
        QVERIFY(settle(panel));
        const int T = w.session()->model()->tokenCount();
        QVERIFY(T > 3);
        QCOMPARE(panel->source().routing.tokens(), int64_t(T));
        QCOMPARE(panel->source().routing.moeLayers(), (std::vector<int>{0, 1}));
        QCOMPARE(panel->source().routing.promptLength, int64_t(T));
        // a model without Mamba layers: the dock was brought forward
        QCOMPARE(frontTab(w), QStringLiteral("Routing and attention"));

        w.setMaxNewTokens(5);
        w.generate();
        QVERIFY(done.wait(20000) || w.session()->model()->tokenCount() > T);
        QTRY_VERIFY_WITH_TIMEOUT(!w.isBusy(), 20000);
        QVERIFY(settle(panel));
        const int T2 = w.session()->model()->tokenCount();
        QVERIFY(T2 > T);
        QCOMPARE(panel->source().routing.tokens(), int64_t(T2));
        QCOMPARE(panel->source().routing.promptLength, int64_t(T));
        auto* load = static_cast<ExpertLoadFigure*>(panel->view("expert-load")->figure());
        w.selection()->setLayer(1);
        const auto bars = load->bars();
        QCOMPARE(bars.size(), size_t(2)); // prompt and generated
        QCOMPARE(bars[1].name, QStringLiteral("generated tokens"));

        // stepping moves the views' token
        w.selection()->setToken(2);
        QCOMPARE(panel->view("router")->figure()->token(), 2);
        // a click on a layer in the layer map opens that layer's view
        QVERIFY(panel->showView("layer-map"));
        panel->view("layer-map")->resize(900, 500);
        panel->view("layer-map")->grab(); // lays the figure out
        auto* map = static_cast<LayerMapFigure*>(panel->view("layer-map")->figure());
        QPoint at;
        for (int y = 0; y < 500 && at.isNull(); y += 3)
            if (map->layerAt(QPointF(600, y)) == 0)
                at = QPoint(600, y);
        QVERIFY(!at.isNull());
        QTest::mouseClick(panel->view("layer-map"), Qt::LeftButton, {}, at);
        QCOMPARE(w.selection()->layer(), 0);
        QCOMPARE(panel->findChild<QTabWidget*>()->currentWidget(), panel->view("attention"));
    }

    // The dock's routing and attention weights are the session's own (recorded on its worker from
    // the same forward passes, no second model): equal to a separate recording of the same
    // segments, extended live while generating, unchanged by scrubs that replay from checkpoints.
    void routingIsTheSessionsOwnAndSurvivesReplays()
    {
        const QString jamba = QStringLiteral(ARCHLENS_SOURCE_DIR "/tests/reference/data/jamba");
        const uint64_t loadedBefore = modelsLoaded();
        MainWindow w;
        w.show();
        auto* panel = w.findChild<MoePanel*>();
        QSignalSpy ready(&w, &MainWindow::modelReady);
        w.openModel(jamba);
        QVERIFY(ready.wait(20000));
        w.session()->setCheckpointInterval(4);
        w.session()->setPrefillChunk(4);
        w.setPrompt("1,5,9,3,7,2,8,4,6,10");
        QSignalSpy done(&w, &MainWindow::runFinished);
        w.runPrompt();
        QVERIFY(done.wait(20000));
        QVERIFY(settle(panel));
        const int P = w.session()->model()->tokenCount();
        QCOMPARE(P, 10);
        QCOMPARE(panel->source().routing.tokens(), int64_t(P));
        w.setMaxNewTokens(6);
        w.generate();
        QTRY_VERIFY_WITH_TIMEOUT(!w.isBusy(), 20000);
        QVERIFY(settle(panel));
        const TraceModel* m = w.session()->model();
        const int T = m->tokenCount();
        QVERIFY(T > P);
        const analysis::RoutingData live = panel->source().routing;
        // one model loaded for the window: the session's; the routing views added none
        QCOMPARE(modelsLoaded() - loadedBefore, uint64_t(1));
        QCOMPARE(live.tokens(), int64_t(T));
        QCOMPARE(live.promptLength, int64_t(P));
        QVERIFY(!live.moeLayers().empty());
        QVERIFY(!live.attentionLayers().empty());

        // a separate recording of the same forward calls (prompt in chunks of 4 through the chunk
        // path, then one recurrent step per generated token)
        auto model = loadModel(jamba.toStdString(), createBackend("cpu", BackendOptions{0, true, ""}).backend);
        analysis::RoutingRecorder rec(true);
        rec.reset(model->info().layerMixer, model->info().layerFfn, P);
        auto state = model->newState();
        const std::vector<int32_t> ids = m->ids();
        for (int b = 0; b < P; b += 4)
            model->forward(std::span<const int32_t>(ids.data() + b, size_t(std::min(4, P - b))), *state, &rec,
                           ForwardMode::Chunk, false);
        for (int t = P; t < T; ++t)
            model->forward(std::span<const int32_t>(ids.data() + t, 1), *state, &rec, ForwardMode::Recurrent, false);
        const analysis::RoutingData want = rec.snapshot();
        auto sameAs = [&want](const analysis::RoutingData& got) {
            QCOMPARE(got.tokens(), want.tokens());
            QCOMPARE(got.moeLayers(), want.moeLayers());
            QCOMPARE(got.attentionLayers(), want.attentionLayers());
            for (int l : want.moeLayers()) {
                const auto &g = *got.routing(l), &e = *want.routing(l);
                QCOMPARE(g.topk, e.topk); // the same experts chosen, in the same order
                QCOMPARE(g.probs.size(), e.probs.size());
                QCOMPARE(g.weights.size(), e.weights.size());
                for (size_t i = 0; i < e.probs.size(); ++i)
                    QVERIFY2(std::fabs(g.probs[i] - e.probs[i]) <= 1e-6f, qPrintable(QString::number(i)));
                for (size_t i = 0; i < e.weights.size(); ++i)
                    QVERIFY(std::fabs(g.weights[i] - e.weights[i]) <= 1e-6f);
            }
            for (int l : want.attentionLayers()) {
                const auto &g = *got.attention(l), &e = *want.attention(l);
                QCOMPARE(g.heads, e.heads);
                QCOMPARE(g.tokens, e.tokens);
                for (int64_t h = 0; h < e.heads; ++h)
                    for (int64_t q = 0; q < e.tokens; ++q)
                        for (int64_t k = 0; k <= q; ++k)
                            QVERIFY(std::fabs(g.at(h, q, k) - e.at(h, q, k)) <= 1e-6f);
            }
        };
        sameAs(live);
        if (QTest::currentTestFailed())
            return;

        // a tiny memory cap drops the stored frames: scrubbing back replays from checkpoints,
        // which must neither duplicate nor alter the recorded routing
        w.session()->setCapBytes(4096);
        QSignalSpy recomputed(w.session(), &SessionController::recomputed);
        for (int t : {1, T - 2, 5}) {
            w.selection()->setToken(t);
            QTRY_VERIFY_WITH_TIMEOUT(!w.isBusy() && !w.session()->isRecomputing(), 20000);
            QCOMPARE(panel->view("router")->figure()->token(), t);
        }
        QVERIFY(recomputed.size() >= 1);
        QVERIFY(settle(panel));
        sameAs(panel->source().routing);
        // still one model in this window: the session's (the other is this test's reference)
        QCOMPARE(modelsLoaded() - loadedBefore, uint64_t(2));
    }

    void hiddenAttentionNextToAttentionInTheCompareDock();
    void layoutFollowsTheArchitectureAndResets();

    void corporaRouteWithProgressAndCancel()
    {
        MainWindow w;
        auto* panel = w.findChild<MoePanel*>();
        QSignalSpy ready(&w, &MainWindow::modelReady);
        w.openModel(moe);
        QVERIFY(ready.wait(20000));
        QSignalSpy done(&w, &MainWindow::runFinished);
        w.setPrompt("the mill");
        w.runPrompt();
        QVERIFY(done.wait(20000));
        QVERIFY(settle(panel));
        const uint64_t loaded = modelsLoaded();
        QSignalSpy finished(panel, &MoePanel::corpusFinished);
        const QString corpora = QStringLiteral(ARCHLENS_SOURCE_DIR "/resources/corpora");
        panel->setCorpus(0, corpora + "/es/heldout.txt");
        panel->setCorpus(1, corpora + "/numbers/heldout.txt");
        QTRY_COMPARE_WITH_TIMEOUT(finished.size(), 2, 60000);
        QCOMPARE(panel->source().corpora.size(), size_t(2));
        QCOMPARE(panel->source().corpora[0].name, QStringLiteral("es/heldout.txt"));
        QVERIFY(panel->source().corpora[0].complete);
        QVERIFY(panel->source().corpora[1].route.tokens() > 1000);
        auto* load = static_cast<ExpertLoadFigure*>(panel->view("expert-load")->figure());
        QCOMPARE(load->bars().size(), size_t(3));
        // a corpus replaced while it runs is cancelled, the newer one lands
        finished.clear();
        panel->setCorpus(0, corpora + "/prose-en/train.txt");
        panel->setCorpus(0, corpora + "/es/heldout.txt");
        QTRY_COMPARE_WITH_TIMEOUT(finished.size(), 2, 120000);
        QCOMPARE(panel->source().corpora[0].name, QStringLiteral("es/heldout.txt"));
        QVERIFY(panel->source().corpora[0].complete);
        QCOMPARE(modelsLoaded(), loaded); // corpora run through the session's own model
    }

    void mambaHiddenAttentionFollowsTheSession()
    {
        MainWindow w;
        auto* panel = w.findChild<MoePanel*>();
        QSignalSpy ready(&w, &MainWindow::modelReady);
        w.openModel(uitest::demoModel());
        QVERIFY(ready.wait(20000));
        QSignalSpy done(&w, &MainWindow::runFinished);
        w.setPrompt(uitest::kPrompt);
        w.runPrompt();
        QVERIFY(done.wait(20000));
        QVERIFY(settle(panel));
        auto* hidden = static_cast<HiddenAttentionFigure*>(panel->view("hidden-attention")->figure());
        w.selection()->setLayer(2);
        w.selection()->setToken(5);
        QVERIFY(hidden->unavailableReason().isEmpty());
        QCOMPARE(hidden->window().end, int64_t(6));
        // computed on the worker: the figure picks the result up on a later call
        QTRY_COMPARE_WITH_TIMEOUT(hidden->shown().size(), size_t(36), 20000);
        QCOMPARE(hidden->shownWindow().end, int64_t(6));
        QVERIFY(!hidden->computing());
        // the same numbers the CLI's synchronous path gives
        MoeSource sync;
        HiddenAttentionFigure direct(w.session()->model(), w.selection(), &sync);
        QCOMPARE(direct.shown(), hidden->shown());
        // the router explains itself on a model without experts
        QVERIFY(panel->view("router")->figure()->unavailableReason().contains("no mixture-of-experts"));
    }
};

// The compare dock puts a Mamba model's hidden attention (session A) next to a Transformer's
// attention (session B, GPT-NeoX) on the same prompt, and exports the pair.
void TestMoePanel::hiddenAttentionNextToAttentionInTheCompareDock()
{
    const QString mamba = QStringLiteral(ARCHLENS_SOURCE_DIR "/tests/reference/data/mamba_f32_tied");
    const QString neox = QStringLiteral(ARCHLENS_SOURCE_DIR "/tests/reference/data/neox_sequential");
    MainWindow w;
    w.show();
    QSignalSpy ready(&w, &MainWindow::modelReady);
    w.openModel(mamba);
    QVERIFY(ready.wait(20000));
    QSignalSpy readyB(w.compareSession(), &SessionController::modelLoaded);
    w.compareSession()->openModel(neox);
    QVERIFY(readyB.wait(20000));
    w.setPrompt("1,5,9,3,7,2,8");
    QSignalSpy done(&w, &MainWindow::runFinished);
    w.runPrompt(); // runs both sessions on the same token ids
    QVERIFY(done.wait(20000));
    QTRY_VERIFY_WITH_TIMEOUT(!w.compareSession()->isBusy() && w.compareSession()->model()->tokenCount() == 7, 20000);
    CompareDock* dock = w.compareDock();
    QVERIFY(dock);
    QVERIFY(dock->setMode("attention"));
    w.selection()->setToken(6);
    auto* pair = dynamic_cast<SideBySideFigure*>(dock->view()->figure());
    QVERIFY(pair);
    auto* hidden = dynamic_cast<HiddenAttentionFigure*>(pair->left());
    auto* attn = dynamic_cast<AttentionFigure*>(pair->right());
    QVERIFY(hidden && attn);
    QVERIFY2(pair->unavailableReason().isEmpty(), qPrintable(pair->unavailableReason()));
    // B's attention weights are B's session's own recording
    QTRY_VERIFY_WITH_TIMEOUT(dock->sourceB().routing.attention(attn->layer()) != nullptr, 20000);
    const auto& weights = *dock->sourceB().routing.attention(attn->layer());
    QCOMPARE(weights.tokens, int64_t(7));
    for (int64_t q = 0; q < 7; ++q) { // post-softmax rows over the causal keys
        double sum = 0;
        for (int64_t k = 0; k <= q; ++k)
            sum += weights.at(0, q, k);
        QVERIFY(std::fabs(sum - 1.0) < 1e-4);
    }
    // A's hidden attention, computed on the worker, equals the CLI's synchronous computation
    QTRY_COMPARE_WITH_TIMEOUT(hidden->shown().size(), size_t(49), 20000);
    MoeSource sync;
    HiddenAttentionFigure direct(w.session()->model(), w.selection(), &sync);
    direct.setFixedLayer(hidden->layer());
    QCOMPARE(direct.shown(), hidden->shown());
    // the pair draws and exports as one figure
    dock->view()->resize(1200, 500);
    QVERIFY(!dock->view()->grab().isNull());
    QTemporaryDir out;
    const QString png = out.filePath("pair.png"), csv = out.filePath("pair.csv");
    exportFigures(png, {pair}, ExportOptions{QSize(1400, 600)});
    exportFigures(csv, {pair}, ExportOptions{});
    QCOMPARE(QImage(png).size(), QSize(1400, 600));
    QFile f(csv);
    QVERIFY(f.open(QIODevice::ReadOnly));
    const QString text = QString::fromUtf8(f.readAll());
    QVERIFY(text.contains("hidden attention") && text.contains("# right:"));
}

// Layout by architecture: a Transformer brings the attention views forward and its scan views
// say where to look instead of asking for a Mamba layer; View > Reset layout restores the
// default arrangement for the current model, with a usable centre.
void TestMoePanel::layoutFollowsTheArchitectureAndResets()
{
    const QString neox = QStringLiteral(ARCHLENS_SOURCE_DIR "/tests/reference/data/neox_sequential");
    MainWindow w;
    w.resize(1400, 900);
    w.show();
    QVERIFY(QTest::qWaitForWindowExposed(&w));
    QSignalSpy ready(&w, &MainWindow::modelReady);
    w.openModel(neox);
    QVERIFY(ready.wait(20000));
    w.setPrompt("1,5,9,3,7");
    QSignalSpy done(&w, &MainWindow::runFinished);
    w.runPrompt();
    QVERIFY(done.wait(20000));
    auto* panel = w.findChild<MoePanel*>();
    QVERIFY(settle(panel));
    QCOMPARE(modelKindOf(w.session()->model()->meta()), ModelKind::Transformer);
    QCOMPARE(frontTab(w), QStringLiteral("Routing and attention"));
    QCOMPARE(panel->findChild<QTabWidget*>()->currentWidget(), panel->view("attention"));
    const QString why = w.view("B")->figure()->unavailableReason();
    QVERIFY2(why.contains("no Mamba layers") && !why.contains("Pick a Mamba layer"), qPrintable(why));
    // the state h dock and the centre's Δ panel, empty for this model, are out of the way
    auto* centre = w.findChild<QSplitter*>("splitter.center");
    QVERIFY(centre);
    QCOMPARE(centre->sizes().value(1), 0);
    QVERIFY(!w.findChild<QDockWidget*>("dock.state")->isVisible());

    // a student drags things around: the Δ panel gets squeezed, the scan views come forward
    auto* moeDock = w.findChild<QDockWidget*>("dock.moe");
    w.resizeDocks({moeDock}, {int(w.height() * 0.85)}, Qt::Vertical);
    w.findChild<QDockWidget*>("dock.B")->raise();
    panel->showView("layer-map");
    QTest::qWait(50);
    QAction* reset = w.findChild<QAction*>("action.resetLayout");
    QVERIFY(reset);
    reset->trigger();
    QTest::qWait(50);
    QCOMPARE(frontTab(w), QStringLiteral("Routing and attention"));
    QCOMPARE(panel->findChild<QTabWidget*>()->currentWidget(), panel->view("attention"));
    QVERIFY(!w.findChild<QDockWidget*>("dock.compare")->isVisible()); // the default: hidden

    // a pure Mamba model: the scan views in front, and Reset keeps them there with a usable Δ panel
    w.openModel(uitest::demoModel());
    QVERIFY(ready.wait(20000));
    w.setPrompt(uitest::kPrompt);
    w.runPrompt();
    QVERIFY(done.wait(20000));
    QCOMPARE(frontTab(w), QStringLiteral("B"));
    QVERIFY(centre->sizes().value(1) > 0); // unfolded again, and state h is back
    QVERIFY(w.findChild<QDockWidget*>("dock.state")->isVisible());
    w.resizeDocks({w.findChild<QDockWidget*>("dock.B")}, {int(w.height() * 0.85)}, Qt::Vertical);
    QTest::qWait(50);
    reset->trigger();
    QTest::qWait(50);
    QCOMPARE(frontTab(w), QStringLiteral("B"));
    QVERIFY2(w.view("delta")->height() >= 150, qPrintable(QString::number(w.view("delta")->height())));
}

QTEST_MAIN(TestMoePanel)
#include "tst_moe_panel.moc"
