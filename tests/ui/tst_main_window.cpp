// The main window, offscreen: loads the bundled mamba-text model on its worker thread, runs a
// prompt, and shows the tokens and the model's own top-5 predictions; bad folders give a
// message, not a crash.
#include <QApplication>
#include <QSignalSpy>
#include <QTableWidget>
#include <QTest>

#include <algorithm>
#include <numeric>

#include "backends/backend.h"
#include "main_window.h"
#include "models/model.h"
#include "ops/math.h"
#include "token_strip.h"
#include "tokenizer/tokenizer.h"
#include "ui_test_util.h"

using namespace archlens;

class TestMainWindow : public QObject {
    Q_OBJECT
    const QString demo = uitest::demoModel();

private slots:
    void loadsTheBundledModelAndLabelsItTrained()
    {
        ui::MainWindow w;
        QSignalSpy ready(&w, &ui::MainWindow::modelReady);
        w.openModel(demo);
        QVERIFY(ready.wait(20000));
        QCOMPARE(w.summary().layers, 4);
        QVERIFY(!w.summary().untrained); // its archlens_card.json says trained
        QVERIFY(w.windowTitle().contains("mamba-text"));
        QVERIFY(w.summary().hasTokenizer);
    }

    void runShowsTokensAndTheModelsTopFive()
    {
        ui::MainWindow w;
        QSignalSpy ready(&w, &ui::MainWindow::modelReady);
        w.openModel(demo);
        QVERIFY(ready.wait(20000));
        const QString prompt = QStringLiteral("The state evolves.");
        w.setPrompt(prompt);
        QSignalSpy done(&w, &ui::MainWindow::runFinished);
        w.runPrompt();
        QVERIFY(done.wait(20000));

        const Tokenizer tok = Tokenizer::fromFile(demo.toStdString());
        const auto ids = tok.encode(prompt.toStdString(), true);
        auto* strip = w.findChild<ui::TokenStrip*>("tokenStrip");
        QVERIFY(strip);
        QCOMPARE(strip->count(), int(ids.size()));
        QCOMPARE(strip->current(), int(ids.size()) - 1);

        // the predictions at the last token are the model's own: recompute them directly
        auto model = loadModel(demo.toStdString(), std::shared_ptr<Backend>(makeCpuReferenceBackend()));
        auto state = model->newState();
        const Tensor logits = model->forward(ids, *state, nullptr, ForwardMode::Chunk, false);
        std::vector<float> p(static_cast<size_t>(logits.numel()));
        softmax(logits.f32(), p.data(), logits.numel());
        const int best = int(std::max_element(p.begin(), p.end()) - p.begin());
        auto* table = w.findChild<QTableWidget*>("predictions");
        QVERIFY(table);
        QCOMPARE(table->rowCount(), 5);
        QCOMPARE(table->item(0, 1)->text().toInt(), best);
        const auto top = w.session()->model()->predictions(w.session()->model()->tokenCount() - 1);
        QVERIFY(std::fabs(top[0].probability - p[size_t(best)]) < 1e-5f);
        for (int i = 1; i < top.size(); ++i)
            QVERIFY(top[i - 1].probability >= top[i].probability);

        // stepping to another token shows that token's predictions
        QTest::keyClick(strip, Qt::Key_Home);
        QCOMPARE(strip->current(), 0);
        QCOMPARE(w.selection()->token(), 0);
        QCOMPARE(table->item(0, 1)->text().toInt(), w.session()->model()->predictions(0)[0].id);
    }

    void badFolderGivesAMessageNotACrash()
    {
        ui::MainWindow w;
        QSignalSpy failed(&w, &ui::MainWindow::failed);
        w.openModel(QStringLiteral("/no/such/model"));
        QVERIFY(failed.wait(20000));
        QVERIFY(w.lastError().contains("/no/such/model"));
        QVERIFY(!w.isBusy());
    }

    void darkPaletteToggles()
    {
        ui::MainWindow w;
        w.setDarkMode(true);
        QVERIFY(QApplication::palette().color(QPalette::Base).lightness() < 100);
        w.setDarkMode(false);
        QVERIFY(QApplication::palette().color(QPalette::Base).lightness() > 150);
    }
};

QTEST_MAIN(TestMainWindow)
#include "tst_main_window.moc"
