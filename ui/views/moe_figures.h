// The mixture-of-experts views, drawn from a MoeSource (routing recorded live or read from a
// trace) and the TraceModel's tokens; every number comes from core/analysis/moe_analysis.
//   RouterFigure        "router"           tokens × experts, the full softmax; chosen top-k outlined
//                                          (slot 1 solid, later slots dashed), topk_weights on hover
//   RouterOverviewFigure "router-overview" the same for every MoE layer, small multiples
//   ExpertLoadFigure    "expert-load"      picks per expert (QtCharts bars) with the uniform line;
//                                          prompt vs generated tokens; corpora side by side (shares)
//   ExpertPathFigure    "expert-path"      token strip coloured by top-1 expert (selected layer) and
//                                          the layers × tokens grid of top-1 experts
//   CoactivationFigure  "coactivation"     X × X: tokens whose top-k holds both experts
// Balance readouts (cv, max violation, mean entropy, load-balancing loss) and collapse warnings
// appear in the subtitles of router and expert-load.
#pragma once

#include <memory>

#include "views/figure.h"
#include "views/matrix_paint.h"
#include "views/moe_source.h"

class QChart;
class QGraphicsScene;

namespace archlens::ui {

class MoeFigureBase : public Figure {
public:
    MoeFigureBase(const TraceModel* model, const Selection* sel, const MoeSource* src);
    QString unavailableReason() const override; // needs a MoE layer (all-layer views: any)
    // Layer chosen by a click (layer-map, expert-path, overviews), -1 elsewhere.
    virtual int layerAt(QPointF) const { return -1; }

protected:
    virtual bool allLayers() const { return false; }
    const analysis::LayerRouting* routing() const { return m_src->routing.routing(layer()); }
    QString tokenText(int64_t t) const { return visibleTokenText(m_model->texts().value(int(t))); }
    QString balanceLine(const analysis::BalanceReadout& b) const;
    const MoeSource* m_src;
};

class RouterFigure : public MoeFigureBase {
public:
    using MoeFigureBase::MoeFigureBase;
    QString key() const override { return QStringLiteral("router"); }
    QString quantity() const override { return QObject::tr("router probabilities (full softmax) and chosen top-k"); }
    void paint(QPainter& p, const QRectF& r, const Theme& t, const ImageSource& images) override;
    QString csv() const override;
    QString toolTipAt(QPointF pos) const override;
    FigureHit hitAt(QPointF pos) const override;
    // The probability the view shows for (token, expert), NaN outside the data; whether it is marked chosen.
    float shownProbability(int64_t token, int64_t expert) const;
    int chosenSlot(int64_t token, int64_t expert) const; // 0-based slot, -1 when not chosen

private:
    MatrixGeometry m_geom;
};

class RouterOverviewFigure : public MoeFigureBase {
public:
    using MoeFigureBase::MoeFigureBase;
    QString key() const override { return QStringLiteral("router-overview"); }
    QString quantity() const override { return QObject::tr("router probabilities, every MoE layer"); }
    QString title() const override;
    void paint(QPainter& p, const QRectF& r, const Theme& t, const ImageSource& images) override;
    QString csv() const override;
    QString toolTipAt(QPointF pos) const override;
    int layerAt(QPointF pos) const override;
    QSize preferredSize() const override { return {1000, 700}; }

protected:
    bool allLayers() const override { return true; }

private:
    std::vector<std::pair<int, QRectF>> m_cells;
};

class ExpertLoadFigure : public MoeFigureBase {
public:
    ExpertLoadFigure(const TraceModel* model, const Selection* sel, const MoeSource* src);
    ~ExpertLoadFigure() override;
    QString key() const override { return QStringLiteral("expert-load"); }
    QString quantity() const override;
    void paint(QPainter& p, const QRectF& r, const Theme& t, const ImageSource& images) override;
    QString csv() const override;
    QString toolTipAt(QPointF pos) const override;
    QString unavailableReason() const override;
    // The bar sets the chart shows: name and one value per expert (picks, or shares with corpora).
    struct Bars {
        QString name;
        std::vector<double> values;
    };
    std::vector<Bars> bars() const;
    bool showsShares() const { return !m_src->corpora.empty(); }
    double uniformLevel() const;

private:
    std::unique_ptr<QGraphicsScene> m_scene;
    QChart* m_chart = nullptr;
    QRectF m_area;
};

class ExpertPathFigure : public MoeFigureBase {
public:
    using MoeFigureBase::MoeFigureBase;
    QString key() const override { return QStringLiteral("expert-path"); }
    QString quantity() const override { return QObject::tr("top-1 expert per token, every MoE layer"); }
    QString title() const override;
    void paint(QPainter& p, const QRectF& r, const Theme& t, const ImageSource& images) override;
    QString csv() const override;
    QString toolTipAt(QPointF pos) const override;
    FigureHit hitAt(QPointF pos) const override;
    int layerAt(QPointF pos) const override;

protected:
    bool allLayers() const override { return true; }

private:
    QRectF m_strip, m_grid;
    std::vector<int> m_layers;
    int64_t m_tokens = 0;
};

class CoactivationFigure : public MoeFigureBase {
public:
    using MoeFigureBase::MoeFigureBase;
    QString key() const override { return QStringLiteral("coactivation"); }
    QString quantity() const override { return QObject::tr("expert co-activation (tokens choosing both)"); }
    void paint(QPainter& p, const QRectF& r, const Theme& t, const ImageSource& images) override;
    QString csv() const override;
    QString toolTipAt(QPointF pos) const override;
    QSize preferredSize() const override { return {640, 560}; }
    QString unavailableReason() const override;

private:
    MatrixGeometry m_geom;
};

} // namespace archlens::ui
