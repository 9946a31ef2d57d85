// Export: one figure, or a sheet of several stacked top to bottom, to PNG (at a chosen size
// and DPI), SVG (QSvgGenerator) or PDF (QPdfWriter), all through the figures' own paint code
// in the light paper theme, or the numbers behind them as CSV. The format follows the file's
// extension. Model, revision, prompt, layer, seed and view go into the file's metadata: PNG
// text chunks, SVG <title>/<desc>/<metadata>, PDF title/creator and XMP.
#pragma once

#include <QMap>
#include <QSize>
#include <QString>
#include <QVector>

namespace archlens::ui {

class Figure;

struct ExportOptions {
    QSize size{1600, 900}; // pixels at `dpi` (PNG: exactly; SVG/PDF: size/dpi inches)
    int dpi = 150;
};

// Key/value metadata written with a figure.
QMap<QString, QString> exportMetadata(const QVector<Figure*>& figures);

// Throws archlens::Error (Io, InvalidArgument) naming the file on failure.
void exportFigures(const QString& file, const QVector<Figure*>& figures, const ExportOptions& options);

} // namespace archlens::ui
