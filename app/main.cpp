// archlens: the GUI. Opens the bundled default model unless a folder (or a trace) is given.
#include <QApplication>
#include <QCommandLineParser>
#include <QDir>
#include <QDockWidget>
#include <QElapsedTimer>
#include <QFileInfo>
#include <QStyleFactory>
#include <QTimer>

#include "bench_ui.h"
#include "compare_dock.h"
#include "finetune/finetune_page.h"
#include "main_window.h"
#include "session/selection.h"
#include "views/figure_widget.h"
#include "views/moe_panel.h"

static QString bundledModelsDir()
{
    // next to an installed binary first, then the source tree this binary was built from
    const QString installed = QCoreApplication::applicationDirPath() + "/../share/archlens/resources/models";
    if (QFileInfo(installed).isDir())
        return QDir(installed).canonicalPath();
    return QStringLiteral(ARCHLENS_RESOURCE_DIR "/models");
}

int main(int argc, char** argv)
{
    QApplication app(argc, argv);
    QApplication::setApplicationName("ArchLens");
    QApplication::setOrganizationName("ArchLens");
    QApplication::setApplicationVersion(ARCHLENS_VERSION);
    QApplication::setStyle(QStyleFactory::create("Fusion")); // honours our light and dark palettes

    QCommandLineParser parser;
    parser.setApplicationDescription("See inside Mamba, mixture-of-experts and Transformer models while they run.");
    parser.addHelpOption();
    parser.addVersionOption();
    parser.addPositionalArgument("model", "Model folder or .h5 trace to open (default: the bundled mamba-text model)");
    QCommandLineOption prompt("prompt", "Prompt to run once the model is loaded", "text");
    QCommandLineOption screenshot("screenshot", "Save a screenshot of the window to FILE and quit (for docs and tests)",
                                  "file");
    QCommandLineOption layer("layer", "Layer the views show", "L");
    QCommandLineOption token("token", "Token the cursor starts on", "t");
    QCommandLineOption channel("channel", "Channel the stepper and charts follow", "c");
    QCommandLineOption dark("dark", "Use the dark palette");
    QCommandLineOption raise("raise", "Dock to bring to the front for the screenshot (e.g. dock.channels)", "name");
    QCommandLineOption generateN("generate", "After the prompt, generate N tokens", "N");
    QCommandLineOption view("view", "Routing/attention view to bring to the front (router, expert-load, expert-path, "
                                    "coactivation, attention, hidden-attention, layer-map ...)", "key");
    QCommandLineOption corpus("corpus", "Route this corpus (file or folder) for the expert-load view; give it twice to "
                                        "compare two", "path");
    QCommandLineOption compareModel("compare-model", "Open this model folder as session B (the compare dock)", "dir");
    QCommandLineOption compareView("compare-view", "Show the compare dock in this mode: delta, state-norm or attention "
                                                   "(A's and B's attention side by side; hidden attention for Mamba)",
                                   "mode");
    QCommandLineOption bench("bench-ui", "Measure playback frame times and event-loop stalls, print them, and quit");
    QCommandLineOption finetune("finetune", "Open the Fine-tune page and fine-tune the model on FILE (text or JSONL); "
                                            "with --screenshot, the shot is taken after the before/after comparison",
                                "file");
    QCommandLineOption finetuneSteps("finetune-steps", "Steps of the --finetune run (default 100)", "N");
    parser.addOptions({prompt, screenshot, layer, token, channel, dark, raise, generateN, bench, view, corpus,
                       compareModel, compareView, finetune, finetuneSteps});
    parser.process(app);

    archlens::ui::MainWindow window;
    window.setBundledModelsDir(bundledModelsDir());
    auto* moePanel = window.findChild<archlens::ui::MoePanel*>();
    if (moePanel)
        moePanel->setSampleCorporaDir(QDir(bundledModelsDir() + "/../corpora").absolutePath());
    const QStringList args = parser.positionalArguments();
    const QString target = args.isEmpty() ? bundledModelsDir() + "/mamba-text" : args.front();
    if (parser.isSet(dark))
        window.setDarkMode(true);
    window.show();

    if (parser.isSet(bench))
        return archlens::ui::runUiBenchmark(window, target);

    if (parser.isSet(prompt))
        window.setPrompt(parser.value(prompt));
    QObject::connect(&window, &archlens::ui::MainWindow::modelReady, &window, [&] {
        if (parser.isSet(prompt))
            window.runPrompt();
    });
    if (parser.isSet(corpus) && moePanel)
        QObject::connect(&window, &archlens::ui::MainWindow::runFinished, &window, [&, moePanel] {
            static bool done = false;
            if (done)
                return;
            done = true;
            const QStringList paths = parser.values(corpus);
            for (int i = 0; i < std::min<int>(int(paths.size()), 2); ++i)
                moePanel->setCorpus(i, paths[i]);
        });
    bool generated = false;
    auto pose = [&] {
        if (parser.isSet(layer))
            window.selection()->setLayer(parser.value(layer).toInt());
        if (parser.isSet(channel))
            window.selection()->setChannel(parser.value(channel).toInt());
        if (parser.isSet(token))
            window.selection()->setToken(parser.value(token).toInt());
        if (parser.isSet(view) && moePanel) {
            if (auto* d = window.findChild<QDockWidget*>("dock.moe")) {
                d->show();
                d->raise();
                window.resizeDocks({d}, {int(window.height() * 0.62)}, Qt::Vertical);
            }
            moePanel->showView(parser.value(view));
        }
        if (parser.isSet(compareView))
            if (auto* d = window.compareDock()) {
                d->show();
                d->raise();
                if (!d->setMode(parser.value(compareView)))
                    qWarning("--compare-view %s: use delta, state-norm or attention", qPrintable(parser.value(compareView)));
                window.resizeDocks({d}, {int(window.height() * 0.62)}, Qt::Vertical);
            }
        if (parser.isSet(raise))
            if (auto* d = window.findChild<QDockWidget*>(parser.value(raise))) {
                d->show();
                d->raise();
            }
    };
    if (parser.isSet(finetune)) {
        // --finetune: show the page, train, and (with --screenshot) grab once the comparison is in
        auto* page = window.finetunePage();
        QObject::connect(&window, &archlens::ui::MainWindow::modelReady, &window, [&, page] {
            window.showFinetune();
            page->setDataPath(QFileInfo(parser.value(finetune)).absoluteFilePath());
            page->setTraining(parser.isSet(finetuneSteps) ? parser.value(finetuneSteps).toInt() : 100, 8, 64, 0.01);
            if (parser.isSet(prompt))
                page->setComparePrompt(parser.value(prompt));
        });
        QObject::connect(page, &archlens::ui::FinetunePage::modelPrepared, page, [page] { page->start(); });
        page->setConfirmHandler([](const QString&) { return true; }); // a scripted run: nothing to keep
        if (parser.isSet(screenshot)) {
            const QString file = parser.value(screenshot);
            auto shoot = [&window, file] {
                window.showFinetune(); // in front of the scan views the run raised
                QTimer::singleShot(400, &window, [&window, file] {
                    window.grab().save(file);
                    QApplication::quit();
                });
            };
            QObject::connect(page, &archlens::ui::FinetunePage::comparisonReady, page, shoot);
            QObject::connect(page, &archlens::ui::FinetunePage::failed, page, shoot);
        }
    } else if (parser.isSet(screenshot)) {
        const QString file = parser.value(screenshot);
        auto grab = [&window, file, &pose, moePanel] {
            pose();
            // the routing views fill in from their own worker (and corpora take a while): wait for it
            auto* poll = new QTimer(&window);
            auto* waited = new QElapsedTimer;
            waited->start();
            QObject::connect(poll, &QTimer::timeout, &window, [&window, file, moePanel, poll, waited] {
                const bool busy = (moePanel && moePanel->isBusy()) || window.compareSession()->isBusy();
                if (waited->elapsed() < 600 || (busy && waited->elapsed() < 60000))
                    return;
                poll->stop();
                delete waited;
                window.grab().save(file);
                QApplication::quit();
            });
            poll->start(100);
        };
        QObject::connect(&window, &archlens::ui::MainWindow::runFinished, &window, [&, grab] {
            if (parser.isSet(generateN) && !generated) {
                generated = true;
                QTimer::singleShot(0, &window, [&] { window.generate(); });
                return;
            }
            grab();
        });
        if (!parser.isSet(prompt) && !target.endsWith(".h5"))
            QObject::connect(&window, &archlens::ui::MainWindow::modelReady, &window, grab);
        QObject::connect(&window, &archlens::ui::MainWindow::failed, &window, grab);
    }
    if (parser.isSet(generateN)) {
        // generate uses the spin box's maximum: set through the settings the window reads
        window.setMaxNewTokens(parser.value(generateN).toInt());
    }
    if (parser.isSet(compareModel))
        window.compareSession()->openModel(parser.value(compareModel));
    if (target.endsWith(".h5"))
        window.openTrace(target);
    else
        window.openModel(target);
    return app.exec();
}
