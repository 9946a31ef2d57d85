#include "views/figure_widget.h"

#include <QApplication>
#include <QClipboard>
#include <QContextMenuEvent>
#include <QElapsedTimer>
#include <QHelpEvent>
#include <QMenu>
#include <QMouseEvent>
#include <QPainter>
#include <QTimer>
#include <QToolTip>
#include <QWheelEvent>

#include <cmath>

namespace archlens::ui {

FigureWidget::FigureWidget(std::unique_ptr<Figure> figure, TraceModel* model, Selection* selection, QWidget* parent)
    : QWidget(parent)
    , m_figure(std::move(figure))
    , m_sel(selection)
{
    setMouseTracking(false);
    setFocusPolicy(Qt::ClickFocus);
    setMinimumSize(200, 140);
    setAttribute(Qt::WA_OpaquePaintEvent);
    connect(model, &TraceModel::grew, this, qOverload<>(&QWidget::update));
    connect(model, &TraceModel::cleared, this, [this] {
        m_figure->resetZoom();
        update();
    });
    connect(selection, &Selection::changed, this, qOverload<>(&QWidget::update));
    connect(RenderWorker::instance(), &RenderWorker::rendered, this,
            [this](quintptr client, quint64 key, const QImage& img) {
                if (client != quintptr(this) || key != m_pendingKey)
                    return;
                m_image = img;
                m_imageKey = key;
                update();
            });
}

void FigureWidget::setFigure(std::unique_ptr<Figure> figure)
{
    m_figure = std::move(figure);
    m_imageKey = m_pendingKey = 0;
    m_image = QImage();
    update();
}

FigureWidget::~FigureWidget() { RenderWorker::instance()->forget(this); }

QSize FigureWidget::sizeHint() const { return m_figure->preferredSize() * 0.6; }

QImage FigureWidget::image(const HeatmapRequest& req)
{
    if (req.key == m_imageKey && !m_image.isNull())
        return m_image;
    const int64_t cells = std::min<int64_t>(req.columns(), req.pixels.width()) *
                          std::min<int64_t>(int64_t(req.rows.size()), req.pixels.height());
    if (cells <= kInlineCells || m_image.isNull()) {
        m_image = renderHeatmap(req);
        m_imageKey = req.key;
        return m_image;
    }
    if (req.key != m_pendingKey) {
        m_pendingKey = req.key;
        RenderWorker::instance()->submit(this, req);
    }
    return m_image;
}

void FigureWidget::paintEvent(QPaintEvent*)
{
    ++m_paints;
    QElapsedTimer timer;
    timer.start();
    QPainter p(this);
    m_figure->paint(p, QRectF(rect()), Theme::screen(palette(), font()),
                    [this](const HeatmapRequest& r) { return image(r); });
    if (const int later = m_figure->repaintAfterMs(); later > 0)
        QTimer::singleShot(later, this, qOverload<>(&QWidget::update));
    if (qEnvironmentVariableIsSet("ARCHLENS_DEBUG_PAINT"))
        qInfo("paint %s: %.2f ms", qPrintable(m_figure->key()), double(timer.nsecsElapsed()) / 1e6);
}

void FigureWidget::mousePressEvent(QMouseEvent* e)
{
    if (e->button() != Qt::LeftButton)
        return;
    m_pressPos = m_lastPos = e->position();
    m_dragging = false;
}

void FigureWidget::mouseMoveEvent(QMouseEvent* e)
{
    if (!(e->buttons() & Qt::LeftButton))
        return;
    if (!m_dragging && (e->position() - m_pressPos).manhattanLength() > 6)
        m_dragging = true;
    if (m_dragging) {
        m_figure->panBy(e->position() - m_lastPos);
        m_lastPos = e->position();
        update();
    }
}

void FigureWidget::mouseReleaseEvent(QMouseEvent* e)
{
    if (e->button() != Qt::LeftButton || m_dragging)
        return;
    const FigureHit h = m_figure->hitAt(e->position());
    if (h.channel >= 0)
        m_sel->setChannel(h.channel);
    if (h.stateDim >= 0)
        m_sel->setStateDim(h.stateDim);
    if (h.token >= 0)
        m_sel->setToken(h.token);
}

void FigureWidget::mouseDoubleClickEvent(QMouseEvent*)
{
    m_figure->resetZoom();
    update();
}

void FigureWidget::wheelEvent(QWheelEvent* e)
{
    const double steps = e->angleDelta().y() / 120.0;
    if (steps == 0)
        return;
    const bool vertical = e->modifiers() & (Qt::ControlModifier | Qt::ShiftModifier);
    m_figure->zoomAt(e->position(), std::pow(1.25, steps), vertical ? Qt::Vertical : Qt::Horizontal);
    update();
    e->accept();
}

bool FigureWidget::event(QEvent* e)
{
    if (e->type() == QEvent::ToolTip) {
        auto* he = static_cast<QHelpEvent*>(e);
        const QString tip = m_figure->toolTipAt(he->pos());
        if (tip.isEmpty())
            QToolTip::hideText();
        else
            QToolTip::showText(he->globalPos(), tip, this);
        return true;
    }
    return QWidget::event(e);
}

void FigureWidget::contextMenuEvent(QContextMenuEvent* e)
{
    QMenu menu(this);
    menu.addAction(tr("Export this view…"), this, [this] { emit exportRequested(m_figure.get()); });
    menu.addAction(tr("Copy the numbers (CSV)"), this,
                   [this] { QApplication::clipboard()->setText(m_figure->csv()); });
    menu.addAction(tr("Reset zoom"), this, [this] {
        m_figure->resetZoom();
        update();
    });
    menu.exec(e->globalPos());
}

} // namespace archlens::ui
