// The routing-and-attention dock in the main window (offscreen): after a run its views hold the
// routing of exactly the session's tokens, generation extends them live with the prompt length
// from the prompt, stepping moves their cursor, corpora route with progress and can be
// cancelled, clicks on a layer open that layer's view, and a Mamba model's hidden attention
// follows the session.
#include <QDockWidget>
#include <QTabBar>
#include <QTabWidget>
#include <QTest>

#include "main_window.h"
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
        QCOMPARE(hidden->shown().size(), size_t(36));
        // the router explains itself on a model without experts
        QVERIFY(panel->view("router")->figure()->unavailableReason().contains("no mixture-of-experts"));
    }
};

QTEST_MAIN(TestMoePanel)
#include "tst_moe_panel.moc"
