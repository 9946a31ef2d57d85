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
        if (!mamba || s.path == m_finetune->modelDir())
            return;
        if (m_finetune->confirmDiscard(tr("follow the newly opened model")))
            m_finetune->setModelDir(s.path); // else the page keeps its model and adapter
    });
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
    resizeDocks({dock}, {int(height() * 0.6)}, Qt::Vertical);
    m_finetune->setComparePrompt(m_prompt->text());
}

bool MainWindow::confirmCloseFinetune() { return !m_finetune || m_finetune->confirmDiscard(tr("quit")); }

} // namespace archlens::ui
