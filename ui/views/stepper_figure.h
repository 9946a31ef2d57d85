// StepperFigure: one step of the selective scan for the selected channel at the current
// token, with the model's real numbers: for each state dimension n, how much of h_{t-1} the
// decay exp(Δ_t A) kept, what Δ_t B_t x_t wrote, the resulting h_t (and the recorded one),
// and how C_t reads it out into y_t. A bar per row shows how each term moved the state.
#pragma once

#include <optional>

#include "analysis/scan_analysis.h"
#include "views/figure.h"

namespace archlens::ui {

// What the stepper shows for one channel at one token: the recorded inputs and the arithmetic
// of core/analysis (scanStep, in the expression order of the forward call that computed the
// token: on the reference backend h_t equals the recorded state bit for bit; the fast
// backend's kernels may round a product differently), named for the table's columns.
struct ScanStep {
    int layer = 0, token = 0, channel = 0;
    float x = 0, delta = 0, D = 0, gate = 0;
    float yRecorded = 0;
    std::vector<float> A, B, C;   // (N)
    std::vector<float> hPrev;     // h_{t-1} (zeros at t = 0)
    std::vector<float> decay;     // exp(Δ_t A)
    std::vector<float> kept;      // exp(Δ_t A) ⊙ h_{t-1}
    std::vector<float> written;   // Δ_t B_t x_t
    std::vector<float> h;         // kept + written
    std::vector<float> hRecorded; // the recorded h_t
    std::vector<float> readout;   // C_t ⊙ h_t (per n)
    float Ch = 0, Dx = 0, y = 0;  // C·h, D x, their sum
};

// nullopt when the layer lacks a probe the step needs (x, Δ, B, C, A; h_t and h_{t-1}, which a
// scrub recomputes when the memory cap dropped them).
std::optional<ScanStep> scanStepOf(const TraceModel& m, int layer, int token, int channel);

class StepperFigure : public Figure {
public:
    using Figure::Figure;
    QString key() const override { return QStringLiteral("stepper"); }
    QString quantity() const override;
    QString title() const override;
    void paint(QPainter& p, const QRectF& r, const Theme& t, const ImageSource& images) override;
    QString csv() const override;
    QSize preferredSize() const override { return {1000, 620}; }
    QString toolTipAt(QPointF pos) const override;
    FigureHit hitAt(QPointF pos) const override;
    QString unavailableReason() const override;
    int channel() const;
    void setFixedChannel(int c) { m_fixedChannel = c; }
    std::optional<ScanStep> step() const { return scanStepOf(*m_model, layer(), token(), channel()); }

private:
    int m_fixedChannel = -1;
    QRectF m_table;
    qreal m_rowH = 0;
    int m_rowsShown = 0;
};

} // namespace archlens::ui
