// The Fine-tune page, offscreen, on a tiny Mamba made by `archlens-cli init-model` from a
// small text: targets show their coverage and the PEFT warning; a short fine-tune fills the
// loss curve and lowers the loss; the before/after panel shows both generations and the
// per-layer Δ/B/C statistics; the saved adapter loads back with the trained weights; Cancel
// leaves a checkpoint that Resume continues to the requested steps; runs persist in the runs
// folder: a run stopped on one page (window) is listed on a new one, with its settings, and
// resumes there to the requested steps with its loss curve restored, ending exactly where an
// uninterrupted run ends; runs can be deleted; a model that is not a Mamba disables the page
// with a message naming it; the main window reaches the page from its Train menu.
#include <QApplication>
#include <QCheckBox>
#include <QDockWidget>
#include <QFile>
#include <QLineSeries>
#include <QMenuBar>
#include <QPushButton>
#include <QSignalSpy>
#include <QStandardPaths>
#include <QTableWidget>
#include <QTest>

#include <fstream>

#include <nlohmann/json.hpp>

#include "finetune/finetune_page.h"
#include "main_window.h"
#include "training/mamba_train_model.h"
#include "ui_test_util.h"

using namespace archlens;

class TestFinetunePage : public QObject {
    Q_OBJECT
    QTemporaryDir m_tmp;
    QString m_model, m_text, m_runs;

    static double meanY(const QList<QPointF>& pts, int from, int to)
    {
        double s = 0;
        for (int i = from; i < to; ++i)
            s += pts[i].y();
        return s / double(to - from);
    }

    static std::vector<float> loraValues(const train::MambaTrainModel& m)
    {
        std::vector<float> out;
        for (int i = 0; i < m.params().count(); ++i)
            if (m.params().info(i).name.find(".lora_") != std::string::npos)
                out.insert(out.end(), m.params().data(i), m.params().data(i) + m.params().info(i).numel);
        return out;
    }

private slots:
    static const ui::FinetuneRun* findRun(const ui::FinetunePage& page, qint64 step)
    {
        for (const ui::FinetuneRun& r : page.runs())
            if (r.step == step && r.resumable)
                return &r;
        return nullptr;
    }

    // Trains `steps` on a fresh page and stops it once `stopAt` losses are on the curve (0: never).
    ui::FinetuneDone trainOnNewPage(int steps, int stopAt, QList<QPointF>* curve)
    {
        ui::FinetunePage page;
        QSignalSpy ready(&page, &ui::FinetunePage::modelPrepared);
        QSignalSpy done(&page, &ui::FinetunePage::trainingFinished);
        page.setModelDir(m_model);
        page.show();
        if (!ready.wait(20000))
            return {};
        page.setDataPath(m_text);
        page.setTargets({"in_proj", "x_proj"});
        page.setAdapter(4, 8, 0.1);
        page.setTraining(steps, 4, 24, 0.01);
        const QLineSeries* series = page.lossSeries();
        if (stopAt > 0)
            connect(series, &QXYSeries::pointAdded, &page, [&] {
                if (series->count() >= stopAt)
                    page.cancel();
            });
        page.start();
        if (!done.wait(30000))
            return {};
        *curve = series->points();
        return done.front().front().value<ui::FinetuneDone>();
    }

    void initTestCase()
    {
        QVERIFY(m_tmp.isValid());
        // runs go to a temporary folder, never into the user's AppData
        QStandardPaths::setTestModeEnabled(true);
        m_runs = m_tmp.filePath("runs");
        ui::FinetunePage::setDefaultRunsRoot(m_runs);
        m_text = m_tmp.filePath("lab6.txt");
        QFile f(m_text);
        QVERIFY(f.open(QIODevice::WriteOnly));
        // a small, very regular text: a LoRA adapter learns it quickly
        for (int i = 0; i < 60; ++i)
            f.write("the cat sat on the mat. the dog sat on the log. ");
        f.close();
        m_model = m_tmp.filePath("tiny-mamba");
        const auto r = uitest::runCli({"init-model", "--out", m_model, "--corpus", m_text, "--vocab-size", "300",
                                       "--d-model", "16", "--layers", "2", "--d-state", "4", "--seed", "3"});
        QVERIFY2(r.code == 0, qPrintable(r.err));
    }

    void targetsShowCoverageAndPeftWarning()
    {
        ui::FinetunePage page;
        QSignalSpy ready(&page, &ui::FinetunePage::modelPrepared);
        page.setModelDir(m_model);
        page.show();
        QVERIFY(ready.wait(20000));
        QVERIFY2(page.coverageText().contains("covers 2 of 2 layers"), qPrintable(page.coverageText()));
        QVERIFY(page.peftWarningText().isEmpty());
        page.setTargets({"out_proj"});
        QVERIFY(page.peftWarningText().contains("out_proj"));
        QVERIFY(page.coverageText().contains("covers 2 of 2 layers (2 modules)"));
        // unknown names cannot be typed: only the model's module kinds are offered, conv1d is off
        auto* conv = page.findChild<QCheckBox*>("finetune.target.conv1d");
        QVERIFY(conv && !conv->isEnabled());
        page.setTargets({});
        QVERIFY(page.coverageText().contains("at least one"));
        QVERIFY(!page.findChild<QPushButton*>("finetune.start")->isEnabled());
    }

    void trainCompareSaveCancelResume()
    {
        ui::FinetunePage page;
        QSignalSpy ready(&page, &ui::FinetunePage::modelPrepared);
        QSignalSpy done(&page, &ui::FinetunePage::trainingFinished);
        QSignalSpy compared(&page, &ui::FinetunePage::comparisonReady);
        QSignalSpy saved(&page, &ui::FinetunePage::adapterSaved);
        QSignalSpy failed(&page, &ui::FinetunePage::failed);
        page.setModelDir(m_model);
        page.show();
        QVERIFY(ready.wait(20000));
        page.setDataPath(m_text);
        page.setTargets({"in_proj", "x_proj", "dt_proj"});
        page.setAdapter(4, 8, 0.05);
        page.setTraining(60, 4, 24, 0.01);
        page.setComparePrompt("the cat");

        // a short fine-tune: every step on the curve, the loss goes down
        page.start();
        QVERIFY(page.isTraining());
        QVERIFY2(done.wait(30000), qPrintable(failed.isEmpty() ? QString() : failed.front().front().toString()));
        QVERIFY(!done.front().front().value<ui::FinetuneDone>().cancelled);
        const QList<QPointF> pts = page.lossSeries()->points();
        QCOMPARE(pts.size(), 60);
        const double first = meanY(pts, 0, 5), last = meanY(pts, 55, 60);
        QVERIFY2(last < first - 0.1, qPrintable(QString("loss %1 -> %2").arg(first).arg(last)));
        QVERIFY(page.hasUnsavedAdapter());

        // the before/after panel fills in by itself
        QVERIFY2(compared.count() > 0 || compared.wait(20000),
                 qPrintable(failed.isEmpty() ? QString() : failed.front().front().toString()));
        QVERIFY(page.baseGeneration().startsWith("the cat"));
        QVERIFY(page.adaptedGeneration().startsWith("the cat"));
        QVERIFY(page.baseGeneration().size() > QString("the cat").size());
        const QTableWidget* stats = page.statsTable();
        QCOMPARE(stats->rowCount(), 2);
        QVERIFY(stats->item(1, 1)->text().contains("→"));
        QVERIFY(stats->item(0, 3)->text().contains("→"));

        // save: the PEFT files, loadable, with the trained weights (those of the final checkpoint)
        const QString out = m_tmp.filePath("my-adapter");
        page.saveAdapterTo(out);
        QVERIFY(saved.wait(10000));
        QVERIFY(!page.hasUnsavedAdapter());
        QVERIFY(QFile::exists(out + "/adapter_config.json"));
        QVERIFY(QFile::exists(out + "/adapter_model.safetensors"));
        {
            std::ifstream cf((out + "/adapter_config.json").toStdString());
            const auto cfg = nlohmann::json::parse(cf);
            QCOMPARE(cfg["r"].get<int>(), 4);
            QCOMPARE(cfg["lora_dropout"].get<double>(), 0.05);
            auto fromSaved = train::MambaTrainModel::load(m_model.toStdString());
            fromSaved.loadAdapter(out.toStdString());
            auto fromCheckpoint = train::MambaTrainModel::load(m_model.toStdString());
            fromCheckpoint.loadAdapter(page.checkpointDir().toStdString());
            const auto a = loraValues(fromSaved);
            QVERIFY(!a.empty());
            QVERIFY(a == loraValues(fromCheckpoint));
            QVERIFY(std::any_of(a.begin(), a.end(), [](float v) { return v != 0.f; }));
        }

        // cancel mid-way leaves a checkpoint; resume reaches the requested steps
        done.clear();
        compared.clear();
        int asked = 0;
        page.setConfirmHandler([&](const QString&) { return ++asked, true; });
        page.setTraining(300, 4, 24, 0.01);
        const QLineSeries* series = page.lossSeries();
        const QMetaObject::Connection stopper = connect(series, &QXYSeries::pointAdded, &page, [&] {
            if (series->count() >= 20)
                page.cancel();
        });
        page.start();
        QCOMPARE(asked, 0); // the adapter was saved: nothing to confirm
        QVERIFY(done.wait(30000));
        disconnect(stopper);
        const auto stopped = done.front().front().value<ui::FinetuneDone>();
        QVERIFY(stopped.cancelled);
        QVERIFY(stopped.step >= 20 && stopped.step < 300);
        {
            std::ifstream sf((page.checkpointDir() + "/trainer_state.json").toStdString());
            QVERIFY(sf.good());
            QCOMPARE(nlohmann::json::parse(sf)["step"].get<qint64>(), stopped.step);
        }
        QVERIFY(page.findChild<QPushButton*>("finetune.resume")->isEnabled());
        done.clear();
        page.resume();
        QVERIFY(done.wait(30000));
        const auto resumed = done.front().front().value<ui::FinetuneDone>();
        QVERIFY(!resumed.cancelled);
        QCOMPARE(resumed.step, qint64(300));
        QCOMPARE(page.lossSeries()->count(), 300);
        QVERIFY(compared.wait(20000));

        // a finished run is kept in its folder, so starting another asks nothing and loses nothing
        QVERIFY(page.checkpointDir().startsWith(m_runs + "/tiny-mamba-"));
        const QString kept = page.checkpointDir();
        QSignalSpy listed(&page, &ui::FinetunePage::runsListed);
        page.setTraining(10, 4, 24, 0.01);
        page.start();
        QCOMPARE(asked, 0);
        QVERIFY(page.isTraining());
        QVERIFY(done.wait(30000));
        QVERIFY(page.checkpointDir() != kept);
        QVERIFY(listed.wait(10000));
        QStringList dirs;
        for (const auto& r : page.runs())
            dirs << r.dir;
        QVERIFY2(dirs.contains(kept) && dirs.contains(page.checkpointDir()), qPrintable(dirs.join(", ")));
        QVERIFY(failed.isEmpty());

        // a running fine-tune asks before it is stopped (quitting, another model)
        page.setTraining(100000, 4, 24, 0.01);
        page.start();
        page.setConfirmHandler([&](const QString& q) { return ++asked, !q.contains("Stop it"); });
        QVERIFY(!page.confirmDiscard("quit"));
        QCOMPARE(asked, 1);
        QVERIFY(page.isTraining());
        page.cancel();
        QVERIFY(done.wait(30000));
    }

    void stoppedRunResumesOnANewPage()
    {
        // the reference: 80 steps without interruption
        QList<QPointF> whole;
        const ui::FinetuneDone ref = trainOnNewPage(80, 0, &whole);
        QCOMPARE(ref.step, qint64(80));
        QCOMPARE(whole.size(), 80);

        // the same run stopped after 25 steps, its page destroyed
        QList<QPointF> before;
        const ui::FinetuneDone stopped = trainOnNewPage(80, 25, &before);
        QVERIFY(stopped.cancelled);
        QVERIFY(stopped.step >= 25 && stopped.step < 80);
        QCOMPARE(before.size(), int(stopped.step));
        QVERIFY(stopped.checkpointDir.startsWith(m_runs));

        // a new page lists it with its settings; Resume continues it with the curve restored
        ui::FinetunePage page;
        QSignalSpy ready(&page, &ui::FinetunePage::modelPrepared);
        QSignalSpy listed(&page, &ui::FinetunePage::runsListed);
        QSignalSpy done(&page, &ui::FinetunePage::trainingFinished);
        QSignalSpy failed(&page, &ui::FinetunePage::failed);
        page.setModelDir(m_model);
        page.show();
        QVERIFY(ready.wait(20000));
        QVERIFY(listed.count() > 0 || listed.wait(10000));
        const ui::FinetuneRun* run = findRun(page, stopped.step);
        QVERIFY(run);
        QCOMPARE(run->dir, stopped.checkpointDir);
        QCOMPARE(run->steps, qint64(80));
        QCOMPARE(run->settings.rank, 4);
        QCOMPARE(run->settings.dropout, 0.1);
        QCOMPARE(run->settings.targets, QStringList({"in_proj", "x_proj"}));
        QCOMPARE(run->settings.dataPath, QFileInfo(m_text).absoluteFilePath());
        QCOMPARE(run->history.size(), int(stopped.step));
        page.selectRun(run->dir);
        QCOMPARE(page.selectedRun(), stopped.checkpointDir);
        QCOMPARE(page.lossSeries()->points(), before); // the curve, as it was drawn before
        QVERIFY(page.findChild<QPushButton*>("finetune.resume")->isEnabled());
        page.resume();
        QVERIFY2(done.wait(30000), qPrintable(failed.isEmpty() ? QString() : failed.front().front().toString()));
        const auto resumed = done.front().front().value<ui::FinetuneDone>();
        QVERIFY(!resumed.cancelled);
        QCOMPARE(resumed.step, qint64(80));
        const QList<QPointF> after = page.lossSeries()->points();
        QCOMPARE(after.size(), 80);
        QCOMPARE(after.mid(0, before.size()), before);
        // the same batches, dropout masks and optimizer state: it ends where the uninterrupted run ends
        QCOMPARE(after, whole);
        QVERIFY(failed.isEmpty());

        // deleting asks, and a refusal keeps the run
        int asked = 0;
        page.setConfirmHandler([&](const QString&) { return ++asked, false; });
        page.deleteRun(stopped.checkpointDir);
        QCOMPARE(asked, 1);
        QVERIFY(QFileInfo::exists(stopped.checkpointDir + "/trainer_state.json"));
        page.setConfirmHandler([&](const QString&) { return ++asked, true; });
        page.deleteRun(stopped.checkpointDir);
        auto listedRun = [&] {
            for (const auto& r : page.runs())
                if (r.dir == stopped.checkpointDir)
                    return true;
            return false;
        };
        QTRY_VERIFY_WITH_TIMEOUT(!listedRun(), 10000);
        QVERIFY(!QFileInfo::exists(stopped.checkpointDir));
    }

    void runSurvivesTheWindow()
    {
        QString dir;
        qint64 step = 0;
        {
            ui::MainWindow w;
            QSignalSpy ready(&w, &ui::MainWindow::modelReady);
            w.openModel(m_model);
            QVERIFY(ready.wait(20000));
            auto* page = w.finetunePage();
            page->setConfirmHandler([](const QString&) { return true; });
            QSignalSpy prepared(page, &ui::FinetunePage::modelPrepared);
            w.show();
            w.showFinetune();
            QVERIFY(prepared.wait(20000));
            page->setDataPath(m_text);
            page->setTraining(100000, 4, 24, 0.01);
            QSignalSpy progress(page->lossSeries(), &QXYSeries::pointAdded);
            page->start();
            QVERIFY(progress.wait(20000));
            dir = page->checkpointDir();
            // the window goes while the fine-tune runs: it stops after its step and keeps its checkpoint
        }
        QVERIFY(QFileInfo::exists(dir + "/trainer_state.json"));
        {
            std::ifstream sf((dir + "/trainer_state.json").toStdString());
            step = nlohmann::json::parse(sf)["step"].get<qint64>();
        }
        QVERIFY(step > 0);
        ui::MainWindow w;
        QSignalSpy ready(&w, &ui::MainWindow::modelReady);
        w.openModel(m_model);
        QVERIFY(ready.wait(20000));
        auto* page = w.finetunePage();
        QSignalSpy listed(page, &ui::FinetunePage::runsListed);
        w.show();
        w.showFinetune();
        QVERIFY(listed.wait(20000));
        const ui::FinetuneRun* run = findRun(*page, step);
        QVERIFY(run);
        QCOMPARE(run->dir, dir);
        QCOMPARE(run->history.size(), int(step));
        QSignalSpy done(page, &ui::FinetunePage::trainingFinished);
        page->selectRun(dir);
        page->setTraining(int(step) + 5, 4, 24, 0.01);
        page->resume();
        QVERIFY(done.wait(30000));
        QCOMPARE(done.front().front().value<ui::FinetuneDone>().step, step + 5);
        QCOMPARE(page->lossSeries()->count(), int(step) + 5);
    }

    void nonMambaModelDisablesThePage()
    {
        ui::MainWindow w;
        QSignalSpy ready(&w, &ui::MainWindow::modelReady);
        w.openModel(QStringLiteral(ARCHLENS_SOURCE_DIR "/resources/models/llama-text"));
        QVERIFY(ready.wait(20000));
        auto* page = w.finetunePage();
        w.show();
        w.showFinetune();
        QVERIFY(page->isUnsupported());
        QVERIFY2(page->modelMessage().contains("LoRA fine-tuning is available for Mamba models") &&
                     page->modelMessage().contains("Llama"),
                 qPrintable(page->modelMessage()));
        QVERIFY(!page->findChild<QPushButton*>("finetune.start")->isEnabled());
        QVERIFY(!page->findChild<QPushButton*>("finetune.resume")->isEnabled());
        QVERIFY(!page->findChild<QWidget*>("finetune.data")->isEnabled());
        QVERIFY(!page->findChild<QWidget*>("finetune.rank")->isEnabled());
        QVERIFY(!page->findChild<QWidget*>("finetune.runs")->isEnabled());

        // a Mamba opened next brings the page back
        QSignalSpy prepared(page, &ui::FinetunePage::modelPrepared);
        ready.clear();
        w.openModel(m_model);
        QVERIFY(ready.wait(20000));
        QVERIFY(prepared.count() > 0 || prepared.wait(20000));
        QVERIFY(!page->isUnsupported());
        QVERIFY(page->findChild<QWidget*>("finetune.data")->isEnabled());
    }

    void mainWindowReachesThePage()
    {
        ui::MainWindow w;
        QVERIFY(w.finetunePage());
        auto* dock = w.findChild<QDockWidget*>("dock.finetune");
        QVERIFY(dock);
        QAction* action = nullptr;
        for (QAction* m : w.menuBar()->actions())
            if (m->menu())
                for (QAction* a : m->menu()->actions())
                    if (a->text().contains("Fine-tune"))
                        action = a;
        QVERIFY(action);
        w.show();
        action->trigger();
        QVERIFY(dock->isVisible());
    }
};

QTEST_MAIN(TestFinetunePage)
#include "tst_finetune_page.moc"
