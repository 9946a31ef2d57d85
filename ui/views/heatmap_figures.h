// The heatmap views. TokenHeatmapFigure: a probe over tokens (x, labelled with token text)
// by channels or state dimensions (y): Δ (viridis/magma, log option), B and C (diverging,
// rows = d_state), the gate SiLU(z), and the state-norm overview ‖h_t‖ per channel; a cursor
// marks the current token and the selected channel/state dim is outlined. StateFigure: the
// state h at the current token, channels × d_state, diverging around zero, with a colour
// range that can follow the token, span all tokens, or be frozen.
#pragma once

#include <optional>

#include "views/figure.h"

namespace archlens::ui {

// Shared: zoomable x/y windows, hit testing and the last paint's geometry.
class HeatmapFigureBase : public Figure {
public:
    using Figure::Figure;
    void setColormap(Colormap m) { m_map = m; }
    Colormap colormap() const { return m_map; }
    void setLogScale(bool on) { m_log = on; }
    bool logScale() const { return m_log; }
    // Freezes the colour range at what is shown now (or releases it).
    void setFrozen(bool on) { m_frozen = on ? std::optional<ValueScale>(currentScale()) : std::nullopt; }
    bool frozen() const { return m_frozen.has_value(); }
    virtual ValueScale currentScale() const = 0;
    // The exact value the view holds at (x, source row), NaN when it holds none.
    virtual float valueAt(int64_t x, int64_t row) const = 0;

    void zoomAt(QPointF pos, double factor, Qt::Orientation o) override;
    void panBy(QPointF pixels) override;
    void resetZoom() override;

protected:
    virtual int64_t xCount() const = 0;
    virtual int64_t rowCount() const = 0;
    virtual HeatmapRequest baseRequest() const = 0;
    ValueScale scaleFor(bool isSigned, const SeriesStats& s) const;
    // Visible windows, clamped to what exists.
    std::pair<int64_t, int64_t> xWindow() const;
    std::pair<int64_t, int64_t> rowWindow(int64_t rows) const;
    HeatmapRequest request(const QRectF& plot, qreal dpr) const;
    // Row axis on the left, with the highlighted row marked.
    void drawRowAxis(QPainter& p, const QRectF& plot, const Theme& t, const std::vector<int64_t>& rows,
                     int64_t highlight, const QString& label) const;
    void drawOutlines(QPainter& p, const QRectF& plot, const Theme& t, int64_t cursorX, int64_t highlightRow) const;

    Colormap m_map = Colormap::Viridis;
    bool m_log = false;
    std::optional<ValueScale> m_frozen;
    bool m_xAll = true;        // follow the data: show every token
    int64_t m_x0 = 0, m_x1 = 0;
    bool m_yAll = true;
    int64_t m_r0 = 0, m_r1 = 0; // indices into the row list
    // last paint
    QRectF m_plot;
    std::vector<int64_t> m_shownRows;
    int64_t m_shownX0 = 0, m_shownX1 = 0;
};

class TokenHeatmapFigure : public HeatmapFigureBase {
public:
    TokenHeatmapFigure(const TraceModel* model, const Selection* sel, Quantity q);
    Quantity quantityKind() const { return m_q; }
    QString key() const override { return QString::fromLatin1(quantityInfo(m_q).key); }
    QString quantity() const override { return QString::fromUtf8(quantityInfo(m_q).name); }
    void paint(QPainter& p, const QRectF& r, const Theme& t, const ImageSource& images) override;
    QString csv() const override;
    QString toolTipAt(QPointF pos) const override;
    FigureHit hitAt(QPointF pos) const override;
    ValueScale currentScale() const override;
    float valueAt(int64_t token, int64_t row) const override;
    QString unavailableReason() const override;
    // Keeps the cursor inside the x window when zoomed (playback).
    void ensureVisible(int64_t token);

protected:
    int64_t xCount() const override { return m_model->tokenCount(); }
    int64_t rowCount() const override;
    HeatmapRequest baseRequest() const override;

protected:
    virtual const ProbeSeries* dataSeries() const { return m_model->series(layer(), m_q); }
    bool perStateDim() const { return quantityInfo(m_q).perStateDim; }
    // The colorbar's label and the tooltip's symbol.
    virtual QString barLabel() const { return QString::fromUtf8(quantityInfo(m_q).name); }
    virtual QString symbol() const { return QString::fromUtf8(quantityInfo(m_q).symbol); }
    virtual QString subtitleNote() const { return {}; }
    Quantity m_q;
};

class StateFigure : public HeatmapFigureBase {
public:
    enum class Range { ThisToken, AllTokens };
    StateFigure(const TraceModel* model, const Selection* sel);
    QString key() const override { return QStringLiteral("state"); }
    QString quantity() const override;
    void paint(QPainter& p, const QRectF& r, const Theme& t, const ImageSource& images) override;
    QString csv() const override;
    QString toolTipAt(QPointF pos) const override;
    FigureHit hitAt(QPointF pos) const override;
    ValueScale currentScale() const override;
    float valueAt(int64_t stateDim, int64_t channel) const override;
    QString unavailableReason() const override;
    QSize preferredSize() const override { return {520, 700}; }
    void setRange(Range r) { m_range = r; }
    Range range() const { return m_range; }

protected:
    int64_t xCount() const override { return m_model->dState(); }
    int64_t rowCount() const override { return m_model->dInner(); }
    HeatmapRequest baseRequest() const override;

private:
    const ProbeSeries* series() const { return m_model->series(layer(), Probe::SsmState); }
    Range m_range = Range::ThisToken;
};

// Token labels under a token axis: each token's text when there is room, else every k-th
// with its position. Returns the height used.
qreal tokenAxisHeight(QPainter& p, const Theme& t);
void drawTokenAxis(QPainter& p, const QRectF& area, const Theme& t, const TraceModel& m, int64_t x0, int64_t x1,
                   int64_t cursor);

} // namespace archlens::ui
