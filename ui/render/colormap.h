// Colormaps: perceptually uniform viridis and magma for magnitudes (Δ, ‖h‖), a diverging
// blue-white-red map (ColorBrewer RdBu) centred on zero for signed values (B, C, h, gate).
// Never rainbow. Each is a 256-entry lookup table built once.
#pragma once

#include <QColor>
#include <QString>

#include <array>

namespace archlens::ui {

enum class Colormap { Viridis, Magma, Diverging };

const std::array<QRgb, 256>& colormapLut(Colormap map);
QString colormapName(Colormap map);
inline QRgb colormapColor(Colormap map, double t) // t in [0, 1]
{
    const int i = t <= 0 ? 0 : t >= 1 ? 255 : int(t * 255.0 + 0.5);
    return colormapLut(map)[size_t(i)];
}

// How values map to [0, 1]: linear between lo and hi, or log10 (lo > 0).
struct ValueScale {
    float lo = 0.f, hi = 1.f;
    bool log = false;
    double normalise(float v) const;
};

} // namespace archlens::ui
