#include "views/moe_panel.h"

#include <QComboBox>
#include <QDir>
#include <QDockWidget>
#include <QMainWindow>
#include <QFileDialog>
#include <QFileInfo>
#include <QHBoxLayout>
#include <QLabel>
#include <QMenu>
#include <QMessageBox>
#include <QMouseEvent>
#include <QProgressBar>
#include <QPushButton>
#include <QSpinBox>
#include <QTabWidget>
#include <QThread>
#include <QToolButton>
#include <QVBoxLayout>

#include <algorithm>
#include <cmath>
#include <optional>

#include "analysis/route_report.h"
#include "base/error.h"
#include "export/exporter.h"
#include "models/model.h"
#include "render/hidden_attention_worker.h"
#include "session/selection.h"
#include "session/session_controller.h"
#include "session/trace_model.h"
#include "tokenizer/tokenizer.h"
#include "views/attention_figures.h"
#include "views/figure_widget.h"

namespace archlens::ui {

// Reads a trace's routing datasets off the UI thread (the panel's own thread holds no model:
// a live run's routing comes from the session's worker, corpora run on the session's model).
class MoeWorker : public QObject {
    Q_OBJECT
};

namespace {
struct ViewInfo {
    const char* key;
    const char* title;
};
const ViewInfo kViews[] = {
    {"router", "Router"},
    {"router-overview", "Router, all layers"},
    {"expert-load", "Expert load"},
    {"expert-path", "Expert path"},
    {"coactivation", "Co-activation"},
    {"attention", "Attention"},
    {"attention-overview", "Attention, layers × heads"},
    {"hidden-attention", "Hidden attention"},
    {"layer-map", "Layer map"},
};
} // namespace

MoePanel::MoePanel(TraceModel* model, Selection* sel, QWidget* parent)
    : QWidget(parent)
    , m_model(model)
    , m_sel(sel)
{
    setObjectName("panel.moe");
    // computed on the HiddenAttentionWorker: a mean over channels stays within a few seconds
    m_src.hiddenAttentionAsync = true;
    m_src.hiddenAttentionWork = 3e9;
    auto* v = new QVBoxLayout(this);
    v->setContentsMargins(2, 2, 2, 2);
    auto* bar = new QHBoxLayout;
    bar->addWidget(new QLabel(tr("Head")));
    m_head = new QSpinBox;
    m_head->setRange(0, 0);
    m_head->setToolTip(tr("Attention head shown in the Attention tab"));
    bar->addWidget(m_head);
    bar->addWidget(new QLabel(tr("Hidden attention")));
    m_channels = new QComboBox;
    m_channels->addItems({tr("mean over channels"), tr("selected channel")});
    bar->addWidget(m_channels);
    auto* corpora = new QToolButton;
    corpora->setText(tr("Corpora…"));
    corpora->setToolTip(tr("Route a text file or folder (or a bundled sample corpus) through the model and compare "
                           "expert load side by side"));
    corpora->setPopupMode(QToolButton::InstantPopup);
    auto* menu = new QMenu(corpora);
    for (int slot = 0; slot < 2; ++slot) {
        menu->addAction(tr("Corpus %1: choose a file…").arg(slot + 1), this, [this, slot] { chooseCorpus(slot); });
        menu->addAction(tr("Corpus %1: choose a folder…").arg(slot + 1), this, [this, slot] {
            const QString dir = QFileDialog::getExistingDirectory(this, tr("Corpus folder"), m_samples);
            if (!dir.isEmpty())
                setCorpus(slot, dir);
        });
        auto* samples = menu->addMenu(tr("Corpus %1: sample corpus").arg(slot + 1));
        connect(samples, &QMenu::aboutToShow, this, [this, samples, slot] {
            samples->clear();
            const QStringList domains = QDir(m_samples).entryList(QDir::Dirs | QDir::NoDotAndDotDot);
            for (const QString& d : domains)
                if (d != QLatin1String("licenses"))
                    samples->addAction(d, this, [this, slot, d] { setCorpus(slot, m_samples + "/" + d + "/heldout.txt"); });
            if (samples->isEmpty())
                samples->addAction(tr("(no sample corpora found)"))->setEnabled(false);
        });
        menu->addSeparator();
    }
    menu->addAction(tr("Clear corpora"), this, [this] {
        m_src.corpora.clear();
        refresh();
    });
    corpora->setMenu(menu);
    bar->addWidget(corpora);
    m_progress = new QProgressBar;
    m_progress->setMaximumWidth(160);
    m_progress->setVisible(false);
    bar->addWidget(m_progress);
    m_cancel = new QPushButton(tr("Cancel"));
    m_cancel->setVisible(false);
    bar->addWidget(m_cancel);
    m_status = new QLabel;
    m_status->setTextInteractionFlags(Qt::TextSelectableByMouse);
    bar->addWidget(m_status, 1);
    v->addLayout(bar);

    m_tabs = new QTabWidget;
    m_tabs->setDocumentMode(true);
    for (const ViewInfo& vi : kViews) {
        const QString key = QString::fromLatin1(vi.key);
        std::unique_ptr<Figure> f;
        if (key == "router")
            f = std::make_unique<RouterFigure>(model, sel, &m_src);
        else if (key == "router-overview")
            f = std::make_unique<RouterOverviewFigure>(model, sel, &m_src);
        else if (key == "expert-load")
            f = std::make_unique<ExpertLoadFigure>(model, sel, &m_src);
        else if (key == "expert-path")
            f = std::make_unique<ExpertPathFigure>(model, sel, &m_src);
        else if (key == "coactivation")
            f = std::make_unique<CoactivationFigure>(model, sel, &m_src);
        else if (key == "attention")
            f = std::make_unique<AttentionFigure>(model, sel, &m_src);
        else if (key == "attention-overview")
            f = std::make_unique<AttentionOverviewFigure>(model, sel, &m_src);
        else if (key == "hidden-attention")
            f = std::make_unique<HiddenAttentionFigure>(model, sel, &m_src);
        else
            f = std::make_unique<LayerMapFigure>(model, sel, &m_src);
        auto* w = new FigureWidget(std::move(f), model, sel);
        w->setObjectName("view." + key);
        w->installEventFilter(this);
        connect(w, &FigureWidget::exportRequested, this, [this](Figure* fig) {
            const QString file = QFileDialog::getSaveFileName(this, tr("Export view"), fig->key() + ".png",
                                                              tr("Images and data (*.png *.svg *.pdf *.csv)"));
            if (file.isEmpty())
                return;
            try {
                exportFigures(file, {fig}, ExportOptions{});
            } catch (const std::exception& e) {
                QMessageBox::warning(this, tr("Export"), QString::fromUtf8(e.what()));
            }
        });
        m_tabs->addTab(w, tr(vi.title));
    }
    v->addWidget(m_tabs, 1);

    connect(m_head, qOverload<int>(&QSpinBox::valueChanged), this, [this](int h) {
        static_cast<AttentionFigure*>(view("attention")->figure())->setHead(h);
        view("attention")->update();
    });
    connect(m_channels, qOverload<int>(&QComboBox::currentIndexChanged), this, [this](int i) {
        static_cast<HiddenAttentionFigure*>(view("hidden-attention")->figure())->setFollowChannel(i == 1);
        view("hidden-attention")->update();
    });

    m_thread = new QThread(this);
    m_thread->setObjectName("moe-worker");
    m_worker = new MoeWorker;
    m_worker->moveToThread(m_thread);
    connect(m_thread, &QThread::finished, m_worker, &QObject::deleteLater);
    m_thread->start();

    connect(model, &TraceModel::cleared, this, &MoePanel::onCleared);
    connect(model, &TraceModel::routingChanged, this, [this] {
        if (const auto& d = m_model->routing())
            applySnapshot(*d);
    });
    connect(m_cancel, &QPushButton::clicked, this, [this] {
        for (auto& f : m_cancelFlags)
            if (f)
                f->store(true);
    });
}

MoePanel::~MoePanel()
{
    for (auto& f : m_cancelFlags)
        if (f)
            f->store(true);
    m_thread->quit();
    m_thread->wait();
}

FigureWidget* MoePanel::view(const QString& key) const { return findChild<FigureWidget*>("view." + key); }

bool MoePanel::showView(const QString& key)
{
    FigureWidget* w = view(key);
    if (!w)
        return false;
    m_tabs->setCurrentWidget(w);
    return true;
}

// routing a corpus, reading a trace, or hidden attention being computed
bool MoePanel::isBusy() const { return m_pending > 0 || !HiddenAttentionWorker::instance().idle(); }

void MoePanel::onCleared()
{
    // which docks come forward for the model's kind: LayoutController (layout_controller.h)
    ++m_generation;
    m_src.routing = {};
    ++m_src.version;
    const RunMeta meta = m_model->meta();
    if (meta.source.endsWith(QLatin1String(".h5"))) {
        // a trace: its moe/ and attn/ datasets, no model
        const quint64 gen = m_generation;
        QPointer<MoePanel> self(this);
        ++m_pending;
        const QString path = meta.source;
        QMetaObject::invokeMethod(m_worker, [self, gen, path] {
            analysis::RoutingData d;
            QString err;
            try {
                d = analysis::readRoutingTrace(path.toStdString());
            } catch (const std::exception& e) {
                err = QString::fromUtf8(e.what());
            }
            QMetaObject::invokeMethod(self, [self, gen, d, err] {
                if (!self)
                    return;
                --self->m_pending;
                if (gen != self->m_generation)
                    return;
                self->m_status->setText(err.isEmpty() ? tr("from the trace") : err);
                self->applySnapshot(d);
            });
        });
        return;
    }
    // a live run: the session's worker records routing and attention weights from the same
    // forward passes (ModelWorker::routing -> TraceModel::routingChanged); a pure Mamba model has
    // none and hidden attention reads the session's own probes
    m_status->clear();
    applySnapshot(m_model->routing() ? *m_model->routing() : analysis::RoutingData{});
}

void MoePanel::applySnapshot(const analysis::RoutingData& d)
{
    m_src.routing = d;
    ++m_src.version;
    int64_t heads = 0;
    for (int l : d.attentionLayers())
        heads = std::max(heads, d.attention(l)->heads);
    m_head->setRange(0, int(std::max<int64_t>(heads - 1, 0)));
    refresh();
}

void MoePanel::refresh()
{
    for (FigureWidget* w : findChildren<FigureWidget*>())
        w->update();
    emit updated();
}

void MoePanel::onLayerClicked(int layer)
{
    m_sel->setLayer(layer);
    if (m_src.routing.attention(layer))
        showView("attention");
    else if (m_model->isMambaLayer(layer) && m_model->series(layer, Probe::SsmDelta))
        showView("hidden-attention");
    else if (m_src.routing.routing(layer))
        showView("router");
}

bool MoePanel::eventFilter(QObject* o, QEvent* e)
{
    if (e->type() == QEvent::MouseButtonDblClick)
        if (auto* w = qobject_cast<FigureWidget*>(o))
            if (auto* f = dynamic_cast<MoeFigureBase*>(w->figure())) {
                const int l = f->layerAt(static_cast<QMouseEvent*>(e)->position());
                if (l >= 0) {
                    onLayerClicked(l);
                    return true;
                }
            }
    if (e->type() == QEvent::MouseButtonRelease)
        if (auto* w = qobject_cast<FigureWidget*>(o))
            if (auto* f = dynamic_cast<MoeFigureBase*>(w->figure()); f && (f->key() == "layer-map" ||
                                                                          f->key().endsWith("overview"))) {
                const int l = f->layerAt(static_cast<QMouseEvent*>(e)->position());
                if (l >= 0)
                    onLayerClicked(l);
            }
    return QWidget::eventFilter(o, e);
}

void MoePanel::chooseCorpus(int slot)
{
    const QString file = QFileDialog::getOpenFileName(this, tr("Corpus text file"), m_samples,
                                                      tr("Text (*.txt *.md *.py *.c *.h *.csv);;All files (*)"));
    if (!file.isEmpty())
        setCorpus(slot, file);
}

void MoePanel::setCorpus(int slot, const QString& path)
{
    if (path.isEmpty()) {
        if (size_t(slot) < m_src.corpora.size())
            m_src.corpora.erase(m_src.corpora.begin() + slot);
        refresh();
        return;
    }
    slot = std::clamp(slot, 0, 1);
    if (m_cancelFlags[slot])
        m_cancelFlags[slot]->store(true); // a newer corpus for this slot replaces the running one
    auto cancel = std::make_shared<std::atomic<bool>>(false);
    m_cancelFlags[slot] = cancel;
    ++m_corporaRunning;
    m_progress->setVisible(true);
    m_progress->setRange(0, 100);
    m_progress->setValue(0);
    m_cancel->setVisible(true);
    QFileInfo fi(path);
    QString name = fi.fileName();
    if (name == QLatin1String("heldout.txt") || name == QLatin1String("train.txt"))
        name = fi.dir().dirName() + "/" + name;
    m_status->setText(tr("routing %1…").arg(name));
    QPointer<MoePanel> self(this);
    ++m_pending;
    auto route = [self, slot, path, name, cancel](Model* model, const Tokenizer* tok) {
        CorpusRoute cr;
        cr.name = name;
        cr.source = path;
        QString err;
        try {
            if (!model)
                throw Error(ErrorCode::InvalidArgument, "open a model first: corpora are routed through the session's model");
            if (!tok)
                throw Error(ErrorCode::InvalidArgument, "the model folder has no tokenizer.json to encode the corpus");
            std::vector<int32_t> ids;
            for (const auto& [file, text] : analysis::readCorpus(path.toStdString())) {
                const auto part = tok->encode(text, false);
                ids.insert(ids.end(), part.begin(), part.end());
            }
            cr.complete = analysis::routeTokens(*model, ids, cr.route, analysis::kDefaultRouteChunk,
                                                [self, cancel](int64_t done, int64_t total) {
                                                    const int pct = int(100 * done / std::max<int64_t>(total, 1));
                                                    QMetaObject::invokeMethod(self, [self, pct] {
                                                        if (self)
                                                            self->m_progress->setValue(pct);
                                                    });
                                                    return !cancel->load();
                                                });
        } catch (const std::exception& e) {
            err = QString::fromUtf8(e.what());
        }
        std::function<QString(int32_t)> text;
        if (tok) {
            const Tokenizer copy = *tok;
            text = [copy](int32_t id) { return QString::fromStdString(copy.tokenText(id)); };
        }
        QMetaObject::invokeMethod(self, [self, slot, cr = std::move(cr), err, text]() mutable {
            if (!self)
                return;
            --self->m_pending;
            if (--self->m_corporaRunning == 0) {
                self->m_progress->setVisible(false);
                self->m_cancel->setVisible(false);
            }
            if (!err.isEmpty()) {
                self->m_status->setText(tr("corpus: %1").arg(err));
                return;
            }
            self->m_status->setText(cr.complete ? tr("%1: %2 tokens routed").arg(cr.name).arg(cr.route.tokens())
                                                : tr("%1: cancelled after %2 tokens").arg(cr.name).arg(cr.route.tokens()));
            if (text)
                self->m_src.tokenText = text;
            if (size_t(slot) < self->m_src.corpora.size())
                self->m_src.corpora[size_t(slot)] = std::move(cr);
            else
                self->m_src.corpora.push_back(std::move(cr));
            ++self->m_src.version;
            self->showView("expert-load");
            self->refresh();
            emit self->corpusFinished(slot);
        });
    };
    if (m_session) {
        m_session->withModel(route);
    } else {
        --m_pending;
        m_status->setText(tr("corpus: no session to route it through"));
        if (--m_corporaRunning == 0) {
            m_progress->setVisible(false);
            m_cancel->setVisible(false);
        }
    }
}

} // namespace archlens::ui

#include "moe_panel.moc"
