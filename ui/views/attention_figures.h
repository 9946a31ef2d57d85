// Attention views, drawn from a MoeSource's recorded attention weights and the TraceModel's
// SSM probes:
//   AttentionFigure          "attention"          one head's post-softmax weights, query × key
//   AttentionOverviewFigure  "attention-overview" layers × heads small multiples
//   HiddenAttentionFigure    "hidden-attention"   Mamba's α (core/analysis/hidden_attention) for one
//                                                 channel or the mean over channels, rows normalised
//                                                 by Σ|α|, window capped (the figure says both)
//   LayerMapFigure           "layer-map"          hybrid schedule (mixer, feed-forward) per layer on
//                                                 one shared token timeline; click a layer to open it
//   SideBySideFigure         "compare"            two figures, left and right (e.g. a Mamba's hidden
//                                                 attention next to a Transformer's attention)
#pragma once

#include <memory>

#include "views/moe_figures.h"

namespace archlens::ui {

class AttentionFigure : public MoeFigureBase {
public:
    using MoeFigureBase::MoeFigureBase;
    QString key() const override { return QStringLiteral("attention"); }
    QString quantity() const override;
    void paint(QPainter& p, const QRectF& r, const Theme& t, const ImageSource& images) override;
    QString csv() const override;
    QString toolTipAt(QPointF pos) const override;
    FigureHit hitAt(QPointF pos) const override;
    QString unavailableReason() const override;
    QSize preferredSize() const override { return {720, 640}; }
    void setHead(int h) { m_head = h; }
    int head() const { return m_head; }

private:
    int m_head = 0;
    MatrixGeometry m_geom;
};

class AttentionOverviewFigure : public MoeFigureBase {
public:
    using MoeFigureBase::MoeFigureBase;
    QString key() const override { return QStringLiteral("attention-overview"); }
    QString quantity() const override { return QObject::tr("attention weights, every attention layer × head"); }
    QString title() const override;
    void paint(QPainter& p, const QRectF& r, const Theme& t, const ImageSource& images) override;
    QString csv() const override;
    QString toolTipAt(QPointF pos) const override;
    QString unavailableReason() const override;
    int layerAt(QPointF pos) const override;
    QSize preferredSize() const override { return {1000, 700}; }

protected:
    bool allLayers() const override { return true; }

private:
    struct Cell {
        int layer, head;
        QRectF rect;
    };
    std::vector<Cell> m_cells;
};

class HiddenAttentionFigure : public MoeFigureBase {
public:
    using MoeFigureBase::MoeFigureBase;
    ~HiddenAttentionFigure() override;
    QString key() const override { return QStringLiteral("hidden-attention"); }
    QString quantity() const override;
    void paint(QPainter& p, const QRectF& r, const Theme& t, const ImageSource& images) override;
    QString csv() const override;
    QString toolTipAt(QPointF pos) const override;
    FigureHit hitAt(QPointF pos) const override;
    QString unavailableReason() const override;
    QSize preferredSize() const override { return {720, 640}; }
    // Follow the selection's channel (GUI) instead of the mean / the channels set.
    void setFollowChannel(bool on) { m_follow = on; }
    // The normalised matrix shown, (W, W), and its window (computed on demand, cached). With
    // MoeSource::hiddenAttentionAsync (the GUI) the matrix is computed on the
    // HiddenAttentionWorker: empty while computing() and filled on a later call.
    const std::vector<double>& shown() const;
    bool computing() const;
    analysis::AttentionWindow window() const;      // the window the selection asks for
    analysis::AttentionWindow shownWindow() const; // the window of shown() (an older one while computing)
    int64_t effectiveCap() const; // the cap, lowered for a costly mean over channels
    int repaintAfterMs() const override { return computing() ? 40 : 0; } // until the result is in

private:
    std::vector<int64_t> shownChannels() const; // empty: mean over all
    bool m_follow = false;
    mutable std::vector<double> m_cache;
    mutable QByteArray m_cacheKey, m_pendingKey, m_cacheIdentity;
    mutable analysis::AttentionWindow m_cacheWindow, m_pendingWindow;
    MatrixGeometry m_geom;
};

class LayerMapFigure : public MoeFigureBase {
public:
    using MoeFigureBase::MoeFigureBase;
    QString key() const override { return QStringLiteral("layer-map"); }
    QString quantity() const override { return QObject::tr("layer map on one token timeline"); }
    QString title() const override;
    void paint(QPainter& p, const QRectF& r, const Theme& t, const ImageSource& images) override;
    QString csv() const override;
    QString toolTipAt(QPointF pos) const override;
    FigureHit hitAt(QPointF pos) const override;
    QString unavailableReason() const override;
    int layerAt(QPointF pos) const override;
    QSize preferredSize() const override { return {1000, 640}; }
    QString mixer(int layer) const;
    QString ffn(int layer) const;

protected:
    bool allLayers() const override { return true; }

private:
    // per token value of the layer's row (normalised per row) and what it is
    std::vector<float> rowValues(int layer, QString* what) const;
    QRectF m_timeline, m_labels;
    int m_layers = 0;
    int64_t m_tokens = 0;
};

class SideBySideFigure : public Figure {
public:
    SideBySideFigure(std::unique_ptr<Figure> left, std::unique_ptr<Figure> right);
    QString key() const override { return QStringLiteral("compare"); }
    QString quantity() const override;
    QString title() const override;
    void paint(QPainter& p, const QRectF& r, const Theme& t, const ImageSource& images) override;
    QString csv() const override;
    QString toolTipAt(QPointF pos) const override;
    QString unavailableReason() const override;
    QSize preferredSize() const override { return {1400, 640}; }
    int repaintAfterMs() const override; // while either side waits for a result
    Figure* left() const { return m_left.get(); }
    Figure* right() const { return m_right.get(); }

private:
    std::unique_ptr<Figure> m_left, m_right;
    QRectF m_l, m_r;
};

// One side of an attention comparison (the CLI's figure --compare-model and the GUI's compare
// dock): a model with attention layers shows its attention (layer `layer` when that is an
// attention layer, else its first one); a Mamba model its hidden attention (layer `layer` when
// that is a Mamba layer, else its first). The layer used is fixed on the figure and written to
// *chosen. Null when the model has neither.
std::unique_ptr<MoeFigureBase> makeAttentionSide(const TraceModel* model, const Selection* sel, const MoeSource* src,
                                                 int layer, int head, int* chosen = nullptr);

} // namespace archlens::ui
