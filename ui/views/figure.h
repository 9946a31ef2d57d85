// Figure: one view's painting code, used unchanged for the screen (FigureWidget), PNG, SVG
// and PDF exports and the headless CLI. A figure reads the TraceModel and the Selection,
// draws with a Theme (screen light/dark or the light "paper" theme of exports), and gets its
// heatmap images from an ImageSource: the screen's is asynchronous (render worker, last
// image until the new one arrives), an export's renders synchronously. Layout is in the
// painter's logical units and font metrics of the paint device, so a 300-dpi PNG gets
// proportionally larger text instead of tiny text.
#pragma once

#include <QColor>
#include <QFont>
#include <QPointF>
#include <QRectF>
#include <QString>

#include <functional>
#include <vector>

#include "render/heatmap_renderer.h"
#include "session/selection.h"
#include "session/trace_model.h"

class QPainter;
class QPalette;

namespace archlens::ui {

struct Theme {
    QColor background, text, muted, axis, cursor, highlight, panel;
    QFont font;
    bool paper = false;
    static Theme screen(const QPalette& palette, const QFont& font);
    static Theme paperTheme();
};

using ImageSource = std::function<QImage(const HeatmapRequest&)>;
ImageSource synchronousImages();

// What a click or hover in a figure points at (-1 where it points at nothing of that kind).
struct FigureHit {
    int token = -1, channel = -1, stateDim = -1;
};

class Figure {
public:
    Figure(const TraceModel* model, const Selection* sel);
    virtual ~Figure() = default;

    virtual QString key() const = 0;      // "delta", "state" ... (the CLI's --view names)
    virtual QString quantity() const = 0; // what is drawn, for titles and metadata
    virtual QString title() const;        // model · layer · quantity
    virtual void paint(QPainter& p, const QRectF& r, const Theme& t, const ImageSource& images) = 0;
    virtual QString csv() const = 0;      // the numbers behind the view
    virtual QSize preferredSize() const { return {900, 420}; }

    // Interaction, in the coordinates of the last paint.
    virtual QString toolTipAt(QPointF) const { return {}; }
    virtual FigureHit hitAt(QPointF) const { return {}; }
    virtual void zoomAt(QPointF, double /*factor*/, Qt::Orientation) {}
    virtual void panBy(QPointF /*pixels*/) {}
    virtual void resetZoom() {}
    // > 0: the figure skipped part of an update (rate-limited) and wants a repaint this much later.
    virtual int repaintAfterMs() const { return 0; }

    // The layer shown: the selection's, unless fixed (the CLI's --layer).
    int layer() const;
    void setFixedLayer(int layer) { m_fixedLayer = layer; }
    // The token shown: the selection's, clamped to what exists, unless fixed (--token).
    int token() const;
    void setFixedToken(int token) { m_fixedToken = token; }
    // Channels to show (empty: all). The CLI's --channels, or the student's choice.
    void setChannels(std::vector<int64_t> channels) { m_channels = std::move(channels); }
    const std::vector<int64_t>& channels() const { return m_channels; }
    // Why the figure cannot be drawn for the current layer ('' when it can).
    virtual QString unavailableReason() const;

    const TraceModel* model() const { return m_model; }
    const Selection* selection() const { return m_sel; }

protected:
    std::vector<int64_t> channelRows(int64_t count) const; // m_channels, or 0..count-1
    void paintMessage(QPainter& p, const QRectF& r, const Theme& t, const QString& message) const;
    const TraceModel* m_model;
    const Selection* m_sel;
    int m_fixedLayer = -1, m_fixedToken = -1;
    std::vector<int64_t> m_channels;
};

// Drawing helpers shared by the figures.
namespace paint {
QRectF drawTitle(QPainter& p, const QRectF& r, const Theme& t, const QString& title, const QString& subtitle = {});
// A vertical colorbar with ticks and the quantity's name written along it.
void drawColorbar(QPainter& p, const QRectF& bar, const Theme& t, Colormap map, const ValueScale& s,
                  const QString& label);
qreal colorbarWidth(QPainter& p, const Theme& t);
QString number(double v, int precision = 3);
} // namespace paint

} // namespace archlens::ui
