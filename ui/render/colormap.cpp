#include "render/colormap.h"

#include <algorithm>
#include <cmath>

namespace archlens::ui {

namespace {
// Polynomial fits of matplotlib's viridis and magma (Matt Zucker, CC0), within 1/255 of the tables.
struct Poly {
    double c[7][3];
};
constexpr Poly kViridis = {{{0.2777273272234177, 0.005407344544966578, 0.3340998053353061},
                            {0.1050930431085774, 1.404613529898575, 1.384590162594685},
                            {-0.3308618287255563, 0.214847559468213, 0.09509516302823659},
                            {-4.634230498983486, -5.799100973351585, -19.33244095627987},
                            {6.228269936347081, 14.17993336680509, 56.69055260068105},
                            {4.776384997670288, -13.74514537774601, -65.35303263337234},
                            {-5.435455855934631, 4.645852612178535, 26.3124352495832}}};
constexpr Poly kMagma = {{{-0.002136485053939582, -0.000749655052795221, -0.005386127855323933},
                          {0.2516605407371642, 0.6775232436837668, 2.494026599312351},
                          {8.353717279216625, -3.577719514958484, 0.3144679030132573},
                          {-27.66873308576866, 14.26473078096533, -13.64921318813922},
                          {52.17613981234068, -27.94360607168351, 12.94416944238394},
                          {-50.76852536473588, 29.04658282127291, 4.23415299384598},
                          {18.65570506591883, -11.48977351997711, -5.601961508734096}}};

std::array<QRgb, 256> fromPoly(const Poly& p)
{
    std::array<QRgb, 256> lut{};
    for (int i = 0; i < 256; ++i) {
        const double t = i / 255.0;
        int rgb[3];
        for (int k = 0; k < 3; ++k) {
            double v = p.c[6][k];
            for (int j = 5; j >= 0; --j)
                v = v * t + p.c[j][k];
            rgb[k] = int(std::lround(std::clamp(v, 0.0, 1.0) * 255.0));
        }
        lut[size_t(i)] = qRgb(rgb[0], rgb[1], rgb[2]);
    }
    return lut;
}

std::array<QRgb, 256> diverging()
{
    // ColorBrewer RdBu (11 classes), from negative (blue) to positive (red)
    static const QRgb stops[] = {0x053061, 0x2166ac, 0x4393c3, 0x92c5de, 0xd1e5f0, 0xf7f7f7,
                                 0xfddbc7, 0xf4a582, 0xd6604d, 0xb2182b, 0x67001f};
    std::array<QRgb, 256> lut{};
    for (int i = 0; i < 256; ++i) {
        const double x = i / 255.0 * 10.0;
        const int a = std::min(9, int(x));
        const double f = x - a;
        const QColor c0(stops[a]), c1(stops[a + 1]);
        lut[size_t(i)] = qRgb(int(std::lround(c0.red() + f * (c1.red() - c0.red()))),
                              int(std::lround(c0.green() + f * (c1.green() - c0.green()))),
                              int(std::lround(c0.blue() + f * (c1.blue() - c0.blue()))));
    }
    return lut;
}
} // namespace

const std::array<QRgb, 256>& colormapLut(Colormap map)
{
    static const std::array<QRgb, 256> viridis = fromPoly(kViridis);
    static const std::array<QRgb, 256> magma = fromPoly(kMagma);
    static const std::array<QRgb, 256> div = diverging();
    switch (map) {
    case Colormap::Viridis: return viridis;
    case Colormap::Magma: return magma;
    case Colormap::Diverging: return div;
    }
    return viridis;
}

QString colormapName(Colormap map)
{
    switch (map) {
    case Colormap::Viridis: return QStringLiteral("viridis");
    case Colormap::Magma: return QStringLiteral("magma");
    case Colormap::Diverging: return QStringLiteral("diverging (RdBu)");
    }
    return {};
}

double ValueScale::normalise(float v) const
{
    if (log) {
        const double l0 = std::log10(std::max(lo, 1e-30f)), l1 = std::log10(std::max(hi, 1e-30f));
        const double lv = std::log10(std::max(double(v), 1e-30));
        return l1 > l0 ? (lv - l0) / (l1 - l0) : 0.5;
    }
    return hi > lo ? (double(v) - lo) / (double(hi) - lo) : 0.5;
}

} // namespace archlens::ui
