// archlens: the GUI. Opens the bundled default model unless a folder is given.
#include <QApplication>
#include <QCommandLineParser>
#include <QDir>
#include <QFileInfo>
#include <QTimer>

#include "main_window.h"

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

    QCommandLineParser parser;
    parser.setApplicationDescription("See inside Mamba, mixture-of-experts and Transformer models while they run.");
    parser.addHelpOption();
    parser.addVersionOption();
    parser.addPositionalArgument("model", "Model folder to open (default: the bundled demo model)");
    QCommandLineOption prompt("prompt", "Prompt to run once the model is loaded", "text");
    QCommandLineOption screenshot("screenshot", "Save a screenshot of the window to FILE and quit (for docs and tests)",
                                  "file");
    parser.addOption(prompt);
    parser.addOption(screenshot);
    parser.process(app);

    archlens::ui::MainWindow window;
    const QStringList args = parser.positionalArguments();
    const QString model = args.isEmpty() ? bundledModelsDir() + "/mamba-demo-untrained" : args.front();
    window.show();

    if (parser.isSet(prompt))
        window.setPrompt(parser.value(prompt));
    QObject::connect(&window, &archlens::ui::MainWindow::modelReady, &window, [&] {
        if (parser.isSet(prompt))
            window.runPrompt();
    });
    if (parser.isSet(screenshot)) {
        const QString file = parser.value(screenshot);
        auto grab = [&window, file] {
            QTimer::singleShot(300, &window, [&window, file] {
                window.grab().save(file);
                QApplication::quit();
            });
        };
        QObject::connect(&window, parser.isSet(prompt) ? &archlens::ui::MainWindow::runFinished
                                                       : &archlens::ui::MainWindow::modelReady,
                         &window, grab);
        QObject::connect(&window, &archlens::ui::MainWindow::failed, &window, grab);
    }
    window.openModel(model);
    return app.exec();
}
