// MainWindow, second half: the menus, the view docks, the memory panel, the comparison
// session and export. Split from main_window.cpp to keep each file readable.
#include <QAction>
#include <QActionGroup>
#include <QApplication>
#include <QComboBox>
#include <QDialog>
#include <QDialogButtonBox>
#include <QDir>
#include <QDockWidget>
#include <QFileDialog>
#include <QFileInfo>
#include <QFormLayout>
#include <QHBoxLayout>
#include <QHeaderView>
#include <QLabel>
#include <QLineEdit>
#include <QListWidget>
#include <QMenuBar>
#include <QMessageBox>
#include <QPushButton>
#include <QSettings>
#include <QSpinBox>
#include <QSplitter>
#include <QStatusBar>
#include <QStyleFactory>
#include <QTableWidget>
#include <QTreeWidget>
#include <QVBoxLayout>

#include "controls/playback_controller.h"
#include "export/exporter.h"
#include "formats/hf_cache.h"
#include "main_window.h"
#include "main_window_util.h"
#include "compare_dock.h"
#include "layout_controller.h"
#include "views/channel_charts.h"
#include "views/figure_widget.h"
#include "views/heatmap_figures.h"
#include "views/horizon_figure.h"
#include "views/stepper_figure.h"

namespace archlens::ui {

void MainWindow::buildMenus()
{
    auto* file = menuBar()->addMenu(tr("&File"));
    file->addAction(tr("&Open model folder…"), this, &MainWindow::chooseModelFolder)->setShortcut(QKeySequence::Open);
    file->addAction(tr("Open from the &Hugging Face cache…"), this, &MainWindow::chooseCachedModel);
    m_bundledMenu = file->addMenu(tr("&Bundled models"));
    m_recentMenu = file->addMenu(tr("&Recent models"));
    file->addSeparator();
    file->addAction(tr("Open &trace…"), this, [this] {
        const QString f = QFileDialog::getOpenFileName(this, tr("Open a trace"), QString(), tr("HDF5 traces (*.h5 *.hdf5)"));
        if (!f.isEmpty())
            openTrace(f);
    });
    file->addAction(tr("&Save trace…"), this, [this] {
        QString f = QFileDialog::getSaveFileName(this, tr("Save the trace"), QStringLiteral("trace.h5"),
                                                 tr("HDF5 traces (*.h5)"));
        if (!f.isEmpty())
            saveTrace(f.endsWith(".h5") ? f : f + ".h5");
    })->setShortcut(QKeySequence::Save);
    file->addSeparator();
    file->addAction(tr("&Export view…"), this, [this] {
        FigureWidget* w = m_lastFocusedView ? m_lastFocusedView : m_views.value("delta");
        if (w)
            exportFigures({w->figure()});
    })->setShortcut(QKeySequence(tr("Ctrl+E")));
    file->addAction(tr("Export &sheet (Δ, state, stepper)…"), this, [this] {
        QVector<Figure*> figs;
        for (const char* k : {"delta", "state", "stepper"})
            if (FigureWidget* w = m_views.value(k))
                figs.append(w->figure());
        exportFigures(figs);
    });
    file->addSeparator();
    file->addAction(tr("&Quit"), this, &QWidget::close)->setShortcut(QKeySequence::Quit);

    auto* session = menuBar()->addMenu(tr("&Session"));
    session->addAction(tr("&Run prompt"), this, &MainWindow::runPrompt)->setShortcut(QKeySequence(tr("Ctrl+Return")));
    session->addAction(tr("Step &in (first token only)"), this, &MainWindow::stepIn);
    session->addAction(tr("&Generate"), this, &MainWindow::generate)->setShortcut(QKeySequence(tr("Ctrl+G")));
    session->addAction(tr("&Cancel"), this, [this] {
        m_session->cancel();
        m_compare->cancel();
    })->setShortcut(QKeySequence(Qt::Key_Escape));
    session->addSeparator();
    session->addAction(tr("Open a model in the &comparison session…"), this, [this] {
        const QString dir = QFileDialog::getExistingDirectory(this, tr("Model for the comparison session"));
        if (!dir.isEmpty())
            m_compare->openModel(dir, m_backend->currentData().toString());
    });

    m_viewMenu = menuBar()->addMenu(tr("&View"));
    m_darkAction = m_viewMenu->addAction(tr("&Dark palette"));
    m_darkAction->setCheckable(true);
    m_darkAction->setChecked(QSettings().value("view/dark", false).toBool());
    connect(m_darkAction, &QAction::toggled, this, &MainWindow::setDarkMode);
    m_logDelta = m_viewMenu->addAction(tr("Δ on a &log scale"));
    m_logDelta->setCheckable(true);
    m_logDelta->setChecked(true);
    m_freezeState = m_viewMenu->addAction(tr("&Freeze the state's colour range"));
    m_freezeState->setCheckable(true);
    m_freezeState->setShortcut(QKeySequence(tr("F")));
    m_stateAllTokens = m_viewMenu->addAction(tr("State colour range over &all tokens"));
    m_stateAllTokens->setCheckable(true);
    auto* deltaMap = m_viewMenu->addMenu(tr("Δ &colormap"));
    auto* group = new QActionGroup(this);
    for (auto [name, map] : {std::pair{tr("viridis"), Colormap::Viridis}, std::pair{tr("magma"), Colormap::Magma}}) {
        QAction* a = deltaMap->addAction(name);
        a->setCheckable(true);
        a->setChecked(map == Colormap::Viridis);
        group->addAction(a);
        connect(a, &QAction::triggered, this, [this, map] {
            if (FigureWidget* w = m_views.value("delta")) {
                static_cast<HeatmapFigureBase*>(w->figure())->setColormap(map);
                w->update();
            }
        });
    }
    m_viewMenu->addSeparator();
    auto* reset = m_viewMenu->addAction(tr("&Reset layout"), this, [this] { m_layout->resetLayout(); });
    reset->setObjectName("action.resetLayout");
    reset->setToolTip(tr("The default arrangement of the docks for this model's architecture"));
    m_viewMenu->addSeparator();

    auto* help = menuBar()->addMenu(tr("&Help"));
    help->addAction(tr("&About ArchLens"), this, [this] {
        QMessageBox::about(this, tr("About ArchLens"),
                           tr("<b>ArchLens</b> %1<p>See inside Mamba, mixture-of-experts and Transformer models "
                              "while they run.</p>")
                               .arg(QApplication::applicationVersion()));
    });
}

void MainWindow::buildViews()
{
    auto makeView = [this](std::unique_ptr<Figure> f) {
        auto* w = new FigureWidget(std::move(f), m_session->model(), &m_sel);
        w->setObjectName("view." + w->figure()->key());
        m_views.insert(w->figure()->key(), w);
        connect(w, &FigureWidget::exportRequested, this, [this](Figure* fig) { exportFigures({fig}); });
        w->installEventFilter(this);
        return w;
    };
    auto dock = [this](const QString& title, const QString& name, QWidget* w, Qt::DockWidgetArea area) {
        auto* d = new QDockWidget(title, this);
        d->setObjectName(name);
        d->setWidget(w);
        addDockWidget(area, d);
        m_viewMenu->addAction(d->toggleViewAction());
        return d;
    };
    const TraceModel* model = m_session->model();

    // Δ in the centre, under the tokens: the first thing a student should see
    FigureWidget* delta = makeView(std::make_unique<TokenHeatmapFigure>(model, &m_sel, Quantity::Delta));
    static_cast<HeatmapFigureBase*>(delta->figure())->setLogScale(true);
    if (auto* split = findChild<QSplitter*>("splitter.center")) {
        split->addWidget(delta);
        split->setStretchFactor(0, 1);
        split->setStretchFactor(1, 3);
        split->setSizes({170, 430});
    }
    connect(m_logDelta, &QAction::toggled, this, [delta](bool on) {
        static_cast<HeatmapFigureBase*>(delta->figure())->setLogScale(on);
        delta->update();
    });

    FigureWidget* state = makeView(std::make_unique<StateFigure>(model, &m_sel));
    auto* stateDock = dock(tr("State h"), "dock.state", state, Qt::RightDockWidgetArea);
    connect(m_freezeState, &QAction::toggled, this, [state](bool on) {
        static_cast<HeatmapFigureBase*>(state->figure())->setFrozen(on);
        state->update();
    });
    connect(m_stateAllTokens, &QAction::toggled, this, [state](bool on) {
        static_cast<StateFigure*>(state->figure())->setRange(on ? StateFigure::Range::AllTokens : StateFigure::Range::ThisToken);
        state->update();
    });

    QDockWidget* first = nullptr;
    for (Quantity q : {Quantity::B, Quantity::C, Quantity::Gate, Quantity::StateNorm}) {
        FigureWidget* w = makeView(std::make_unique<TokenHeatmapFigure>(model, &m_sel, q));
        const QString title = q == Quantity::B ? tr("B") : q == Quantity::C ? tr("C") : q == Quantity::Gate ? tr("Gate") : tr("‖h‖ over time");
        auto* d = dock(title, "dock." + w->figure()->key(), w, Qt::BottomDockWidgetArea);
        if (first)
            tabifyDockWidget(first, d);
        else
            first = d;
    }
    FigureWidget* horizon = makeView(std::make_unique<HorizonFigure>(model, &m_sel));
    tabifyDockWidget(first, dock(tr("Memory horizon"), "dock.horizon", horizon, Qt::BottomDockWidgetArea));
    FigureWidget* stepper = makeView(std::make_unique<StepperFigure>(model, &m_sel));
    auto* stepDock = dock(tr("Scan stepper"), "dock.stepper", stepper, Qt::BottomDockWidgetArea);
    FigureWidget* charts = makeView(std::make_unique<ChannelChartsFigure>(model, &m_sel));
    auto* chartDock = dock(tr("Channel charts"), "dock.channels", charts, Qt::BottomDockWidgetArea);
    splitDockWidget(first, stepDock, Qt::Horizontal);
    tabifyDockWidget(stepDock, chartDock);
    chartDock->raise();
    first->raise();

    auto* structureDock = new QDockWidget(tr("Model structure"), this);
    structureDock->setObjectName("dock.structure");
    m_structure = new QTreeWidget;
    m_structure->setHeaderLabels({tr("Part"), tr("Shape"), tr("Stored as")});
    m_structure->header()->setSectionResizeMode(0, QHeaderView::Stretch);
    m_structure->header()->setSectionResizeMode(1, QHeaderView::ResizeToContents);
    m_structure->header()->setSectionResizeMode(2, QHeaderView::ResizeToContents);
    m_structure->header()->setStretchLastSection(false);
    structureDock->setWidget(m_structure);
    addDockWidget(Qt::LeftDockWidgetArea, structureDock);
    m_viewMenu->addAction(structureDock->toggleViewAction());

    auto* factsDock = new QDockWidget(tr("Model facts"), this);
    factsDock->setObjectName("dock.facts");
    m_facts = new QTableWidget(0, 2);
    m_facts->setHorizontalHeaderLabels({tr("Fact"), tr("Value")});
    m_facts->horizontalHeader()->setSectionResizeMode(1, QHeaderView::Stretch);
    m_facts->verticalHeader()->hide();
    m_facts->setEditTriggers(QAbstractItemView::NoEditTriggers);
    factsDock->setWidget(m_facts);
    addDockWidget(Qt::LeftDockWidgetArea, factsDock);
    tabifyDockWidget(structureDock, factsDock);
    structureDock->raise();
    m_viewMenu->addAction(factsDock->toggleViewAction());
    structureDock->hide(); // the views need the room; View menu brings it back
    factsDock->hide();
    resizeDocks({stateDock}, {400}, Qt::Horizontal);
    resizeDocks({stepDock}, {340}, Qt::Vertical);
}

bool MainWindow::eventFilter(QObject* o, QEvent* e)
{
    if (e->type() == QEvent::FocusIn || e->type() == QEvent::MouseButtonPress)
        if (auto* w = qobject_cast<FigureWidget*>(o))
            m_lastFocusedView = w;
    return QMainWindow::eventFilter(o, e);
}

void MainWindow::buildMemoryDock()
{
    auto* box = new QWidget;
    auto* form = new QFormLayout(box);
    m_memoryCap = new QSpinBox;
    m_memoryCap->setObjectName("memoryCap");
    m_memoryCap->setRange(16, 1 << 20);
    m_memoryCap->setSingleStep(64);
    m_memoryCap->setSuffix(tr(" MiB"));
    m_memoryCap->setValue(QSettings().value("memory/capMiB", 1024).toInt());
    m_memoryCap->setToolTip(tr("What the views keep of a run: the state h (T·E·N floats per layer, the big one), the other "
                               "probes and the state checkpoints. Over the cap the oldest states go first, then the oldest "
                               "tokens' other probes; scrubbing back recomputes them from the nearest checkpoint."));
    auto apply = [this](int mib) {
        m_session->setCapBytes(uint64_t(mib) << 20);
        m_compare->setCapBytes(uint64_t(mib) << 20);
        QSettings().setValue("memory/capMiB", mib);
        updateStatus();
    };
    connect(m_memoryCap, &QSpinBox::valueChanged, this, apply);
    apply(m_memoryCap->value());
    form->addRow(tr("Memory cap"), m_memoryCap);
    m_memoryText = new QLabel;
    m_memoryText->setWordWrap(true);
    m_memoryText->setMinimumHeight(m_memoryText->fontMetrics().lineSpacing() * 8); // every line, never clipped
    form->addRow(m_memoryText);
    auto* d = new QDockWidget(tr("Memory"), this);
    d->setObjectName("dock.memory");
    d->setWidget(box);
    addDockWidget(Qt::RightDockWidgetArea, d);
    m_viewMenu->addAction(d->toggleViewAction());
    d->hide();
}

void MainWindow::buildCompareDock(const MoeSource* srcA)
{
    m_compareDock = new CompareDock(m_session, m_compare, &m_sel, srcA, this);
    m_compareDock->setProviders([this] { return m_prompt->text(); }, [this] { return m_backend->currentData().toString(); },
                                [this] { return generationSettings(); });
    addDockWidget(Qt::BottomDockWidgetArea, m_compareDock);
    m_viewMenu->addAction(m_compareDock->toggleViewAction());
}

void MainWindow::exportFigures(const QVector<Figure*>& figures)
{
    if (figures.isEmpty())
        return;
    QDialog dlg(this);
    dlg.setWindowTitle(tr("Export"));
    auto* form = new QFormLayout(&dlg);
    auto* w = new QSpinBox;
    w->setRange(16, 20000);
    w->setValue(QSettings().value("export/width", 1600).toInt());
    auto* h = new QSpinBox;
    h->setRange(16, 20000);
    h->setValue(QSettings().value("export/height", figures.size() > 1 ? 1800 : 900).toInt());
    auto* dpi = new QSpinBox;
    dpi->setRange(24, 2400);
    dpi->setValue(QSettings().value("export/dpi", 150).toInt());
    form->addRow(tr("Width (pixels)"), w);
    form->addRow(tr("Height (pixels)"), h);
    form->addRow(tr("DPI"), dpi);
    form->addRow(new QLabel(tr("The format follows the file name: .png, .svg, .pdf, or .csv for the numbers.")));
    auto* buttons = new QDialogButtonBox(QDialogButtonBox::Ok | QDialogButtonBox::Cancel);
    form->addRow(buttons);
    connect(buttons, &QDialogButtonBox::accepted, &dlg, &QDialog::accept);
    connect(buttons, &QDialogButtonBox::rejected, &dlg, &QDialog::reject);
    if (dlg.exec() != QDialog::Accepted)
        return;
    const QString file = QFileDialog::getSaveFileName(this, tr("Export to"), figures.front()->key() + ".png",
                                                      tr("PNG (*.png);;SVG (*.svg);;PDF (*.pdf);;CSV numbers (*.csv)"));
    if (file.isEmpty())
        return;
    QSettings().setValue("export/width", w->value());
    QSettings().setValue("export/height", h->value());
    QSettings().setValue("export/dpi", dpi->value());
    try {
        ui::exportFigures(file, figures, ExportOptions{QSize(w->value(), h->value()), dpi->value()});
        statusBar()->showMessage(tr("Exported %1").arg(file), 5000);
    } catch (const std::exception& e) {
        QMessageBox::warning(this, tr("Export failed"), QString::fromUtf8(e.what()));
    }
}

void MainWindow::chooseModelFolder()
{
    const QString dir = QFileDialog::getExistingDirectory(this, tr("Open a model folder (config.json + *.safetensors)"));
    if (!dir.isEmpty())
        openModel(dir);
}

void MainWindow::chooseCachedModel()
{
    QDialog dlg(this);
    dlg.setWindowTitle(tr("Models in the Hugging Face cache"));
    auto* v = new QVBoxLayout(&dlg);
    const QString cache = QString::fromStdString(hfHubCacheDir().string());
    v->addWidget(new QLabel(tr("Cache: %1 (HF_HUB_CACHE, else HF_HOME/hub, else ~/.cache/huggingface/hub)").arg(cache)));
    auto* list = new QListWidget;
    try {
        for (const CachedModel& m : listCachedModels()) {
            auto* item = new QListWidgetItem(QStringLiteral("%1  @%2").arg(QString::fromStdString(m.repoId),
                                                                            QString::fromStdString(m.revision).left(10)));
            item->setData(Qt::UserRole, QString::fromStdString(m.path.string()));
            list->addItem(item);
        }
    } catch (const std::exception& e) {
        v->addWidget(new QLabel(QString::fromUtf8(e.what())));
    }
    if (list->count() == 0)
        v->addWidget(new QLabel(tr("No models are cached yet.")));
    v->addWidget(list);
    auto* buttons = new QDialogButtonBox(QDialogButtonBox::Open | QDialogButtonBox::Cancel);
    v->addWidget(buttons);
    connect(buttons, &QDialogButtonBox::accepted, &dlg, &QDialog::accept);
    connect(buttons, &QDialogButtonBox::rejected, &dlg, &QDialog::reject);
    connect(list, &QListWidget::itemDoubleClicked, &dlg, &QDialog::accept);
    if (dlg.exec() == QDialog::Accepted && list->currentItem())
        openModel(list->currentItem()->data(Qt::UserRole).toString());
}

void MainWindow::setBundledModelsDir(const QString& dir)
{
    m_bundledDir = dir;
    m_bundledMenu->clear();
    for (const QFileInfo& fi : QDir(dir).entryInfoList(QDir::Dirs | QDir::NoDotAndDotDot, QDir::Name))
        if (QFileInfo::exists(fi.filePath() + "/config.json"))
            m_bundledMenu->addAction(fi.fileName(), this, [this, p = fi.filePath()] { openModel(p); });
    m_bundledMenu->setEnabled(!m_bundledMenu->isEmpty());
}

void MainWindow::rememberRecent(const QString& path)
{
    QSettings s;
    QStringList recent = s.value("recent/models").toStringList();
    recent.removeAll(path);
    recent.prepend(path);
    while (recent.size() > 8)
        recent.removeLast();
    s.setValue("recent/models", recent);
    rebuildRecentMenu();
}

void MainWindow::rebuildRecentMenu()
{
    m_recentMenu->clear();
    for (const QString& p : QSettings().value("recent/models").toStringList())
        m_recentMenu->addAction(p, this, [this, p] { openModel(p); });
    m_recentMenu->setEnabled(!m_recentMenu->isEmpty());
}

void MainWindow::setDarkMode(bool on)
{
    // Qt 6.4 has no colour-scheme hint: set the palette ourselves (Fusion honours it fully)
    QSettings().setValue("view/dark", on);
    if (!on) {
        QApplication::setPalette(QApplication::style()->standardPalette());
        return;
    }
    QPalette p;
    const QColor window(45, 45, 48), base(30, 30, 32), text(230, 230, 230), mid(90, 90, 95);
    p.setColor(QPalette::Window, window);
    p.setColor(QPalette::WindowText, text);
    p.setColor(QPalette::Base, base);
    p.setColor(QPalette::AlternateBase, QColor(55, 55, 60));
    p.setColor(QPalette::ToolTipBase, QColor(60, 60, 64));
    p.setColor(QPalette::ToolTipText, text);
    p.setColor(QPalette::Text, text);
    p.setColor(QPalette::PlaceholderText, QColor(160, 160, 165));
    p.setColor(QPalette::Button, window);
    p.setColor(QPalette::ButtonText, text);
    p.setColor(QPalette::BrightText, Qt::red);
    p.setColor(QPalette::Mid, mid);
    p.setColor(QPalette::Highlight, QColor(42, 130, 218));
    p.setColor(QPalette::HighlightedText, Qt::white);
    p.setColor(QPalette::Link, QColor(90, 170, 255));
    p.setColor(QPalette::Disabled, QPalette::Text, QColor(120, 120, 120));
    p.setColor(QPalette::Disabled, QPalette::ButtonText, QColor(120, 120, 120));
    QApplication::setPalette(p);
}

} // namespace archlens::ui
