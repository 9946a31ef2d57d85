// HorizonFigure: the memory horizon H(c, s), tokens (source s) × channels, magma: how many
// tokens what s wrote into channel c survives above 1%. Grey cells are still remembered at the
// last token (the horizon is at least T−1−s). Triangles mark Δ spikes (resets).
#pragma once

#include "session/memory_horizon.h"
#include "views/heatmap_figures.h"

namespace archlens::ui {

class HorizonFigure : public TokenHeatmapFigure {
public:
    HorizonFigure(const TraceModel* model, const Selection* sel);
    QString key() const override { return QStringLiteral("horizon"); }
    QString quantity() const override { return QObject::tr("memory horizon H(c, s)"); }
    void paint(QPainter& p, const QRectF& r, const Theme& t, const ImageSource& images) override;
    QString unavailableReason() const override;
    QString toolTipAt(QPointF pos) const override;
    const MemoryHorizon& horizon() const;

protected:
    const ProbeSeries* dataSeries() const override;
    HeatmapRequest baseRequest() const override;
    static constexpr QRgb kCensored = 0xffd5dbe3; // light blue-grey: "at least T−1−s"
    QString barLabel() const override { return QObject::tr("H: tokens until below 1%"); }
    QString symbol() const override { return QStringLiteral("H"); }
    QString subtitleNote() const override;

private:
    mutable MemoryHorizon m_h;
    mutable quint64 m_version = ~quint64(0);
    mutable int m_layer = -1;
};

} // namespace archlens::ui
