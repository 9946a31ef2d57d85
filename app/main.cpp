// archlens: the GUI. Opens the bundled default model unless a folder (or a trace) is given.
#include <QApplication>
#include <QCommandLineParser>
#include <QDir>
#include <QDockWidget>
#include <QFileInfo>
#include <QStyleFactory>
#include <QTimer>

#include "bench_ui.h"
#include "main_window.h"
#include "session/selection.h"
#include "views/figure_widget.h"

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
    parser.addPositionalArgument("model", "Model folder or .h5 trace to open (default: the bundled demo model)");
    QCommandLineOption prompt("prompt", "Prompt to run once the model is loaded", "text");
    QCommandLineOption screenshot("screenshot", "Save a screenshot of the window to FILE and quit (for docs and tests)",
                                  "file");
    QCommandLineOption layer("layer", "Layer the views show", "L");
    QCommandLineOption token("token", "Token the cursor starts on", "t");
    QCommandLineOption channel("channel", "Channel the stepper and charts follow", "c");
    QCommandLineOption dark("dark", "Use the dark palette");
    QCommandLineOption raise("raise", "Dock to bring to the front for the screenshot (e.g. dock.channels)", "name");
    QCommandLineOption generateN("generate", "After the prompt, generate N tokens", "N");
    QCommandLineOption bench("bench-ui", "Measure playback frame times and event-loop stalls, print them, and quit");
    parser.addOptions({prompt, screenshot, layer, token, channel, dark, raise, generateN, bench});
    parser.process(app);

    archlens::ui::MainWindow window;
    window.setBundledModelsDir(bundledModelsDir());
    const QStringList args = parser.positionalArguments();
    const QString target = args.isEmpty() ? bundledModelsDir() + "/mamba-demo-untrained" : args.front();
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
    bool generated = false;
    auto pose = [&] {
        if (parser.isSet(layer))
            window.selection()->setLayer(parser.value(layer).toInt());
        if (parser.isSet(channel))
            window.selection()->setChannel(parser.value(channel).toInt());
        if (parser.isSet(token))
            window.selection()->setToken(parser.value(token).toInt());
        if (parser.isSet(raise))
            if (auto* d = window.findChild<QDockWidget*>(parser.value(raise))) {
                d->show();
                d->raise();
            }
    };
    if (parser.isSet(screenshot)) {
        const QString file = parser.value(screenshot);
        auto grab = [&window, file, &pose] {
            pose();
            QTimer::singleShot(600, &window, [&window, file] {
                window.grab().save(file);
                QApplication::quit();
            });
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
    if (target.endsWith(".h5"))
        window.openTrace(target);
    else
        window.openModel(target);
    return app.exec();
}
