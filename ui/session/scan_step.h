// The selective scan's arithmetic for one channel at one token, from the recorded numbers:
// h_t = exp(Δ_t A) ⊙ h_{t-1} + Δ_t B_t x_t and y_t = C_t · h_t + D x_t, term by term, next to
// what the model actually recorded (the two agree to float rounding). Interim: the runtime's
// core/analysis scan-stepper numbers replace this when they land.
#pragma once

#include <optional>
#include <vector>

#include "session/trace_model.h"

namespace archlens::ui {

struct ScanStep {
    int layer = 0, token = 0, channel = 0;
    float x = 0, delta = 0, D = 0, gate = 0;
    float yRecorded = 0;
    bool hasPrevious = false; // false when h_{t-1} was dropped by the memory cap
    std::vector<float> A, B, C;      // (N)
    std::vector<float> hPrev;        // h_{t-1} (zeros at t = 0)
    std::vector<float> decay;        // exp(Δ_t A)
    std::vector<float> kept;         // exp(Δ_t A) ⊙ h_{t-1}
    std::vector<float> written;      // Δ_t B_t x_t
    std::vector<float> h;            // kept + written
    std::vector<float> hRecorded;    // the recorded h_t
    std::vector<float> readout;      // C_t ⊙ h_t (per n)
    float Ch = 0, Dx = 0, y = 0;     // C·h, D x, their sum
};

// nullopt when the layer lacks a probe the step needs (x, Δ, B, C, state, A, D).
std::optional<ScanStep> computeScanStep(const TraceModel& m, int layer, int token, int channel);

} // namespace archlens::ui
