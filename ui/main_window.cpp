#include "main_window.h"

#include <QAction>
#include <QApplication>
#include <QCheckBox>
#include <QCloseEvent>
#include <QComboBox>
#include <QDialog>
#include <QDialogButtonBox>
#include <QDir>
#include <QDockWidget>
#include <QDoubleSpinBox>
#include <QDragEnterEvent>
#include <QFileDialog>
#include <QFileInfo>
#include <QHBoxLayout>
#include <QHeaderView>
#include <QLabel>
#include <QLineEdit>
#include <QListWidget>
#include <QMenuBar>
#include <QMessageBox>
#include <QMimeData>
#include <QProgressBar>
#include <QPushButton>
#include <QScrollArea>
#include <QScrollBar>
#include <QSettings>
#include <QShortcut>
#include <QSlider>
#include <QSpinBox>
#include <QTimer>
#include <QSplitter>
#include <QStandardItemModel>
#include <QStatusBar>
#include <QStyleFactory>
#include <QTableWidget>
#include <QTreeWidget>
#include <QVBoxLayout>

#include "compare_dock.h"
#include "controls/playback_controller.h"
#include "formats/hf_cache.h"
#include "layout_controller.h"
#include "main_window_util.h"
#include "token_strip.h"
#include "views/figure_widget.h"
#include "views/heatmap_figures.h"
#include "views/moe_panel.h"

namespace archlens::ui {

MainWindow::MainWindow(QWidget* parent)
    : QMainWindow(parent)
{
    m_session = new SessionController(QStringLiteral("A"), this);
    m_compare = new SessionController(QStringLiteral("B"), this);
    m_playback = new PlaybackController(m_session, &m_sel, this);
    m_playback->setSettingsProvider([this] { return generationSettings(); });
    buildUi();
    buildMenus();
    buildViews();
    buildMemoryDock();
    // the mixture-of-experts and attention views (views/moe_panel.h), tabbed with the bottom views
    auto* moeDock = new QDockWidget(tr("Routing and attention"), this);
    moeDock->setObjectName("dock.moe");
    auto* moePanel = new MoePanel(m_session->model(), &m_sel, moeDock);
    moePanel->setSession(m_session);
    moeDock->setWidget(moePanel);
    addDockWidget(Qt::BottomDockWidgetArea, moeDock);
    if (auto* b = findChild<QDockWidget*>("dock.B"))
        tabifyDockWidget(b, moeDock);
    m_viewMenu->addAction(moeDock->toggleViewAction());
    buildFinetuneDock(); // hidden until asked for; before the layout is captured
    buildCompareDock(&moePanel->source()); // tabbed with these: a side-by-side figure needs the width
    tabifyDockWidget(moeDock, m_compareDock);
    m_compareDock->hide();
    if (auto* b = findChild<QDockWidget*>("dock.B"))
        b->raise(); // the scan views in front; the layout controller brings the panel forward for other models
    m_layout = new LayoutController(this, m_session->model(), moePanel);
    m_layout->captureDefault();

    connect(m_session, &SessionController::modelLoaded, this, &MainWindow::onLoaded);
    connect(m_session, &SessionController::workFinished, this, &MainWindow::onWorkFinished);
    connect(m_session, &SessionController::failed, this, &MainWindow::onFailed);
    connect(m_session, &SessionController::busyChanged, this, [this](bool busy, const QString& what) { setBusy(busy, what); });
    connect(m_session, &SessionController::progress, this, [this](int done, int total) {
        m_progress->setRange(0, std::max(total, 1));
        m_progress->setValue(done);
        m_progress->show();
    });
    connect(m_session, &SessionController::updated, this, &MainWindow::updateStatus);
    connect(m_session->model(), &TraceModel::cleared, this, &MainWindow::onModelCleared);
    connect(m_session->model(), &TraceModel::grew, this, &MainWindow::onModelGrew);
    connect(&m_sel, &Selection::tokenChanged, this, &MainWindow::onTokenChanged);
    connect(&m_sel, &Selection::channelChanged, this, [this](int c) { m_channel->setValue(c); });
    connect(&m_sel, &Selection::layerChanged, this, [this](int l) {
        const int i = m_layer->findData(l);
        if (i >= 0)
            m_layer->setCurrentIndex(i);
    });

    QSettings settings;
    restoreGeometry(settings.value("window/geometry").toByteArray());
    if (restoreState(settings.value("window/state").toByteArray()))
        QTimer::singleShot(0, m_layout, [this] { m_layout->ensureCentreHeight(); }); // once laid out
    setAcceptDrops(true);
    rebuildRecentMenu();
    if (m_darkAction->isChecked())
        setDarkMode(true);
}

MainWindow::~MainWindow() = default;

void MainWindow::buildUi()
{
    setWindowTitle(tr("ArchLens"));
    resize(1400, 900);

    auto* central = new QWidget;
    auto* layout = new QVBoxLayout(central);
    layout->setContentsMargins(6, 4, 6, 4);
    layout->setSpacing(4);
    auto* header = new QHBoxLayout;
    m_title = new QLabel(tr("No model loaded"));
    QFont tf = m_title->font();
    tf.setPointSizeF(tf.pointSizeF() * 1.3);
    tf.setBold(true);
    m_title->setFont(tf);
    m_badge = new QLabel;
    m_badge->setStyleSheet("QLabel { background: #b35900; color: white; border-radius: 4px; padding: 2px 8px; "
                           "font-weight: bold; }");
    m_badge->hide();
    header->addWidget(m_title);
    header->addWidget(m_badge);
    header->addStretch();
    header->addWidget(new QLabel(tr("Backend:")));
    m_backend = new QComboBox;
    m_backend->addItem(tr("auto"), "auto");
    m_backend->addItem(tr("CPU"), "cpu");
    m_backend->setToolTip(tr("auto uses the GPU plugin when one is available, else the CPU. Applies when a model is opened."));
    header->addWidget(m_backend);
    layout->addLayout(header);

    auto* promptRow = new QHBoxLayout;
    m_prompt = new QLineEdit;
    m_prompt->setObjectName("prompt");
    m_prompt->setPlaceholderText(tr("Type a prompt…"));
    m_prompt->setClearButtonEnabled(true);
    m_run = new QPushButton(tr("Run"));
    m_run->setToolTip(tr("Prefill: feed the whole prompt and record every token (Ctrl+Return)"));
    m_run->setDefault(true);
    m_stepIn = new QPushButton(tr("Step in"));
    m_stepIn->setToolTip(tr("Feed only the first prompt token; → feeds the next one, one recurrent step at a time"));
    m_generate = new QPushButton(tr("Generate"));
    m_generate->setToolTip(tr("Continue the text: stream new tokens with the sampling settings below"));
    m_cancel = new QPushButton(tr("Cancel"));
    m_cancel->setEnabled(false);
    promptRow->addWidget(new QLabel(tr("Prompt:")));
    promptRow->addWidget(m_prompt, 1);
    for (QPushButton* b : {m_run, m_stepIn, m_generate, m_cancel})
        promptRow->addWidget(b);
    layout->addLayout(promptRow);
    connect(m_run, &QPushButton::clicked, this, &MainWindow::runPrompt);
    connect(m_stepIn, &QPushButton::clicked, this, &MainWindow::stepIn);
    connect(m_generate, &QPushButton::clicked, this, &MainWindow::generate);
    connect(m_prompt, &QLineEdit::returnPressed, this, &MainWindow::runPrompt);
    connect(m_cancel, &QPushButton::clicked, this, [this] {
        m_session->cancel();
        m_compare->cancel();
        m_playback->setPlaying(false);
    });

    auto* sampling = new QHBoxLayout;
    m_temperature = new QDoubleSpinBox;
    m_temperature->setRange(0, 5);
    m_temperature->setSingleStep(0.1);
    m_temperature->setValue(0.8);
    m_temperature->setToolTip(tr("0 = greedy (always the most likely token)"));
    m_topK = new QSpinBox;
    m_topK->setRange(0, 100000);
    m_topK->setValue(40);
    m_topK->setSpecialValueText(tr("off"));
    m_topP = new QDoubleSpinBox;
    m_topP->setRange(0.01, 1);
    m_topP->setSingleStep(0.05);
    m_topP->setValue(0.95);
    m_seed = new QSpinBox;
    m_seed->setRange(0, 1 << 30);
    m_seed->setValue(1);
    m_maxTokens = new QSpinBox;
    m_maxTokens->setRange(1, 100000);
    m_maxTokens->setValue(64);
    auto addField = [&](const QString& label, QWidget* w) {
        sampling->addWidget(new QLabel(label));
        sampling->addWidget(w);
    };
    addField(tr("Temperature"), m_temperature);
    addField(tr("top-k"), m_topK);
    addField(tr("top-p"), m_topP);
    addField(tr("Seed"), m_seed);
    addField(tr("Max new tokens"), m_maxTokens);
    sampling->addStretch();
    layout->addLayout(sampling);

    // playback: layer, channel, transport, speed, scrub
    auto* play = new QHBoxLayout;
    m_layer = new QComboBox;
    m_layer->setObjectName("layerSelector");
    m_layer->setMinimumContentsLength(14);
    m_layer->setToolTip(tr("The layer every view shows. Only Mamba layers have a selective scan."));
    connect(m_layer, &QComboBox::currentIndexChanged, this, [this](int i) {
        if (i >= 0 && m_layer->itemData(i).isValid())
            m_sel.setLayer(m_layer->itemData(i).toInt());
    });
    m_channel = new QSpinBox;
    m_channel->setObjectName("channelSelector");
    m_channel->setRange(0, 0);
    m_channel->setToolTip(tr("The channel the stepper and the charts follow (click a heatmap row to choose one)"));
    connect(m_channel, &QSpinBox::valueChanged, this, [this](int c) { m_sel.setChannel(c); });
    auto transport = [&](const QString& text, const QString& tip, auto slot) {
        auto* b = new QPushButton(text);
        b->setToolTip(tip);
        b->setMaximumWidth(text.size() > 2 ? 64 : 36);
        b->setFocusPolicy(Qt::NoFocus);
        connect(b, &QPushButton::clicked, this, slot);
        play->addWidget(b);
        return b;
    };
    play->addWidget(new QLabel(tr("Layer")));
    play->addWidget(m_layer);
    play->addWidget(new QLabel(tr("Channel")));
    play->addWidget(m_channel);
    play->addSpacing(12);
    transport("⇤", tr("First token (Home)"), [this] { m_playback->home(); });
    transport("◀", tr("Previous token (←)"), [this] { m_playback->stepBack(); });
    m_play = transport(tr("Play"), tr("Play / pause (Space)"), [this] { m_playback->togglePlay(); });
    transport("▶", tr("Next token (→); at the end, computes one more token"), [this] { m_playback->stepForward(); });
    transport("⇥", tr("Last token (End)"), [this] { m_playback->end(); });
    connect(m_playback, &PlaybackController::playingChanged, this,
            [this](bool on) { m_play->setText(on ? tr("Pause") : tr("Play")); });
    m_speed = new QDoubleSpinBox;
    m_speed->setRange(0.25, 240);
    m_speed->setValue(8);
    m_speed->setSuffix(tr(" steps/s"));
    connect(m_speed, &QDoubleSpinBox::valueChanged, m_playback, &PlaybackController::setSpeed);
    play->addWidget(m_speed);
    m_scrub = new QSlider(Qt::Horizontal);
    m_scrub->setObjectName("scrub");
    m_scrub->setRange(0, 0);
    m_scrub->setToolTip(tr("Scrub through the computed tokens"));
    connect(m_scrub, &QSlider::valueChanged, this, [this](int v) { m_sel.setToken(v); });
    play->addWidget(m_scrub, 1);
    m_position = new QLabel(tr("no tokens"));
    m_position->setMinimumWidth(150);
    play->addWidget(m_position);
    layout->addLayout(play);

    m_strip = new TokenStrip;
    m_strip->setObjectName("tokenStrip");
    m_stripScroll = new QScrollArea;
    m_stripScroll->setWidget(m_strip);
    m_stripScroll->setWidgetResizable(true);
    m_stripScroll->setMinimumHeight(70);
    connect(m_strip, &TokenStrip::currentChanged, this, [this](int t) { m_sel.setToken(t); });
    connect(m_strip, &TokenStrip::keyStep, this, &MainWindow::handleKeyStep);
    connect(m_strip, &TokenStrip::currentRectChanged, this,
            [this](const QRect& r) { m_stripScroll->ensureVisible(r.center().x(), r.center().y(), 10, r.height()); });

    auto* predBox = new QWidget;
    auto* predLayout = new QVBoxLayout(predBox);
    predLayout->setContentsMargins(0, 0, 0, 0);
    m_predTitle = new QLabel(tr("<b>Top-5 next-token predictions</b>"));
    predLayout->addWidget(m_predTitle);
    m_predictions = new QTableWidget(0, 3);
    m_predictions->setObjectName("predictions");
    m_predictions->setHorizontalHeaderLabels({tr("Token"), tr("Id"), tr("Probability")});
    m_predictions->horizontalHeader()->setSectionResizeMode(0, QHeaderView::Stretch);
    m_predictions->verticalHeader()->hide();
    m_predictions->verticalHeader()->setDefaultSectionSize(22);
    m_predictions->setEditTriggers(QAbstractItemView::NoEditTriggers);
    m_predictions->setSelectionMode(QAbstractItemView::NoSelection);
    predLayout->addWidget(m_predictions);

    auto* top = new QSplitter(Qt::Horizontal);
    top->addWidget(m_stripScroll);
    top->addWidget(predBox);
    top->setStretchFactor(0, 3);
    top->setStretchFactor(1, 1);
    top->setObjectName("splitter.tokens");
    auto* centerSplit = new QSplitter(Qt::Vertical);
    centerSplit->setObjectName("splitter.center");
    centerSplit->addWidget(top);
    top->setMinimumHeight(150);
    layout->addWidget(centerSplit, 1);
    setCentralWidget(central);

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

    // stepping keys work wherever the focus is, except in text fields
    auto key = [this](QKeySequence seq, std::function<void()> slot) {
        auto* s = new QShortcut(seq, this);
        s->setContext(Qt::WindowShortcut);
        connect(s, &QShortcut::activated, this, [slot] {
            if (qobject_cast<QLineEdit*>(QApplication::focusWidget()) ||
                qobject_cast<QAbstractSpinBox*>(QApplication::focusWidget()))
                return;
            slot();
        });
    };
    key(QKeySequence(Qt::Key_Space), [this] { m_playback->togglePlay(); });
    key(QKeySequence(Qt::Key_Right), [this] { m_playback->stepForward(); });
    key(QKeySequence(Qt::Key_Left), [this] { m_playback->stepBack(); });
    key(QKeySequence(Qt::Key_Home), [this] { m_playback->home(); });
    key(QKeySequence(Qt::Key_End), [this] { m_playback->end(); });
}

void MainWindow::handleKeyStep(int key)
{
    switch (key) {
    case Qt::Key_Left: m_playback->stepBack(); break;
    case Qt::Key_Right: m_playback->stepForward(); break;
    case Qt::Key_Home: m_playback->home(); break;
    case Qt::Key_End: m_playback->end(); break;
    default: break;
    }
}

GenerationSettings MainWindow::generationSettings() const
{
    GenerationSettings g;
    g.temperature = float(m_temperature->value());
    g.topK = m_topK->value();
    g.topP = float(m_topP->value());
    g.seed = m_seed->value();
    g.maxTokens = m_maxTokens->value();
    return g;
}

void MainWindow::openModel(const QString& path)
{
    m_playback->setPlaying(false);
    m_session->openModel(path, m_backend->currentData().toString());
}

void MainWindow::openTrace(const QString& path)
{
    m_playback->setPlaying(false);
    m_session->openTrace(path);
}

void MainWindow::saveTrace(const QString& path) { m_session->saveTrace(path); }

void MainWindow::setPrompt(const QString& text) { m_prompt->setText(text); }

void MainWindow::setMaxNewTokens(int n) { m_maxTokens->setValue(n); }

void MainWindow::runPrompt()
{
    if (m_session->isBusy() || !m_session->hasModel())
        return;
    m_playback->setPlaying(false);
    m_session->run(m_prompt->text(), true, generationSettings());
    if (m_compare->hasModel() && !m_compare->isBusy())
        m_compare->run(m_prompt->text(), true, generationSettings());
}

void MainWindow::stepIn()
{
    if (m_session->isBusy() || !m_session->hasModel())
        return;
    m_session->run(m_prompt->text(), false, generationSettings());
}

void MainWindow::generate()
{
    if (m_session->isBusy())
        return;
    if (m_session->model()->tokenCount() == 0 || m_session->model()->meta().source != QLatin1String("live")) {
        // nothing to continue yet: prefill first, then generate when it is done
        QMetaObject::Connection* once = new QMetaObject::Connection;
        *once = connect(m_session, &SessionController::workFinished, this, [this, once](const WorkDone& d) {
            disconnect(*once);
            delete once;
            if (!d.cancelled)
                m_session->generate(generationSettings());
        });
        runPrompt();
        return;
    }
    m_session->generate(generationSettings());
}

void MainWindow::setBusy(bool busy, const QString& what)
{
    for (QPushButton* b : {m_run, m_stepIn, m_generate})
        b->setEnabled(!busy);
    m_cancel->setEnabled(busy);
    if (busy && !what.isEmpty())
        statusBar()->showMessage(what);
    if (!busy) {
        statusBar()->clearMessage();
        m_progress->hide();
    }
}

void MainWindow::onLoaded(const ModelSummary& s)
{
    setWindowTitle(tr("ArchLens — %1").arg(s.name));
    m_title->setText(tr("%1  ·  %2").arg(s.name, s.architecture));
    m_badge->setVisible(s.untrained);
    m_badge->setText(s.label.isEmpty() ? tr("untrained") : s.label.toUpper());
    m_badge->setToolTip(tr("Random weights: this model was not trained, so its predictions are noise. "
                           "It shows how the machinery works, not what a trained model has learned."));
    m_statusBackend->setText(tr("Device: %1").arg(s.backend));
    rememberRecent(s.path);
    fillStructure(m_structure, s);
    fillFacts(m_facts, s);
    m_channel->setRange(0, int(std::max<qint64>(s.dInner - 1, 0)));
    updateLayerChoices();
    updateStatus();
    emit modelReady();
}

void MainWindow::updateLayerChoices()
{
    const QStringList mixer = m_session->model()->tokenCount() > 0 || m_session->model()->layerCount() > 0
                                  ? m_session->model()->meta().layerMixer
                                  : m_session->summary().layerMixer;
    const int layers = std::max<int>(int(mixer.size()), m_session->model()->layerCount());
    const QSignalBlocker block(m_layer);
    m_layer->clear();
    auto* model = qobject_cast<QStandardItemModel*>(m_layer->model());
    int firstMamba = -1;
    for (int l = 0; l < layers; ++l) {
        const QString kind = l < mixer.size() ? mixer[l] : QStringLiteral("mamba");
        m_layer->addItem(tr("layer %1 · %2").arg(l).arg(kind), l);
        if (kind != QLatin1String("mamba")) {
            if (model)
                model->item(l)->setEnabled(false);
            m_layer->setItemData(l, tr("An %1 layer: no selective scan to show").arg(kind), Qt::ToolTipRole);
        } else if (firstMamba < 0) {
            firstMamba = l;
        }
    }
    int want = m_sel.layer();
    if (want >= layers || (want < mixer.size() && mixer[want] != QLatin1String("mamba")))
        want = std::max(firstMamba, 0);
    m_layer->setCurrentIndex(m_layer->findData(want));
    m_sel.setLayer(want);
}

void MainWindow::onWorkFinished(const WorkDone& d)
{
    if (d.cancelled)
        statusBar()->showMessage(tr("Cancelled after %1 tokens").arg(d.tokens), 5000);
    if (d.kind == QLatin1String("save"))
        statusBar()->showMessage(tr("Trace saved (%1 tokens)").arg(d.tokens), 5000);
    if (d.kind == QLatin1String("jump") && !d.cancelled)
        statusBar()->showMessage(tr("Token %1 recomputed from the nearest checkpoint in %2 ms")
                                     .arg(m_sel.token())
                                     .arg(d.seconds * 1000, 0, 'f', 0),
                                 4000);
    if (d.kind == QLatin1String("trace")) {
        const RunMeta& m = m_session->model()->meta();
        setWindowTitle(tr("ArchLens — %1 (trace)").arg(m.modelName));
        m_title->setText(tr("%1  ·  %2  ·  replayed from %3").arg(m.modelName, m.architecture, QFileInfo(m.source).fileName()));
        m_badge->setVisible(false);
        m_channel->setRange(0, int(std::max<qint64>(m.dInner - 1, 0)));
        updateLayerChoices();
    }
    updateStatus();
    if (d.kind != QLatin1String("jump"))
        m_session->ensureToken(m_sel.token()); // the cap may have dropped what the cursor shows
    showPredictions(m_sel.token());
    for (FigureWidget* v : m_views)
        v->update();
    m_strip->setFocus();
    emit workFinished(d);
    if (d.kind == QLatin1String("prefill") || d.kind == QLatin1String("trace") || d.kind == QLatin1String("step") ||
        d.kind == QLatin1String("generate"))
        emit runFinished();
}

void MainWindow::onFailed(const QString& what, const QString& message)
{
    m_lastError = what + ": " + message;
    statusBar()->showMessage(m_lastError, 10000);
    m_playback->setPlaying(false);
    if (what != tr("Cancelled")) {
        // window-modal but not blocking: the event loop (and tests) keep running
        auto* box = new QMessageBox(QMessageBox::Warning, what, message, QMessageBox::Ok, this);
        box->setAttribute(Qt::WA_DeleteOnClose);
        box->setObjectName("errorBox");
        box->open();
    }
    emit failed(m_lastError);
}

void MainWindow::onModelCleared()
{
    m_strip->clear();
    m_scrub->setRange(0, 0);
    m_predictions->setRowCount(0);
    updateLayerChoices();
}

void MainWindow::onModelGrew(int oldCount, int newCount)
{
    const TraceModel* m = m_session->model();
    QVector<int> ids;
    QStringList texts;
    for (int t = oldCount; t < newCount; ++t) {
        ids.append(m->ids()[size_t(t)]);
        texts.append(m->texts().value(t));
    }
    if (oldCount == 0 && m_layer->count() != m->layerCount())
        updateLayerChoices();
    m_strip->appendTokens(ids, texts);
    const QSignalBlocker block(m_scrub);
    m_scrub->setRange(0, std::max(0, newCount - 1));
    onTokenChanged(m_sel.token());
}

void MainWindow::onTokenChanged(int token)
{
    const int n = m_session->model()->tokenCount();
    {
        const QSignalBlocker b1(m_scrub);
        m_scrub->setValue(std::max(token, 0));
    }
    {
        const QSignalBlocker b2(m_strip);
        m_strip->setCurrent(token);
    }
    if (token >= 0 && token < n) {
        const int left = m_session->promptLeft();
        m_position->setText(tr("token %1 of %2%3").arg(token).arg(n).arg(left > 0 ? tr(" (%1 prompt tokens to feed)").arg(left) : QString()));
    } else {
        m_position->setText(tr("no tokens"));
    }
    showPredictions(token);
    for (FigureWidget* v : m_views)
        if (auto* f = dynamic_cast<TokenHeatmapFigure*>(v->figure()))
            f->ensureVisible(token);
    // a token whose frames or states the memory cap dropped is recomputed on the worker
    m_session->ensureToken(token);
}

void MainWindow::showPredictions(int token)
{
    const TraceModel* m = m_session->model();
    m_predictions->setRowCount(0);
    if (token < 0 || token >= m->tokenCount())
        return;
    m_predTitle->setText(tr("<b>Top-5 next-token predictions</b> after token %1 “%2”")
                             .arg(token)
                             .arg(visibleTokenText(m->texts().value(token)).toHtmlEscaped()));
    const QVector<Prediction> top = m->predictions(token);
    m_predictions->setRowCount(int(top.size()));
    for (int i = 0; i < top.size(); ++i) {
        m_predictions->setItem(i, 0, new QTableWidgetItem(visibleTokenText(top[i].text)));
        m_predictions->setItem(i, 1, new QTableWidgetItem(QString::number(top[i].id)));
        m_predictions->setItem(i, 2, new QTableWidgetItem(QStringLiteral("%1 %").arg(double(top[i].probability) * 100, 0, 'f', 2)));
    }
}

void MainWindow::updateStatus()
{
    const TraceModel* m = m_session->model();
    const FrameStoreUsage u = m->usage();
    m_statusMemory->setText(tr("Memory: weights %1 · frames %2 of %3")
                                .arg(humanBytes(m_session->summary().loadedBytes), humanBytes(qint64(u.usedBytes)),
                                     humanBytes(qint64(m_session->capBytes()))));
    if (m_session->tokensPerSecond() > 0)
        m_statusSpeed->setText(tr("%1 tokens/s").arg(m_session->tokensPerSecond(), 0, 'f', 0));
    if (m_memoryText) {
        QString text = tr("In use: <b>%1</b> of %2<br>states h: %3 (%4 token·layer states)<br>other probes: %5 (%6 "
                          "tokens)<br>checkpoints: %7 (every %8 tokens, for scrubbing back)")
                           .arg(humanBytes(qint64(u.usedBytes)), humanBytes(qint64(m_session->capBytes())),
                                humanBytes(qint64(u.stateBytes)))
                           .arg(u.states)
                           .arg(humanBytes(qint64(u.frameBytes)))
                           .arg(u.frames)
                           .arg(humanBytes(qint64(u.reservedBytes)))
                           .arg(m_session->checkpointInterval());
        if (u.droppedStates > 0 || u.droppedFrames > 0)
            text += tr("<br>Dropped so far: %1 states, %2 token frames (oldest first). Moving the cursor onto a dropped "
                       "token recomputes it from the nearest checkpoint, exactly as the run computed it.")
                        .arg(u.droppedStates)
                        .arg(u.droppedFrames);
        if (m->meta().layerMixer.contains(QStringLiteral("attention")))
            text += tr("<br><b>Hybrid model:</b> the attention layers' KV cache grows with every token and is not "
                       "bounded by this cap.");
        m_memoryText->setText(text);
    }
}

void MainWindow::closeEvent(QCloseEvent* e)
{
    if (!confirmCloseFinetune()) {
        e->ignore();
        return;
    }
    QSettings settings;
    settings.setValue("window/geometry", saveGeometry());
    settings.setValue("window/state", saveState());
    m_playback->setPlaying(false);
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
    if (urls.isEmpty())
        return;
    const QFileInfo fi(urls.front().toLocalFile());
    if (fi.isDir())
        openModel(fi.filePath());
    else if (fi.suffix().toLower() == "h5" || fi.suffix().toLower() == "hdf5")
        openTrace(fi.filePath());
}

} // namespace archlens::ui
