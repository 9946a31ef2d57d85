// The Fine-tune page in the main window: a dock (tabbed with the bottom views) reached from
// Train → Fine-tune with LoRA…, following the loaded model.
#include <QDockWidget>
#include <QFileInfo>
#include <QLineEdit>
#include <QMenu>
#include <QMenuBar>

#include <algorithm>

#include "finetune/finetune_page.h"
#include "main_window.h"

namespace archlens::ui {

QString finetuneUnsupportedText(const ModelSummary& s);

void MainWindow::buildFinetuneDock()
{
    auto* dock = new QDockWidget(tr("Fine-tune (LoRA)"), this);
    dock->setObjectName("dock.finetune");
    m_finetune = new FinetunePage(dock);
    dock->setWidget(m_finetune);
    addDockWidget(Qt::BottomDockWidgetArea, dock);
    if (auto* b = findChild<QDockWidget*>("dock.B"))
        tabifyDockWidget(b, dock);
    dock->hide(); // until asked for: it loads a trainable copy of the model when shown
    m_viewMenu->addAction(dock->toggleViewAction());

    auto* train = new QMenu(tr("&Train"), this);
    train->addAction(tr("&Fine-tune with LoRA…"), this, &MainWindow::showFinetune)
        ->setShortcut(QKeySequence(tr("Ctrl+Shift+F")));
    QAction* before = nullptr; // keep Help last
    for (QAction* a : menuBar()->actions())
        if (a->menu() && a->text().contains(QLatin1String("Help")))
            before = a;
    menuBar()->insertMenu(before, train);

    connect(m_session, &SessionController::modelLoaded, this, [this](const ModelSummary& s) {
        const bool mamba = !s.layerMixer.isEmpty() &&
                           std::all_of(s.layerMixer.begin(), s.layerMixer.end(),
                                       [](const QString& m) { return m == QLatin1String("mamba"); });
        if (s.path == m_finetune->modelDir() && mamba != m_finetune->isUnsupported())
            return;
        if (!m_finetune->confirmDiscard(tr("follow the newly opened model")))
            return; // the page keeps its model and its running fine-tune
        if (mamba)
            m_finetune->setModelDir(s.path);
        else
            m_finetune->setUnsupportedModel(s.path, finetuneUnsupportedText(s));
    });
}

QString finetuneUnsupportedText(const ModelSummary& s)
{
    QString family = s.architecture;
    for (const char* suffix : {"ForCausalLM", "LMHeadModel", "Model"})
        if (family.endsWith(QLatin1String(suffix)) && family.size() > int(qstrlen(suffix))) {
            family.chop(int(qstrlen(suffix)));
            break;
        }
    if (family.isEmpty())
        family = QObject::tr("model without Mamba layers");
    const auto mambaLayers = std::count(s.layerMixer.begin(), s.layerMixer.end(), QStringLiteral("mamba"));
    const QString what =
        mambaLayers > 0
            ? QObject::tr("this model is a %1 (%2), a hybrid: only %3 of its %4 layers are Mamba")
                  .arg(family, s.architecture)
                  .arg(mambaLayers)
                  .arg(s.layerMixer.size())
            : s.architecture.isEmpty() || family == s.architecture
                  ? QObject::tr("this model is a %1").arg(family)
                  : QObject::tr("this model is a %1 (%2)").arg(family, s.architecture);
    return QObject::tr("LoRA fine-tuning is available for Mamba models; %1. Open a Mamba model (File → Open model "
                       "folder) to fine-tune it.")
        .arg(what);
}

void MainWindow::showFinetune()
{
    auto* dock = findChild<QDockWidget*>("dock.finetune");
    if (!dock)
        return;
    if (m_finetune->modelDir().isEmpty() && !m_session->summary().path.isEmpty())
        m_finetune->setModelDir(m_session->summary().path);
    dock->show();
    dock->raise();
    // as tall as the window allows without growing past its size (1400×900 by default): the rest
    // keeps its minimum, the page gets every other pixel (at most 60 % of the window)
    const int others = minimumSizeHint().height() - dock->minimumSizeHint().height();
    const int room = std::max(dock->minimumSizeHint().height(), height() - others);
    resizeDocks({dock}, {std::min(room, int(height() * 0.6))}, Qt::Vertical);
    m_finetune->setComparePrompt(m_prompt->text());
}

bool MainWindow::confirmCloseFinetune() { return !m_finetune || m_finetune->confirmDiscard(tr("quit")); }

} // namespace archlens::ui
