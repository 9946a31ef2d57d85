#include "finetune/finetune_page.h"

#include <QChart>
#include <QChartView>
#include <QColor>
#include <QCheckBox>
#include <QDateTime>
#include <QDir>
#include <QDoubleSpinBox>
#include <QFileDialog>
#include <QFileInfo>
#include <QFormLayout>
#include <QGridLayout>
#include <QGroupBox>
#include <QHBoxLayout>
#include <QHeaderView>
#include <QLabel>
#include <QLineEdit>
#include <QLineSeries>
#include <QListWidget>
#include <QMessageBox>
#include <QPlainTextEdit>
#include <QProgressBar>
#include <QPushButton>
#include <QScrollArea>
#include <QSpinBox>
#include <QSplitter>
#include <QStandardPaths>
#include <QTabWidget>
#include <QTableWidget>
#include <QValueAxis>
#include <QVBoxLayout>

#include <cmath>

#include "base/error.h"

namespace archlens::ui {

namespace {

// The module kinds PEFT can target in a MambaForCausalLM, and why conv1d is off.
struct TargetKind {
    const char* name;
    const char* tip;
};
const TargetKind kTargets[] = {
    {"in_proj", "in_proj: d_model → 2·d_inner (the scan's input x and the gate z)"},
    {"x_proj", "x_proj: d_inner → dt_rank + 2·d_state (the selective Δ, B and C come from here)"},
    {"dt_proj", "dt_proj: dt_rank → d_inner (Δ's per-channel projection)"},
    {"out_proj", "out_proj: d_inner → d_model. PEFT refuses LoRA here for Mamba (its fused kernel bypasses the "
                 "module): such an adapter loads in ArchLens but not in PEFT"},
    {"embeddings", "embeddings: the token embedding table (LoRA on an embedding has no dropout, as in PEFT)"},
    {"conv1d", "conv1d: not supported — LoRA on a depthwise convolution is not defined here, and PEFT refuses "
               "it for Mamba"},
};

QString timeText(double seconds)
{
    if (seconds < 0 || !std::isfinite(seconds))
        return QStringLiteral("—");
    const int s = int(seconds + 0.5);
    return s >= 60 ? QStringLiteral("%1 min %2 s").arg(s / 60).arg(s % 60, 2, 10, QLatin1Char('0'))
                   : QStringLiteral("%1 s").arg(s);
}

QString beforeAfter(double a, double b)
{
    return QStringLiteral("%1 → %2").arg(a, 0, 'f', 4).arg(b, 0, 'f', 4);
}

QString sizeText(qint64 bytes)
{
    if (bytes < 1024 * 1024)
        return QStringLiteral("%1 KB").arg(double(bytes) / 1024.0, 0, 'f', 0);
    return QStringLiteral("%1 MB").arg(double(bytes) / (1024.0 * 1024.0), 0, 'f', 1);
}

QString& runsRootOverride()
{
    static QString dir;
    return dir;
}

} // namespace

FinetunePage::FinetunePage(QWidget* parent)
    : QWidget(parent)
{
    setObjectName("finetunePage");
    m_worker = new FinetuneWorker;
    m_worker->moveToThread(&m_thread);
    connect(&m_thread, &QThread::finished, m_worker, &QObject::deleteLater);
    connect(m_worker, &FinetuneWorker::loaded, this, &FinetunePage::onLoaded);
    connect(m_worker, &FinetuneWorker::progress, this, &FinetunePage::onProgress);
    connect(m_worker, &FinetuneWorker::finished, this, &FinetunePage::onFinished);
    connect(m_worker, &FinetuneWorker::compared, this, &FinetunePage::onCompared);
    connect(m_worker, &FinetuneWorker::failed, this, &FinetunePage::onFailed);
    connect(m_worker, &FinetuneWorker::saved, this, [this](const QString& dir) {
        m_unsaved = false;
        m_status->setText(tr("Adapter saved to %1 (adapter_config.json + adapter_model.safetensors, PEFT layout)")
                              .arg(QDir::toNativeSeparators(dir)));
        updateButtons();
        emit adapterSaved(dir);
    });
    connect(m_worker, &FinetuneWorker::runsListed, this, &FinetunePage::onRunsListed);
    connect(m_worker, &FinetuneWorker::runDeleted, this, [this](const QString& dir) {
        if (dir == m_ckptDir) {
            m_ckptDir.clear();
            m_resumable = false;
        }
        m_status->setText(tr("Deleted the run %1.").arg(QDir::toNativeSeparators(dir)));
        refreshRuns();
    });
    m_runsRoot = defaultRunsRoot();
    m_thread.start();
    buildUi();
    updateTargets();
    updateButtons();
}

FinetunePage::~FinetunePage()
{
    // a running fine-tune stops after its step and writes its checkpoint before the thread ends
    m_worker->cancel.store(true);
    m_thread.quit();
    m_thread.wait();
}

QString FinetunePage::defaultRunsRoot()
{
    if (!runsRootOverride().isEmpty())
        return runsRootOverride();
    return QStandardPaths::writableLocation(QStandardPaths::AppDataLocation) + QStringLiteral("/finetune");
}

void FinetunePage::setDefaultRunsRoot(const QString& dir) { runsRootOverride() = dir; }

void FinetunePage::setRunsRoot(const QString& dir)
{
    m_runsRoot = dir;
    refreshRuns();
}

void FinetunePage::buildUi()
{
    auto* outer = new QHBoxLayout(this);
    outer->setContentsMargins(4, 4, 4, 4);
    auto* split = new QSplitter(Qt::Horizontal);
    outer->addWidget(split);

    // ---- left: the setup
    auto* setup = new QWidget;
    m_setup = setup;
    auto* left = new QVBoxLayout(setup);
    left->setContentsMargins(0, 0, 0, 0);
    m_modelLabel = new QLabel(tr("Open a Mamba model (File → Open model folder) to fine-tune it."));
    m_modelLabel->setWordWrap(true);
    left->addWidget(m_modelLabel);

    // one form, no group frames: the whole setup fits the dock at the default window size
    auto* form = new QFormLayout;
    form->setLabelAlignment(Qt::AlignRight);
    left->addLayout(form);
    auto section = [&](const QString& title) {
        auto* l = new QLabel(QStringLiteral("<b>%1</b>").arg(title));
        form->addRow(l);
    };
    auto* dataRow = new QHBoxLayout;
    m_data = new QLineEdit;
    m_data->setObjectName("finetune.data");
    m_data->setPlaceholderText(tr("text file, or JSONL of {\"prompt\", \"completion\"}"));
    m_data->setToolTip(tr("A plain text file is cut into windows of `context` tokens (next-token loss on every "
                          "token). A .jsonl file (or one starting with '{') holds one {\"prompt\": …, "
                          "\"completion\": …} object per line; the loss counts only the completion."));
    auto* browse = new QPushButton(tr("Browse…"));
    connect(browse, &QPushButton::clicked, this, [this] {
        const QString f = QFileDialog::getOpenFileName(this, tr("Fine-tuning data"), QFileInfo(m_data->text()).path(),
                                                       tr("Text or JSONL (*.txt *.md *.jsonl *.json);;All files (*)"));
        if (!f.isEmpty())
            m_data->setText(f);
    });
    connect(m_data, &QLineEdit::textChanged, this, [this] { updateButtons(); });
    dataRow->addWidget(m_data, 1);
    dataRow->addWidget(browse);
    form->addRow(tr("Dataset"), dataRow);

    section(tr("LoRA adapter"));
    QFormLayout* lf = form;
    m_rank = new QSpinBox;
    m_rank->setObjectName("finetune.rank");
    m_rank->setRange(1, 256);
    m_rank->setValue(8);
    m_rank->setToolTip(tr("r: the rank of the update B·A added to each targeted weight"));
    m_alpha = new QDoubleSpinBox;
    m_alpha->setRange(0.01, 4096);
    m_alpha->setValue(16);
    m_alpha->setToolTip(tr("lora_alpha: the update is scaled by alpha / r"));
    m_dropout = new QDoubleSpinBox;
    m_dropout->setRange(0, 0.9);
    m_dropout->setSingleStep(0.05);
    m_dropout->setValue(0.0);
    m_dropout->setToolTip(tr("lora_dropout: dropout on the adapter's input while training (not when generating)"));
    // three short numbers on one row, so the form (and Start) fit the dock without scrolling
    auto* numbers = new QWidget;
    auto* nrow = new QHBoxLayout(numbers);
    nrow->setContentsMargins(0, 0, 0, 0);
    auto labelled = [](QHBoxLayout* row, const QString& label, QWidget* w) {
        auto* l = new QLabel(label);
        l->setBuddy(w);
        row->addWidget(l);
        row->addWidget(w, 1);
    };
    labelled(nrow, tr("Alpha"), m_alpha);
    labelled(nrow, tr("Dropout"), m_dropout);
    auto* rankRow = new QWidget;
    auto* rrow = new QHBoxLayout(rankRow);
    rrow->setContentsMargins(0, 0, 0, 0);
    rrow->addWidget(m_rank, 1);
    rrow->addWidget(numbers, 2);
    lf->addRow(tr("Rank r"), rankRow);
    auto* targets = new QWidget;
    auto* tgrid = new QGridLayout(targets);
    tgrid->setContentsMargins(0, 0, 0, 0);
    int i = 0;
    for (const TargetKind& k : kTargets) {
        auto* box = new QCheckBox(QString::fromLatin1(k.name));
        box->setObjectName(QStringLiteral("finetune.target.%1").arg(k.name));
        box->setToolTip(tr(k.tip));
        box->setChecked(QLatin1String(k.name) == QLatin1String("in_proj") ||
                        QLatin1String(k.name) == QLatin1String("x_proj"));
        if (QLatin1String(k.name) == QLatin1String("conv1d"))
            box->setEnabled(false);
        connect(box, &QCheckBox::toggled, this, [this] { updateTargets(); });
        m_targetBoxes.append(box);
        tgrid->addWidget(box, i / 3, i % 3);
        ++i;
    }
    lf->addRow(tr("Targets"), targets);
    m_coverage = new QLabel;
    m_coverage->setObjectName("finetune.coverage");
    m_forPeft = new QCheckBox(tr("Export for PEFT"));
    m_forPeft->setChecked(true);
    m_forPeft->setToolTip(tr("Warn about targets Hugging Face PEFT refuses for Mamba models"));
    connect(m_forPeft, &QCheckBox::toggled, this, [this] { updateTargets(); });
    auto* coverageRow = new QHBoxLayout;
    coverageRow->addWidget(m_coverage, 1);
    coverageRow->addWidget(m_forPeft);
    lf->addRow(QString(), coverageRow);
    m_peftWarning = new QLabel;
    m_peftWarning->setObjectName("finetune.peftWarning");
    m_peftWarning->setWordWrap(true);
    m_peftWarning->setStyleSheet("QLabel { color: #b35900; font-weight: bold; }");
    lf->addRow(QString(), m_peftWarning);

    section(tr("Training"));
    QFormLayout* tf = form;
    m_lr = new QDoubleSpinBox;
    m_lr->setDecimals(5);
    m_lr->setRange(0.00001, 1);
    m_lr->setSingleStep(0.0005);
    m_lr->setValue(0.001);
    m_lr->setToolTip(tr("Peak learning rate (AdamW; warm-up then cosine decay)"));
    m_steps = new QSpinBox;
    m_steps->setRange(1, 1000000);
    m_steps->setValue(200);
    m_batch = new QSpinBox;
    m_batch->setRange(1, 1024);
    m_batch->setValue(8);
    m_batch->setToolTip(tr("Sequences per optimizer step"));
    m_context = new QSpinBox;
    m_context->setRange(2, 8192);
    m_context->setValue(64);
    m_context->setToolTip(tr("Tokens per window of a text file (JSONL examples keep their own length)"));
    m_seed = new QSpinBox;
    m_seed->setRange(0, 1 << 30);
    m_seed->setValue(1);
    m_seed->setToolTip(tr("Seeds the adapter's initialisation, the batches and the dropout: the same seed gives the "
                          "same run"));
    auto* lrRow = new QWidget;
    auto* lrow = new QHBoxLayout(lrRow);
    lrow->setContentsMargins(0, 0, 0, 0);
    lrow->addWidget(m_lr, 3);
    labelled(lrow, tr("Steps"), m_steps);
    auto* batchRow = new QWidget;
    auto* brow = new QHBoxLayout(batchRow);
    brow->setContentsMargins(0, 0, 0, 0);
    brow->addWidget(m_batch, 1);
    labelled(brow, tr("Context"), m_context);
    labelled(brow, tr("Seed"), m_seed);
    tf->addRow(tr("Learning rate"), lrRow);
    tf->addRow(tr("Batch"), batchRow);

    auto* buttons = new QHBoxLayout;
    m_start = new QPushButton(tr("Start"));
    m_start->setObjectName("finetune.start");
    m_start->setToolTip(tr("Train a fresh adapter from step 0"));
    m_cancel = new QPushButton(tr("Cancel"));
    m_cancel->setObjectName("finetune.cancel");
    m_cancel->setToolTip(tr("Stop after the current step; the checkpoint it leaves can be resumed"));
    m_resume = new QPushButton(tr("Resume"));
    m_resume->setObjectName("finetune.resume");
    m_resume->setToolTip(tr("Continue the run selected under Previous runs (the one just stopped, or one from an "
                            "earlier session) from its checkpoint up to Steps"));
    m_save = new QPushButton(tr("Save adapter…"));
    m_save->setObjectName("finetune.save");
    m_save->setToolTip(tr("Write adapter_config.json + adapter_model.safetensors (PEFT's layout) to a folder"));
    connect(m_start, &QPushButton::clicked, this, &FinetunePage::start);
    connect(m_cancel, &QPushButton::clicked, this, &FinetunePage::cancel);
    connect(m_resume, &QPushButton::clicked, this, &FinetunePage::resume);
    connect(m_save, &QPushButton::clicked, this, [this] {
        const QString dir = QFileDialog::getExistingDirectory(this, tr("Folder for the adapter"));
        if (!dir.isEmpty())
            saveAdapterTo(dir);
    });
    for (QPushButton* b : {m_start, m_cancel, m_resume, m_save})
        buttons->addWidget(b);

    // the runs on a tab of their own beside the form: both fit the dock at the default window size
    auto* runsPage = new QWidget;
    auto* runsLayout = new QVBoxLayout(runsPage);
    runsLayout->setContentsMargins(4, 4, 4, 4);
    m_runsView = new QListWidget;
    m_runsView->setObjectName("finetune.runs");
    m_runsView->setToolTip(tr("Every run is kept (checkpoint, settings and loss curve) in its own folder. Select one "
                              "to see its settings and curve; Resume continues it, also after restarting ArchLens."));
    m_runsView->setMinimumHeight(64);
    m_runsView->setAlternatingRowColors(true);
    connect(m_runsView, &QListWidget::itemSelectionChanged, this, [this] {
        if (!m_training)
            selectRun(selectedRun());
        updateButtons();
    });
    runsLayout->addWidget(m_runsView);
    auto* runsRow = new QHBoxLayout;
    auto* runsWhere = new QLabel;
    runsWhere->setObjectName("finetune.runsFolder");
    runsWhere->setWordWrap(true);
    runsWhere->setTextInteractionFlags(Qt::TextSelectableByMouse);
    m_deleteRun = new QPushButton(tr("Delete run…"));
    m_deleteRun->setObjectName("finetune.deleteRun");
    m_deleteRun->setToolTip(tr("Delete the selected run's folder (its checkpoint and adapter) after asking"));
    connect(m_deleteRun, &QPushButton::clicked, this, [this] { deleteRun(selectedRun()); });
    runsRow->addWidget(runsWhere, 1);
    runsRow->addWidget(m_deleteRun);
    runsLayout->addLayout(runsRow);
    left->addStretch();
    auto* scroll = new QScrollArea;
    scroll->setWidget(setup);
    scroll->setWidgetResizable(true);
    scroll->setFrameShape(QFrame::NoFrame);
    scroll->setHorizontalScrollBarPolicy(Qt::ScrollBarAlwaysOff);
    // Start / Cancel / Resume / Save stay in sight below the form, however short the dock
    auto* leftPane = new QWidget;
    auto* lp = new QVBoxLayout(leftPane);
    lp->setContentsMargins(0, 0, 0, 0);
    m_leftTabs = new QTabWidget;
    m_leftTabs->setObjectName("finetune.tabs");
    m_leftTabs->addTab(scroll, tr("Setup"));
    m_leftTabs->addTab(runsPage, tr("Previous runs"));
    m_leftTabs->setTabToolTip(1, tr("This model's earlier fine-tunes, kept on disk: select one, then Resume"));
    lp->addWidget(m_leftTabs, 1);
    lp->addLayout(buttons);
    leftPane->setMinimumWidth(380);
    split->addWidget(leftPane);

    // ---- right: the loss curve and the comparison
    auto* right = new QWidget;
    auto* rl = new QVBoxLayout(right);
    rl->setContentsMargins(0, 0, 0, 0);
    m_status = new QLabel(tr("Choose a dataset, then Start."));
    m_status->setObjectName("finetune.status");
    m_status->setWordWrap(true);
    rl->addWidget(m_status);
    m_progress = new QProgressBar;
    m_progress->setRange(0, 1);
    m_progress->setValue(0);
    rl->addWidget(m_progress);
    m_chart = new QChart;
    m_chart->legend()->hide();
    m_chart->setTitle(tr("Training loss (cross-entropy, nats)"));
    m_chart->setMargins(QMargins(4, 4, 4, 4));
    m_series = new QLineSeries;
    m_series->setName(tr("loss"));
    m_chart->addSeries(m_series);
    m_axisX = new QValueAxis;
    m_axisX->setTitleText(tr("step"));
    m_axisX->setLabelFormat("%d");
    m_axisX->setRange(0, 1);
    m_axisY = new QValueAxis;
    m_axisY->setTitleText(tr("loss"));
    m_axisY->setRange(0, 1);
    m_chart->addAxis(m_axisX, Qt::AlignBottom);
    m_chart->addAxis(m_axisY, Qt::AlignLeft);
    m_series->attachAxis(m_axisX);
    m_series->attachAxis(m_axisY);
    auto* chartView = new QChartView(m_chart);
    chartView->setRenderHint(QPainter::Antialiasing);
    chartView->setMinimumHeight(120);

    // Top: the loss curve beside the two generations; below: the Δ/B/C table, tall enough for
    // every layer of a small model, so the comparison reads without scrolling.
    auto* cmpBox = new QGroupBox(tr("Before / after on the same prompt (greedy)"));
    auto* cl = new QVBoxLayout(cmpBox);
    auto* promptRow = new QHBoxLayout;
    m_prompt = new QLineEdit;
    m_prompt->setObjectName("finetune.prompt");
    m_prompt->setPlaceholderText(tr("Prompt for the comparison"));
    m_newTokens = new QSpinBox;
    m_newTokens->setRange(1, 512);
    m_newTokens->setValue(24);
    m_newTokens->setSuffix(tr(" tokens"));
    m_compare = new QPushButton(tr("Compare"));
    m_compare->setObjectName("finetune.compare");
    m_compare->setToolTip(tr("Generate greedily with the base model and with the adapter, and compare Δ, B and C"));
    connect(m_compare, &QPushButton::clicked, this, &FinetunePage::compare);
    connect(m_prompt, &QLineEdit::returnPressed, this, &FinetunePage::compare);
    promptRow->addWidget(new QLabel(tr("Prompt:")));
    promptRow->addWidget(m_prompt, 1);
    promptRow->addWidget(m_newTokens);
    promptRow->addWidget(m_compare);
    cl->addLayout(promptRow);
    // the labels beside the texts, so the two generations take the height they need and no more
    auto* gens = new QGridLayout;
    auto genBox = [&](int row, const QString& title, QPlainTextEdit*& edit, const char* name) {
        auto* label = new QLabel(title);
        label->setAlignment(Qt::AlignRight | Qt::AlignTop);
        gens->addWidget(label, row, 0);
        edit = new QPlainTextEdit;
        edit->setObjectName(name);
        edit->setReadOnly(true);
        edit->setMinimumHeight(44);
        gens->addWidget(edit, row, 1);
        gens->setRowStretch(row, 1);
    };
    genBox(0, tr("<b>Base<br>model</b>"), m_baseText, "finetune.baseText");
    genBox(1, tr("<b>With the<br>adapter</b>"), m_adaptedText, "finetune.adaptedText");
    cl->addLayout(gens, 1);
    m_prompt->setMinimumWidth(80);
    chartView->setMinimumWidth(320);
    auto* top = new QSplitter(Qt::Horizontal);
    top->addWidget(chartView);
    top->addWidget(cmpBox);
    top->setStretchFactor(0, 1);
    top->setStretchFactor(1, 1);
    top->setCollapsible(0, false);
    top->setSizes({520, 480});

    auto* statsBox = new QGroupBox(tr("Scan inputs per layer over the prompt: base model → with the adapter "
                                      "(orange: changed by more than 5 %)"));
    auto* sl = new QVBoxLayout(statsBox);
    m_stats = new QTableWidget(0, 7);
    m_stats->setObjectName("finetune.stats");
    m_stats->setHorizontalHeaderLabels({tr("Layer"), tr("Δ mean"), tr("Δ std"), tr("B mean"), tr("B std"),
                                        tr("C mean"), tr("C std")});
    m_stats->horizontalHeader()->setSectionResizeMode(QHeaderView::Stretch);
    m_stats->horizontalHeader()->setSectionResizeMode(0, QHeaderView::ResizeToContents);
    m_stats->verticalHeader()->hide();
    m_stats->verticalHeader()->setDefaultSectionSize(fontMetrics().height() + 6);
    m_stats->setEditTriggers(QAbstractItemView::NoEditTriggers);
    m_stats->setToolTip(tr("Per layer, over every token of the prompt and every channel: base model → with the "
                           "adapter. x_proj and dt_proj targets change Δ, B and C directly; in_proj changes them "
                           "through the scan's input."));
    sl->addWidget(m_stats, 1);
    fitStatsRows(4);
    auto* rsplit = new QSplitter(Qt::Vertical);
    rsplit->addWidget(top);
    rsplit->addWidget(statsBox);
    rsplit->setStretchFactor(0, 3);
    rsplit->setStretchFactor(1, 2);
    rsplit->setCollapsible(1, false);
    m_statsBox = statsBox;
    rl->addWidget(rsplit, 1);
    split->addWidget(right);
    split->setStretchFactor(0, 0);
    split->setStretchFactor(1, 1);
}

void FinetunePage::fitStatsRows(int rows)
{
    m_stats->setMinimumHeight(m_stats->horizontalHeader()->sizeHint().height() +
                              rows * m_stats->verticalHeader()->defaultSectionSize() + 2 * m_stats->frameWidth() + 2);
}

void FinetunePage::setModelDir(const QString& dir)
{
    if (dir == m_modelDir && m_unsupported.isEmpty())
        return;
    m_unsupported.clear();
    m_modelDir = dir;
    m_modelLabel->setStyleSheet(QString());
    m_runList.clear();
    m_runsView->clear();
    m_modelLabel->setText(tr("<b>Model:</b> %1 (preparing…)").arg(QFileInfo(dir).fileName().toHtmlEscaped()));
    if (isVisible())
        requestLoad();
}

void FinetunePage::setUnsupportedModel(const QString& dir, const QString& why)
{
    m_unsupported = why;
    m_modelDir = dir;
    m_requestedDir.clear();
    m_loadedDir.clear();
    m_base.reset();
    m_hasAdapter = false;
    m_resumable = false;
    m_unsaved = false;
    m_ckptDir.clear();
    m_runList.clear();
    m_runsView->clear();
    m_modelLabel->setText(why.toHtmlEscaped());
    m_modelLabel->setStyleSheet("QLabel { color: #b00020; font-weight: bold; }");
    m_status->setText(tr("Open a Mamba model (File → Open model folder) to fine-tune it with LoRA."));
    updateButtons();
}

QString FinetunePage::modelMessage() const { return m_modelLabel->text(); }

void FinetunePage::showEvent(QShowEvent* e)
{
    QWidget::showEvent(e);
    requestLoad();
}

void FinetunePage::requestLoad()
{
    if (m_modelDir.isEmpty() || m_modelDir == m_requestedDir || !m_unsupported.isEmpty())
        return;
    m_requestedDir = m_modelDir;
    m_base.reset();
    updateButtons();
    QMetaObject::invokeMethod(m_worker, [w = m_worker, d = m_modelDir] { w->load(d); });
}

void FinetunePage::onLoaded(const QString& dir, std::shared_ptr<const train::MambaTrainModel> base)
{
    if (dir != m_modelDir || !m_unsupported.isEmpty())
        return;
    m_base = std::move(base);
    m_ckptDir.clear();
    m_loadedDir = dir;
    m_hasAdapter = false;
    m_resumable = false;
    m_unsaved = false;
    const auto& c = m_base->config();
    m_modelLabel->setText(tr("<b>Model:</b> %1 — %2 Mamba layers, d_model %3, d_inner %4, d_state %5, vocabulary %6")
                              .arg(QFileInfo(dir).fileName().toHtmlEscaped())
                              .arg(c.layers)
                              .arg(c.D)
                              .arg(c.E)
                              .arg(c.N)
                              .arg(c.V));
    updateTargets();
    updateButtons();
    refreshRuns();
    emit modelPrepared();
}

QStringList FinetunePage::checkedTargets() const
{
    QStringList out;
    for (QCheckBox* b : m_targetBoxes)
        if (b->isChecked() && b->isEnabled())
            out << b->text();
    return out;
}

void FinetunePage::setTargets(const QStringList& targets)
{
    for (QCheckBox* b : m_targetBoxes)
        b->setChecked(b->isEnabled() && targets.contains(b->text()));
}

void FinetunePage::updateTargets()
{
    const QStringList t = checkedTargets();
    QString warning;
    if (m_forPeft->isChecked())
        for (const QString& name : t)
            if (name == QLatin1String("out_proj"))
                warning = tr("⚠ PEFT refuses LoRA on out_proj for Mamba models: this adapter works in ArchLens, but "
                             "PEFT will raise an error loading it. Untick out_proj to export for PEFT.");
    m_peftWarning->setText(warning);
    m_peftWarning->setVisible(!warning.isEmpty());
    if (t.isEmpty()) {
        m_coverage->setText(tr("<span style='color:#b00020'>Tick at least one target module.</span>"));
    } else if (!m_base) {
        m_coverage->setText(tr("(coverage once the model is prepared)"));
    } else {
        std::vector<std::string> entries;
        for (const QString& s : t)
            entries.push_back(s.toStdString());
        try {
            // string matching against the module paths: no model maths
            const train::LoraCoverage cov = m_base->resolveTargets(entries);
            m_coverage->setText(tr("covers %1 of %2 layers (%3 modules)")
                                    .arg(cov.layersCovered)
                                    .arg(cov.layers)
                                    .arg(cov.modules.size()));
        } catch (const Error& e) {
            m_coverage->setText(QStringLiteral("<span style='color:#b00020'>%1</span>")
                                    .arg(QString::fromStdString(e.what()).toHtmlEscaped()));
        }
    }
    updateButtons();
}

QString FinetunePage::coverageText() const { return m_coverage->text(); }
QString FinetunePage::peftWarningText() const { return m_peftWarning->text(); }
QString FinetunePage::baseGeneration() const { return m_baseText->toPlainText(); }
QString FinetunePage::adaptedGeneration() const { return m_adaptedText->toPlainText(); }

void FinetunePage::updateButtons()
{
    const bool ready = m_base != nullptr && !m_training;
    const QString sel = selectedRun();
    bool selResumable = false;
    for (const FinetuneRun& r : m_runList)
        if (r.dir == sel)
            selResumable = r.resumable;
    m_start->setEnabled(ready && !checkedTargets().isEmpty() && !m_data->text().trimmed().isEmpty());
    m_cancel->setEnabled(m_training);
    m_resume->setEnabled(ready && (selResumable || (sel.isEmpty() && m_resumable && !m_ckptDir.isEmpty())));
    m_save->setEnabled(ready && m_hasAdapter);
    m_compare->setEnabled(ready && m_hasAdapter);
    m_runsView->setEnabled(!m_training && m_unsupported.isEmpty());
    m_deleteRun->setEnabled(!m_training && !sel.isEmpty());
    // a model that is not a Mamba: nothing on the page applies to it
    m_setup->setEnabled(m_unsupported.isEmpty());
    m_prompt->setEnabled(m_unsupported.isEmpty());
    for (QWidget* w : std::initializer_list<QWidget*>{m_rank, m_alpha, m_dropout, m_data, m_lr, m_batch, m_context,
                                                      m_seed, m_forPeft})
        w->setEnabled(!m_training);
    for (QCheckBox* b : m_targetBoxes)
        if (b->text() != QLatin1String("conv1d"))
            b->setEnabled(!m_training);
}

void FinetunePage::setDataPath(const QString& path) { m_data->setText(path); }
void FinetunePage::setComparePrompt(const QString& text) { m_prompt->setText(text); }

void FinetunePage::setTraining(int steps, int batch, int context, double lr)
{
    m_steps->setValue(steps);
    m_batch->setValue(batch);
    m_context->setValue(context);
    m_lr->setValue(lr);
}

void FinetunePage::setAdapter(int rank, double alpha, double dropout)
{
    m_rank->setValue(rank);
    m_alpha->setValue(alpha);
    m_dropout->setValue(dropout);
}

bool FinetunePage::confirmDiscard(const QString& action)
{
    // A finished or stopped run is kept in its folder (Previous runs), so only a running one asks.
    if (!m_training)
        return true;
    const QString q = tr("A fine-tune is running. Stop it to %1? It stops after the current step and its checkpoint "
                         "is kept under Previous runs, where Resume continues it.")
                          .arg(action);
    const bool ok = m_ask ? m_ask(q)
                          : QMessageBox::question(this, tr("Fine-tune running"), q,
                                                  QMessageBox::Yes | QMessageBox::Cancel,
                                                  QMessageBox::Cancel) == QMessageBox::Yes;
    if (ok && m_training)
        m_worker->cancel.store(true);
    return ok;
}

void FinetunePage::start()
{
    if (!m_base || m_training)
        return;
    const QString runDir = newRunDir();
    if (!QDir().mkpath(runDir)) {
        onFailed(tr("Could not start the fine-tune"),
                 tr("cannot create the run folder %1").arg(QDir::toNativeSeparators(runDir)));
        return;
    }
    FinetuneSettings s;
    s.dataPath = m_data->text().trimmed();
    s.rank = m_rank->value();
    s.alpha = m_alpha->value();
    s.dropout = m_dropout->value();
    s.lr = m_lr->value();
    s.targets = checkedTargets();
    s.steps = m_steps->value();
    s.batch = m_batch->value();
    s.context = m_context->value();
    s.seed = quint64(m_seed->value());
    s.checkpointDir = runDir;
    s.modelDir = m_modelDir;
    m_ckptDir = s.checkpointDir;
    m_runsView->clearSelection();
    m_series->clear();
    m_maxLoss = 0;
    m_doneStep = 0;
    m_axisX->setRange(0, s.steps);
    m_axisX->applyNiceNumbers(); // ticks at round steps (0, 50, 100 …), not 37, 75, 112
    m_progress->setRange(0, s.steps);
    m_progress->setValue(0);
    m_baseText->clear();
    m_adaptedText->clear();
    m_stats->setRowCount(0);
    m_training = true;
    m_hasAdapter = false;
    m_resumable = false;
    m_unsaved = false;
    m_status->setText(tr("Preparing the data and the adapter… (run folder %1)").arg(QDir::toNativeSeparators(runDir)));
    updateButtons();
    m_worker->cancel.store(false);
    QMetaObject::invokeMethod(m_worker, [w = m_worker, s] { w->start(s); });
}

void FinetunePage::cancel()
{
    if (m_training) {
        m_worker->cancel.store(true);
        m_status->setText(tr("Stopping after this step…"));
    }
}

void FinetunePage::resume()
{
    if (!m_base || m_training)
        return;
    QString dir = selectedRun();
    if (dir.isEmpty() && m_resumable)
        dir = m_ckptDir; // the run just stopped, before the list has caught up
    if (dir.isEmpty()) {
        m_status->setText(tr("Select a run under Previous runs to resume it."));
        return;
    }
    const FinetuneRun* run = nullptr;
    for (const FinetuneRun& r : m_runList)
        if (r.dir == dir)
            run = &r;
    const bool inMemory = dir == m_ckptDir && m_hasAdapter;
    const qint64 at = inMemory ? m_doneStep : run ? run->step : 0;
    if (run && !run->resumable) {
        m_status->setText(tr("The run %1 cannot be resumed: %2").arg(run->name, run->problem));
        return;
    }
    const int steps = m_steps->value();
    if (steps < at || (inMemory && steps == at)) {
        m_status->setText(tr("The checkpoint is at step %1: raise Steps above it to continue.").arg(at));
        return;
    }
    if (run && !inMemory)
        showHistory(run->history); // the curve so far, from the run's trainer_state.json
    m_training = true;
    m_resumingDir = dir;
    m_axisX->setRange(0, steps);
    m_axisX->applyNiceNumbers(); // ticks at round steps (0, 50, 100 …), not 37, 75, 112
    m_progress->setRange(0, steps);
    m_progress->setValue(int(at));
    m_status->setText(steps == at ? tr("Opening the run %1…").arg(QFileInfo(dir).fileName())
                                  : tr("Resuming %1 from step %2…").arg(QFileInfo(dir).fileName()).arg(at));
    updateButtons();
    m_worker->cancel.store(false);
    QMetaObject::invokeMethod(m_worker, [w = m_worker, dir, steps] { w->resume(dir, steps); });
}

QString FinetunePage::newRunDir() const
{
    const QString base = m_runsRoot + QLatin1Char('/') + QFileInfo(m_modelDir).fileName() + QLatin1Char('-') +
                         QDateTime::currentDateTime().toString(QStringLiteral("yyyyMMdd-HHmmss"));
    QString dir = base;
    for (int n = 2; QFileInfo::exists(dir); ++n)
        dir = base + QStringLiteral("-%1").arg(n);
    return dir;
}

void FinetunePage::refreshRuns()
{
    if (m_modelDir.isEmpty() || !m_unsupported.isEmpty())
        return;
    QMetaObject::invokeMethod(m_worker, [w = m_worker, root = m_runsRoot, model = m_modelDir] {
        w->listRuns(root, model);
    });
}

void FinetunePage::onRunsListed(const QString& modelDir, const QVector<FinetuneRun>& runs)
{
    if (modelDir != m_modelDir || !m_unsupported.isEmpty())
        return;
    const QString keep = selectedRun().isEmpty() ? m_ckptDir : selectedRun();
    m_runList = runs;
    const QSignalBlocker block(m_runsView);
    m_runsView->clear();
    qint64 bytes = 0;
    for (const FinetuneRun& r : runs) {
        bytes += r.bytes;
        QString text;
        if (r.resumable) {
            text = tr("%1 · step %2 of %3 · loss %4\nr %5 · %6 · %7")
                       .arg(r.saved.toString(QStringLiteral("yyyy-MM-dd HH:mm")))
                       .arg(r.step)
                       .arg(r.steps)
                       .arg(r.lastLoss, 0, 'f', 3)
                       .arg(r.settings.rank)
                       .arg(r.settings.targets.join(QLatin1Char('+')))
                       .arg(QFileInfo(r.settings.dataPath).fileName());
        } else {
            text = tr("%1 · no usable checkpoint").arg(r.name);
        }
        auto* item = new QListWidgetItem(text, m_runsView);
        item->setData(Qt::UserRole, r.dir);
        item->setToolTip(r.resumable ? tr("%1\n%2, %3").arg(QDir::toNativeSeparators(r.dir), sizeText(r.bytes),
                                                              r.step < r.steps ? tr("stopped: Resume continues it")
                                                                               : tr("finished: raise Steps to train on"))
                                     : tr("%1\n%2").arg(QDir::toNativeSeparators(r.dir), r.problem));
        if (!r.resumable)
            item->setForeground(QColor(0x80, 0x80, 0x80));
        if (r.dir == keep)
            item->setSelected(true);
    }
    m_leftTabs->setTabText(1, runs.isEmpty() ? tr("Previous runs") : tr("Previous runs (%1)").arg(runs.size()));
    if (auto* where = findChild<QLabel*>("finetune.runsFolder"))
        where->setText(tr("%1 run(s), %2, kept in %3")
                           .arg(runs.size())
                           .arg(sizeText(bytes))
                           .arg(QDir::toNativeSeparators(m_runsRoot)));
    if (!runs.isEmpty() && m_ckptDir.isEmpty() && !m_training && selectedRun().isEmpty())
        m_status->setText(tr("This model has %1 earlier fine-tune run(s): select one under Previous runs and "
                             "Resume to continue it, or Start a new one.")
                              .arg(runs.size()));
    updateButtons();
    emit runsListed();
}

QString FinetunePage::selectedRun() const
{
    const auto items = m_runsView->selectedItems();
    return items.isEmpty() ? QString() : items.front()->data(Qt::UserRole).toString();
}

void FinetunePage::selectRun(const QString& dir)
{
    if (m_training)
        return;
    const FinetuneRun* run = nullptr;
    for (const FinetuneRun& r : m_runList)
        if (r.dir == dir)
            run = &r;
    if (!run)
        return;
    if (selectedRun() != dir) {
        const QSignalBlocker block(m_runsView);
        for (int i = 0; i < m_runsView->count(); ++i)
            m_runsView->item(i)->setSelected(m_runsView->item(i)->data(Qt::UserRole).toString() == dir);
    }
    if (!run->resumable) {
        m_status->setText(tr("%1 has no usable checkpoint (%2); Delete run… removes it.").arg(run->name, run->problem));
        updateButtons();
        return;
    }
    fillForm(run->settings);
    m_steps->setValue(int(run->steps));
    showHistory(run->history);
    m_axisX->setRange(0, std::max<qint64>(1, run->steps));
    m_axisX->applyNiceNumbers(); // ticks at round steps (0, 50, 100 …), not 37, 75, 112
    m_progress->setRange(0, int(std::max<qint64>(1, run->steps)));
    m_progress->setValue(int(run->step));
    m_status->setText(run->step < run->steps
                          ? tr("%1: stopped at step %2 of %3 (loss %4). Resume continues it.")
                                .arg(run->name)
                                .arg(run->step)
                                .arg(run->steps)
                                .arg(run->lastLoss, 0, 'f', 4)
                          : tr("%1: finished, %2 steps (loss %3). Resume opens it to compare or save its adapter; raise "
                               "Steps to train on.")
                                .arg(run->name)
                                .arg(run->step)
                                .arg(run->lastLoss, 0, 'f', 4));
    updateButtons();
}

void FinetunePage::fillForm(const FinetuneSettings& s)
{
    m_data->setText(s.dataPath);
    setAdapter(s.rank, s.alpha, s.dropout);
    setTargets(s.targets);
    setTraining(s.steps, s.batch, s.context, s.lr);
    m_seed->setValue(int(s.seed));
}

void FinetunePage::showHistory(const QVector<QPointF>& points)
{
    m_series->clear();
    m_maxLoss = m_minLoss = 0;
    if (points.isEmpty())
        return;
    m_series->replace(QList<QPointF>(points.begin(), points.end()));
    m_minLoss = m_maxLoss = points.front().y();
    for (const QPointF& pt : points) {
        m_maxLoss = std::max(m_maxLoss, pt.y());
        m_minLoss = std::min(m_minLoss, pt.y());
    }
    const double pad = std::max(0.05, (m_maxLoss - m_minLoss) * 0.08);
    m_axisY->setRange(std::max(0.0, m_minLoss - pad), m_maxLoss + pad);
}

void FinetunePage::deleteRun(const QString& dir)
{
    if (dir.isEmpty() || m_training)
        return;
    const QString q = tr("Delete the run %1 (its checkpoint, adapter and loss curve)? This cannot be undone.")
                          .arg(QFileInfo(dir).fileName());
    const bool ok = m_ask ? m_ask(q)
                          : QMessageBox::question(this, tr("Delete fine-tune run"), q,
                                                  QMessageBox::Yes | QMessageBox::Cancel,
                                                  QMessageBox::Cancel) == QMessageBox::Yes;
    if (!ok)
        return;
    QMetaObject::invokeMethod(m_worker, [w = m_worker, root = m_runsRoot, dir] { w->deleteRun(root, dir); });
}

void FinetunePage::onProgress(const FinetuneProgress& p)
{
    for (const QPointF& pt : p.points) {
        m_series->append(pt);
        m_maxLoss = std::max(m_maxLoss, pt.y());
        m_minLoss = m_series->count() == 1 ? pt.y() : std::min(m_minLoss, pt.y());
    }
    // the curve fills the chart, so a drop of a few tenths is visible
    const double pad = std::max(0.05, (m_maxLoss - m_minLoss) * 0.08);
    m_axisY->setRange(std::max(0.0, m_minLoss - pad), m_maxLoss + pad);
    m_progress->setValue(int(p.step));
    m_status->setText(tr("step %1 of %2 · loss %3 · %4 tokens/s · %5 left")
                          .arg(p.step)
                          .arg(p.steps)
                          .arg(p.loss, 0, 'f', 4)
                          .arg(p.tokensPerSecond, 0, 'f', 0)
                          .arg(timeText(p.etaSeconds)));
}

void FinetunePage::onFinished(const FinetuneDone& d)
{
    m_training = false;
    m_hasAdapter = true;
    m_unsaved = true;
    m_doneStep = d.step;
    m_resumable = true; // from the checkpoint: a stopped run, or a finished one given more steps
    m_ckptDir = d.checkpointDir;
    m_resumingDir.clear();
    m_progress->setValue(int(d.step));
    if (d.cancelled)
        m_status->setText(tr("Stopped at step %1 of %2 (loss %3). The run is kept under Previous runs (%4): Resume "
                             "continues it, also after restarting ArchLens.")
                              .arg(d.step)
                              .arg(d.steps)
                              .arg(d.lastLoss, 0, 'f', 4)
                              .arg(QDir::toNativeSeparators(d.checkpointDir)));
    else if (d.openedOnly)
        m_status->setText(tr("Opened %1: %2 steps, final loss %3. Save adapter exports it; raise Steps and Resume "
                             "to train on.")
                              .arg(QFileInfo(d.checkpointDir).fileName())
                              .arg(d.step)
                              .arg(d.lastLoss, 0, 'f', 4));
    else
        m_status->setText(tr("Done: %1 steps in %2, final loss %3. The run is kept under Previous runs; Save "
                             "adapter exports it for PEFT (or raise Steps and Resume to train on).")
                              .arg(d.step)
                              .arg(timeText(d.seconds))
                              .arg(d.lastLoss, 0, 'f', 4));
    updateButtons();
    refreshRuns();
    emit trainingFinished(d);
    if (!d.cancelled)
        compare();
}

void FinetunePage::compare()
{
    if (!m_hasAdapter || m_training)
        return;
    QString prompt = m_prompt->text();
    if (prompt.isEmpty()) {
        prompt = QStringLiteral("The");
        m_prompt->setText(prompt);
    }
    m_compare->setEnabled(false);
    QMetaObject::invokeMethod(m_worker, [w = m_worker, prompt, n = m_newTokens->value()] { w->compare(prompt, n); });
}

void FinetunePage::onCompared(const FinetuneComparison& c)
{
    m_compare->setEnabled(m_hasAdapter && !m_training);
    m_baseText->setPlainText(c.prompt + c.baseText);
    m_adaptedText->setPlainText(c.prompt + c.adaptedText);
    m_stats->setRowCount(int(c.before.size()));
    fitStatsRows(std::min(8, std::max(4, m_stats->rowCount()))); // a small model's every layer; more scroll
    for (int i = 0; i < c.before.size() && i < c.after.size(); ++i) {
        const auto& b = c.before[i];
        const auto& a = c.after[i];
        const double pairs[6][2] = {{b.deltaMean, a.deltaMean}, {b.deltaStd, a.deltaStd}, {b.bMean, a.bMean},
                                    {b.bStd, a.bStd},           {b.cMean, a.cMean},       {b.cStd, a.cStd}};
        m_stats->setItem(i, 0, new QTableWidgetItem(QString::number(b.layer)));
        for (int k = 0; k < 6; ++k) {
            auto* item = new QTableWidgetItem(beforeAfter(pairs[k][0], pairs[k][1]));
            const double rel = std::fabs(pairs[k][1] - pairs[k][0]) / std::max(1e-9, std::fabs(pairs[k][0]));
            if (rel > 0.05)
                item->setForeground(QColor(0xb3, 0x59, 0x00)); // changed by more than 5 %
            m_stats->setItem(i, k + 1, item);
        }
    }
    emit comparisonReady();
}

void FinetunePage::saveAdapterTo(const QString& dir)
{
    if (!m_hasAdapter || m_training)
        return;
    QMetaObject::invokeMethod(m_worker, [w = m_worker, dir] { w->saveAdapter(dir); });
}

void FinetunePage::onFailed(const QString& what, const QString& message)
{
    if (m_training) {
        m_training = false;
        m_resumingDir.clear();
        // a failure during training leaves what the last checkpoint holds
        refreshRuns();
    }
    m_compare->setEnabled(m_hasAdapter);
    m_status->setText(QStringLiteral("<span style='color:#b00020'><b>%1:</b> %2</span>")
                          .arg(what.toHtmlEscaped(), message.toHtmlEscaped()));
    updateButtons();
    emit failed(what + ": " + message);
}

} // namespace archlens::ui
