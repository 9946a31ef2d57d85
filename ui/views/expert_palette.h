// Colours for expert identity: a qualitative palette (ColorBrewer Paired, reordered so
// neighbouring ids differ most) for up to 12 experts; beyond that a colour hashed from the id
// (golden-ratio hues), and views print the id on it because hashed colours can repeat.
#pragma once

#include <QColor>

#include <array>
#include <cmath>

namespace archlens::ui {

constexpr int kQualitativeExperts = 12;

inline QColor expertColor(int expert)
{
    static const std::array<QRgb, kQualitativeExperts> kPaired = {
        0xff1f78b4, 0xffe31a1c, 0xff33a02c, 0xffff7f00, 0xff6a3d9a, 0xffb15928,
        0xffa6cee3, 0xfffb9a99, 0xffb2df8a, 0xfffdbf6f, 0xffcab2d6, 0xffffff99};
    if (expert < 0)
        return QColor(128, 128, 128);
    if (expert < kQualitativeExperts)
        return QColor(kPaired[size_t(expert)]);
    const double h = std::fmod(double(expert) * 0.618033988749895, 1.0);
    const int s = 140 + (expert * 37) % 80, v = 170 + (expert * 53) % 70;
    return QColor::fromHsv(int(h * 359), s, v);
}

// Black or white, whichever reads better on c.
inline QColor textOn(const QColor& c) { return c.lightnessF() > 0.55 ? QColor(0, 0, 0) : QColor(255, 255, 255); }

} // namespace archlens::ui
