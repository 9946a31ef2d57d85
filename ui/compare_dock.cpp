#include "compare_dock.h"

#include <QComboBox>
#include <QFileDialog>
#include <QHBoxLayout>
#include <QLabel>
#include <QPushButton>
#include <QSpinBox>
#include <QVBoxLayout>

#include <algorithm>

#include "session/selection.h"
#include "session/session_controller.h"
#include "views/attention_figures.h"
#include "views/figure_widget.h"
#include "views/heatmap_figures.h"

namespace archlens::ui {

CompareDock::CompareDock(SessionController* a, SessionController* b, Selection* sel, const MoeSource* srcA,
                         QWidget* parent)
    : QDockWidget(tr("Compare (session B)"), parent)
    , m_a(a)
    , m_b(b)
    , m_sel(sel)
    , m_srcA(srcA)
{
    setObjectName("dock.compare");
    m_srcB.hiddenAttentionAsync = true;
    m_srcB.hiddenAttentionWork = 3e9;
    auto* box = new QWidget;
    auto* v = new QVBoxLayout(box);
    auto* row = new QHBoxLayout;
    m_label = new QLabel(tr("Session B: no model. Open one to compare it with session A on the same prompt."));
    m_label->setWordWrap(true);
    auto* open = new QPushButton(tr("Open model…"));
    m_mode = new QComboBox;
    m_mode->setObjectName("compare.mode");
    m_mode->addItem(tr("B: Δ"), QStringLiteral("delta"));
    m_mode->addItem(tr("B: ‖h‖"), QStringLiteral("state-norm"));
    m_mode->addItem(tr("A | B attention (hidden attention for Mamba)"), QStringLiteral("attention"));
    m_mode->setToolTip(tr("Attention side by side: each model's attention, or a Mamba model's hidden attention, on the "
                          "same prompt and token"));
    m_layerB = new QSpinBox;
    m_layerB->setObjectName("compare.layerB");
    m_layerB->setRange(-1, 0);
    m_layerB->setSpecialValueText(tr("auto"));
    m_layerB->setPrefix(tr("B layer "));
    m_layerB->setValue(-1);
    m_layerB->setToolTip(tr("Layer of session B in the attention comparison (auto: its first attention layer, or "
                            "first Mamba layer)"));
    m_layerB->setVisible(false);
    row->addWidget(m_label, 1);
    row->addWidget(m_mode);
    row->addWidget(m_layerB);
    row->addWidget(open);
    v->addLayout(row);
    m_view = new FigureWidget(std::make_unique<TokenHeatmapFigure>(b->model(), sel, Quantity::Delta), b->model(), sel);
    m_view->setObjectName("view.compare");
    v->addWidget(m_view, 1);
    setWidget(box);

    connect(open, &QPushButton::clicked, this, [this] {
        const QString dir = QFileDialog::getExistingDirectory(this, tr("Model for session B"));
        if (!dir.isEmpty())
            m_b->openModel(dir, m_backend ? m_backend() : QStringLiteral("auto"));
    });
    connect(m_mode, &QComboBox::currentIndexChanged, this, [this] {
        rebuild();
        if (mode() == QLatin1String("attention"))
            raise(); // in front of the docks it is tabbed with
    });
    connect(m_layerB, qOverload<int>(&QSpinBox::valueChanged), this, [this] { rebuild(); });
    connect(m_b, &SessionController::modelLoaded, this, [this](const ModelSummary& s) {
        m_label->setText(tr("Session B: <b>%1</b> (%2). Run runs both sessions on the same prompt.").arg(s.name, s.architecture));
        const QString prompt = m_prompt ? m_prompt() : QString();
        if (!m_a->model()->meta().prompt.isEmpty() || !prompt.isEmpty())
            m_b->run(prompt, true, m_settings ? m_settings() : GenerationSettings{});
    });
    connect(m_b, &SessionController::failed, this, [this](const QString& what, const QString& msg) {
        m_label->setText(tr("Session B: %1: %2").arg(what, msg));
    });
    // B's routing and attention weights come from its own session's worker
    connect(m_b->model(), &TraceModel::routingChanged, this, [this] {
        if (const auto& d = m_b->model()->routing()) {
            m_srcB.routing = *d;
            ++m_srcB.version;
            m_view->update();
        }
    });
    connect(m_b->model(), &TraceModel::cleared, this, [this] {
        m_srcB.routing = m_b->model()->routing() ? *m_b->model()->routing() : analysis::RoutingData{};
        ++m_srcB.version;
        m_layerB->setRange(-1, std::max(0, m_b->model()->layerCount() - 1));
        rebuild();
    });
    // A's side is drawn from A's model and the panel's source: repaint as they change
    connect(m_a->model(), &TraceModel::cleared, this, [this] { rebuild(); });
    connect(m_a->model(), &TraceModel::grew, m_view, qOverload<>(&QWidget::update));
    connect(m_a->model(), &TraceModel::routingChanged, m_view, qOverload<>(&QWidget::update));
    connect(m_sel, &Selection::layerChanged, this, [this] {
        if (mode() == QLatin1String("attention"))
            rebuild();
    });
}

void CompareDock::setProviders(std::function<QString()> prompt, std::function<QString()> backend,
                               std::function<GenerationSettings()> settings)
{
    m_prompt = std::move(prompt);
    m_backend = std::move(backend);
    m_settings = std::move(settings);
}

bool CompareDock::setMode(const QString& mode)
{
    const int i = m_mode->findData(mode);
    if (i < 0)
        return false;
    m_mode->setCurrentIndex(i);
    return true;
}

QString CompareDock::mode() const { return m_mode->currentData().toString(); }

void CompareDock::setLayerB(int layer) { m_layerB->setValue(layer); }

void CompareDock::rebuild()
{
    const QString m = mode();
    m_layerB->setVisible(m == QLatin1String("attention"));
    if (m != QLatin1String("attention")) {
        m_view->setFigure(std::make_unique<TokenHeatmapFigure>(
            m_b->model(), m_sel, m == QLatin1String("state-norm") ? Quantity::StateNorm : Quantity::Delta));
        return;
    }
    auto left = makeAttentionSide(m_a->model(), m_sel, m_srcA, m_sel->layer(), 0);
    auto right = makeAttentionSide(m_b->model(), m_sel, &m_srcB, m_layerB->value(), 0);
    if (!left || !right) {
        // a side with neither attention nor Mamba layers (or no model yet): say so in the view
        m_view->setFigure(std::make_unique<TokenHeatmapFigure>(m_b->model(), m_sel, Quantity::Delta));
        m_label->setText(tr("Attention side by side needs a model with attention or Mamba layers in both sessions "
                            "(A: %1, B: %2).")
                             .arg(m_a->model()->meta().modelName.isEmpty() ? tr("none") : m_a->model()->meta().modelName,
                                  m_b->model()->meta().modelName.isEmpty() ? tr("none") : m_b->model()->meta().modelName));
        return;
    }
    m_view->setFigure(std::make_unique<SideBySideFigure>(std::move(left), std::move(right)));
}

} // namespace archlens::ui
