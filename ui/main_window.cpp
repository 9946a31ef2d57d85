#include "main_window.h"

#include <QAction>
#include <QApplication>
#include <QCloseEvent>
#include <QDockWidget>
#include <QDragEnterEvent>
#include <QFileDialog>
#include <QFileInfo>
#include <QHBoxLayout>
#include <QHeaderView>
#include <QLabel>
#include <QLineEdit>
#include <QMenuBar>
#include <QMessageBox>
#include <QMimeData>
#include <QProgressBar>
#include <QPushButton>
#include <QScrollArea>
#include <QSettings>
#include <QStatusBar>
#include <QTableWidget>
#include <QTreeWidget>
#include <QVBoxLayout>

#include "token_strip.h"

namespace archlens::ui {

static QString humanBytes(qint64 b)
{
    if (b >= (qint64(1) << 30))
        return QStringLiteral("%1 GiB").arg(double(b) / double(qint64(1) << 30), 0, 'f', 2);
    if (b >= (1 << 20))
        return QStringLiteral("%1 MiB").arg(double(b) / double(1 << 20), 0, 'f', 1);
    return QStringLiteral("%1 KiB").arg(double(b) / 1024.0, 0, 'f', 1);
}

static QString humanCount(qint64 n)
{
    if (n >= 1000000000)
        return QStringLiteral("%1B").arg(double(n) / 1e9, 0, 'f', 2);
    if (n >= 1000000)
        return QStringLiteral("%1M").arg(double(n) / 1e6, 0, 'f', 2);
    if (n >= 1000)
        return QStringLiteral("%1K").arg(double(n) / 1e3, 0, 'f', 1);
    return QString::number(n);
}

MainWindow::MainWindow(QWidget* parent)
    : QMainWindow(parent)
{
    buildUi();
    m_worker = new ModelWorker;
    m_worker->moveToThread(&m_thread);
    connect(&m_thread, &QThread::finished, m_worker, &QObject::deleteLater);
    connect(this, &MainWindow::requestLoad, m_worker, &ModelWorker::load);
    connect(this, &MainWindow::requestRun, m_worker, &ModelWorker::run);
    connect(m_worker, &ModelWorker::loaded, this, &MainWindow::onLoaded);
    connect(m_worker, &ModelWorker::ran, this, &MainWindow::onRan);
    connect(m_worker, &ModelWorker::failed, this, &MainWindow::onFailed);
    connect(m_worker, &ModelWorker::progress, this, [this](int done, int total) {
        m_progress->setRange(0, total);
        m_progress->setValue(done);
    });
    m_thread.setObjectName("archlens-model-worker");
    m_thread.start();

    QSettings settings;
    restoreGeometry(settings.value("window/geometry").toByteArray());
    restoreState(settings.value("window/state").toByteArray());
    setAcceptDrops(true);
}

MainWindow::~MainWindow()
{
    m_worker->cancel = true;
    m_thread.quit();
    m_thread.wait();
}

void MainWindow::buildUi()
{
    setWindowTitle(tr("ArchLens"));
    resize(1200, 760);

    auto* fileMenu = menuBar()->addMenu(tr("&File"));
    auto* open = fileMenu->addAction(tr("&Open model folder…"), this, &MainWindow::chooseModelFolder);
    open->setShortcut(QKeySequence::Open);
    fileMenu->addSeparator();
    auto* quit = fileMenu->addAction(tr("&Quit"), this, &QWidget::close);
    quit->setShortcut(QKeySequence::Quit);
    auto* helpMenu = menuBar()->addMenu(tr("&Help"));
    helpMenu->addAction(tr("&About ArchLens"), this, [this] {
        QMessageBox::about(this, tr("About ArchLens"),
                           tr("<b>ArchLens</b> %1<p>See inside Mamba, mixture-of-experts and Transformer models "
                              "while they run.</p>")
                               .arg(QApplication::applicationVersion()));
    });

    auto* central = new QWidget;
    auto* layout = new QVBoxLayout(central);
    auto* header = new QHBoxLayout;
    m_title = new QLabel(tr("No model loaded"));
    QFont tf = m_title->font();
    tf.setPointSizeF(tf.pointSizeF() * 1.4);
    tf.setBold(true);
    m_title->setFont(tf);
    m_badge = new QLabel;
    m_badge->setStyleSheet("QLabel { background: #b35900; color: white; border-radius: 4px; padding: 2px 8px; "
                           "font-weight: bold; }");
    m_badge->hide();
    header->addWidget(m_title);
    header->addWidget(m_badge);
    header->addStretch();
    layout->addLayout(header);

    auto* promptRow = new QHBoxLayout;
    m_prompt = new QLineEdit;
    m_prompt->setPlaceholderText(tr("Type a prompt…"));
    m_prompt->setClearButtonEnabled(true);
    m_run = new QPushButton(tr("Run"));
    m_run->setDefault(true);
    m_cancel = new QPushButton(tr("Cancel"));
    m_cancel->setEnabled(false);
    promptRow->addWidget(new QLabel(tr("Prompt:")));
    promptRow->addWidget(m_prompt, 1);
    promptRow->addWidget(m_run);
    promptRow->addWidget(m_cancel);
    layout->addLayout(promptRow);
    connect(m_run, &QPushButton::clicked, this, &MainWindow::runPrompt);
    connect(m_prompt, &QLineEdit::returnPressed, this, &MainWindow::runPrompt);
    connect(m_cancel, &QPushButton::clicked, this, [this] { m_worker->cancel = true; });

    auto* tokensLabel = new QLabel(tr("<b>Tokens</b> — click one, or use ←/→, to see what the model predicts next"));
    layout->addWidget(tokensLabel);
    m_strip = new TokenStrip;
    m_strip->setObjectName("tokenStrip");
    auto* scroll = new QScrollArea;
    scroll->setWidget(m_strip);
    scroll->setWidgetResizable(true);
    scroll->setMinimumHeight(90);
    layout->addWidget(scroll, 2);
    connect(m_strip, &TokenStrip::currentChanged, this, &MainWindow::showPredictions);

    m_predTitle = new QLabel(tr("<b>Top-5 next-token predictions</b>"));
    layout->addWidget(m_predTitle);
    m_predictions = new QTableWidget(0, 3);
    m_predictions->setObjectName("predictions");
    m_predictions->setHorizontalHeaderLabels({tr("Token"), tr("Id"), tr("Probability")});
    m_predictions->horizontalHeader()->setSectionResizeMode(0, QHeaderView::Stretch);
    m_predictions->verticalHeader()->hide();
    m_predictions->setEditTriggers(QAbstractItemView::NoEditTriggers);
    m_predictions->setSelectionMode(QAbstractItemView::NoSelection);
    layout->addWidget(m_predictions, 1);
    setCentralWidget(central);

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

    auto* factsDock = new QDockWidget(tr("Model facts"), this);
    factsDock->setObjectName("dock.facts");
    m_facts = new QTableWidget(0, 2);
    m_facts->setHorizontalHeaderLabels({tr("Fact"), tr("Value")});
    m_facts->horizontalHeader()->setSectionResizeMode(1, QHeaderView::Stretch);
    m_facts->verticalHeader()->hide();
    m_facts->setEditTriggers(QAbstractItemView::NoEditTriggers);
    factsDock->setWidget(m_facts);
    addDockWidget(Qt::RightDockWidgetArea, factsDock);
    resizeDocks({structureDock, factsDock}, {420, 300}, Qt::Horizontal);

    m_statusBackend = new QLabel;
    m_statusMemory = new QLabel;
    m_statusSpeed = new QLabel;
    m_progress = new QProgressBar;
    m_progress->setMaximumWidth(160);
    m_progress->hide();
    statusBar()->addWidget(m_statusBackend, 1);
    statusBar()->addPermanentWidget(m_progress);
    statusBar()->addPermanentWidget(m_statusSpeed);
    statusBar()->addPermanentWidget(m_statusMemory);
}

void MainWindow::chooseModelFolder()
{
    const QString dir = QFileDialog::getExistingDirectory(this, tr("Open a model folder (config.json + *.safetensors)"));
    if (!dir.isEmpty())
        openModel(dir);
}

void MainWindow::openModel(const QString& path)
{
    setBusy(true, tr("Loading %1…").arg(QFileInfo(path).fileName()));
    emit requestLoad(path, QStringLiteral("auto"));
}

void MainWindow::setPrompt(const QString& text) { m_prompt->setText(text); }

void MainWindow::runPrompt()
{
    if (m_busy || m_summary.path.isEmpty())
        return;
    setBusy(true, tr("Running the prompt…"));
    m_progress->show();
    emit requestRun(m_prompt->text());
}

void MainWindow::setBusy(bool busy, const QString& what)
{
    m_busy = busy;
    m_run->setEnabled(!busy);
    m_cancel->setEnabled(busy);
    if (!what.isEmpty())
        statusBar()->showMessage(what);
    if (!busy) {
        statusBar()->clearMessage();
        m_progress->hide();
    }
}

void MainWindow::onLoaded(const ModelSummary& s)
{
    setBusy(false);
    m_summary = s;
    setWindowTitle(tr("ArchLens — %1").arg(s.name));
    m_title->setText(tr("%1  ·  %2").arg(s.name, s.architecture));
    m_badge->setVisible(s.untrained);
    m_badge->setText(s.label.isEmpty() ? tr("untrained") : s.label.toUpper());
    m_badge->setToolTip(tr("Random weights: this model was not trained, so its predictions are noise. "
                           "It shows how the machinery works, not what a trained model has learned."));
    m_statusBackend->setText(tr("Backend: %1").arg(s.backend));
    m_statusMemory->setText(tr("Weights in memory: %1").arg(humanBytes(s.loadedBytes)));
    QSettings().setValue("model/last", s.path);

    // Structure: the embedding, then the layers in order, then the final norm and head.
    m_structure->clear();
    auto* root = new QTreeWidgetItem(m_structure, {s.name, QString(), s.weightDType});
    QMap<int, QVector<QStringList>> perLayer;
    QVector<QStringList> before, after;
    for (const QStringList& t : s.tensors) {
        const int at = t[0].indexOf(QStringLiteral(".layers."));
        if (at >= 0) {
            const int start = at + 8, end = t[0].indexOf('.', start);
            perLayer[t[0].mid(start, end - start).toInt()].append({t[0].mid(end + 1), t[1], t[2]});
        } else {
            (t[0].contains(QStringLiteral("embed")) ? before : after).append(t);
        }
    }
    for (const QStringList& t : before)
        new QTreeWidgetItem(root, t);
    for (auto it = perLayer.cbegin(); it != perLayer.cend(); ++it) {
        const QString mixer = it.key() < s.layerMixer.size() ? s.layerMixer[it.key()] : QString();
        auto* layer = new QTreeWidgetItem(root, {tr("layer %1 · %2").arg(it.key()).arg(mixer)});
        for (const QStringList& t : it.value())
            new QTreeWidgetItem(layer, t);
        if (it == perLayer.cbegin())
            layer->setExpanded(true);
    }
    for (const QStringList& t : after)
        new QTreeWidgetItem(root, t);
    if (s.tiedEmbeddings)
        new QTreeWidgetItem(root, {tr("lm_head (tied: reuses the embedding)"), QString(), QString()});
    root->setExpanded(true);

    QVector<QPair<QString, QString>> facts = {
        {tr("Architecture"), s.architecture},
        {tr("Layers"), QString::number(s.layers)},
        {tr("d_model"), QString::number(s.dModel)},
        {tr("Vocabulary rows"), QString::number(s.vocabRows)},
        {tr("Parameters"), humanCount(s.parameters)},
        {tr("Weights stored as"), s.weightDType},
        {tr("State per sequence"), humanBytes(s.stateBytes)},
        {tr("Tokenizer"), s.hasTokenizer ? tr("tokenizer.json") : tr("none (enter ids: 1,2,3)")},
    };
    facts += s.facts;
    facts.append({tr("Folder"), s.path});
    m_facts->setRowCount(int(facts.size()));
    for (int i = 0; i < facts.size(); ++i) {
        m_facts->setItem(i, 0, new QTableWidgetItem(facts[i].first));
        auto* value = new QTableWidgetItem(facts[i].second);
        value->setToolTip(facts[i].second);
        m_facts->setItem(i, 1, value);
    }
    m_facts->resizeColumnToContents(0);
    emit modelReady();
}

void MainWindow::onRan(const RunResult& r)
{
    setBusy(false);
    m_result = r;
    m_strip->setTokens(r.ids, r.texts);
    m_statusSpeed->setText(tr("%1 tokens in %2 ms (%3 tokens/s)")
                               .arg(r.ids.size())
                               .arg(r.seconds * 1000, 0, 'f', 1)
                               .arg(r.seconds > 0 ? double(r.ids.size()) / r.seconds : 0.0, 0, 'f', 0));
    m_strip->setFocus();
    emit runFinished();
}

void MainWindow::onFailed(const QString& what, const QString& message)
{
    setBusy(false);
    m_lastError = what + ": " + message;
    statusBar()->showMessage(m_lastError, 10000);
    if (what != tr("Cancelled")) {
        // window-modal but not blocking: the event loop (and tests) keep running
        auto* box = new QMessageBox(QMessageBox::Warning, what, message, QMessageBox::Ok, this);
        box->setAttribute(Qt::WA_DeleteOnClose);
        box->setObjectName("errorBox");
        box->open();
    }
    emit failed(m_lastError);
}

void MainWindow::showPredictions(int token)
{
    m_predictions->setRowCount(0);
    if (token < 0 || token >= m_result.top5.size())
        return;
    m_predTitle->setText(tr("<b>Top-5 next-token predictions</b> after token %1 “%2”")
                             .arg(token)
                             .arg(TokenStrip::visibleText(m_result.texts[token]).toHtmlEscaped()));
    const auto& top = m_result.top5[token];
    m_predictions->setRowCount(int(top.size()));
    for (int i = 0; i < top.size(); ++i) {
        m_predictions->setItem(i, 0, new QTableWidgetItem(TokenStrip::visibleText(top[i].text)));
        m_predictions->setItem(i, 1, new QTableWidgetItem(QString::number(top[i].id)));
        auto* bar = new QProgressBar;
        bar->setRange(0, 1000);
        bar->setValue(int(top[i].probability * 1000));
        bar->setFormat(QStringLiteral("%1 %").arg(double(top[i].probability) * 100, 0, 'f', 2));
        m_predictions->setCellWidget(i, 2, bar);
    }
    m_predictions->resizeRowsToContents();
}

void MainWindow::closeEvent(QCloseEvent* e)
{
    QSettings settings;
    settings.setValue("window/geometry", saveGeometry());
    settings.setValue("window/state", saveState());
    QMainWindow::closeEvent(e);
}

void MainWindow::dragEnterEvent(QDragEnterEvent* e)
{
    if (e->mimeData()->hasUrls())
        e->acceptProposedAction();
}

void MainWindow::dropEvent(QDropEvent* e)
{
    const auto urls = e->mimeData()->urls();
    if (!urls.isEmpty() && QFileInfo(urls.front().toLocalFile()).isDir())
        openModel(urls.front().toLocalFile());
}

} // namespace archlens::ui
