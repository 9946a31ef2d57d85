// HorizonFigure: the memory horizon H(c, s), tokens (source s) × channels, magma: how many
// tokens what s wrote into channel c survives above 1%. Grey cells are still remembered at the
// last token (the horizon is at least T−s). Triangles mark Δ spikes (resets). The numbers are
// core/analysis's memoryHorizons and deltaSpikes over the recorded Δ and A.
#pragma once

#include <QElapsedTimer>

#include "views/heatmap_figures.h"

namespace archlens::ui {

struct MemoryHorizon {
    int64_t tokens = 0, channels = 0;
    double forget = 0.01, spikeFactor = 5;
    ProbeSeries horizon; // (T, E) tokens until below 1%; NaN when censored (still remembered)
    std::vector<std::pair<int64_t, int64_t>> spikes; // (token, channel)
    int64_t missingToken = -1; // a token whose Δ is not here (dropped by the memory cap)
};

// Empty (tokens == 0) when the layer lacks Δ or A, or a token's Δ is missing.
MemoryHorizon memoryHorizonOf(const TraceModel& m, int layer);

class HorizonFigure : public TokenHeatmapFigure {
public:
    HorizonFigure(const TraceModel* model, const Selection* sel);
    QString key() const override { return QStringLiteral("horizon"); }
    QString quantity() const override { return QObject::tr("memory horizon H(c, s)"); }
    void paint(QPainter& p, const QRectF& r, const Theme& t, const ImageSource& images) override;
    QString unavailableReason() const override;
    QString toolTipAt(QPointF pos) const override;
    const MemoryHorizon& horizon() const;
    int repaintAfterMs() const override { return m_refreshIn; }

protected:
    const ProbeSeries* dataSeries() const override;
    HeatmapRequest baseRequest() const override;
    static constexpr QRgb kCensored = 0xffd5dbe3; // light blue-grey: "at least T−s"
    QString barLabel() const override { return QObject::tr("H: tokens until below 1%"); }
    QString symbol() const override { return QStringLiteral("H"); }
    QString subtitleNote() const override;

private:
    mutable MemoryHorizon m_h;
    mutable quint64 m_version = ~quint64(0);
    mutable int m_layer = -1;
    mutable QElapsedTimer m_computed; // while tokens stream in, recomputed at most 4×/s
    mutable int m_refreshIn = 0;
};

} // namespace archlens::ui
