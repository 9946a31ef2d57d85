// The Fine-tune page, offscreen, on a tiny Mamba made by `archlens-cli init-model` from a
// small text: targets show their coverage and the PEFT warning; a short fine-tune fills the
// loss curve and lowers the loss; the before/after panel shows both generations and the
// per-layer Δ/B/C statistics; the saved adapter loads back with the trained weights; Cancel
// leaves a checkpoint that Resume continues to the requested steps; an unsaved adapter is
// never discarded without asking; the main window reaches the page from its Train menu.
#include <QApplication>
#include <QCheckBox>
#include <QDockWidget>
#include <QFile>
#include <QLineSeries>
#include <QMenuBar>
#include <QPushButton>
#include <QSignalSpy>
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
    QString m_model, m_text;

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
    void initTestCase()
    {
        QVERIFY(m_tmp.isValid());
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
        QVERIFY(compared.wait(20000));
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

        // an unsaved adapter is not discarded without asking
        page.setConfirmHandler([&](const QString&) { return ++asked, false; });
        page.start();
        QCOMPARE(asked, 1);
        QVERIFY(!page.isTraining());
        QVERIFY(page.hasUnsavedAdapter());
        QVERIFY(failed.isEmpty());
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
