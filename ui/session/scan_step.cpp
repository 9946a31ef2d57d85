#include "session/scan_step.h"

#include <cmath>

namespace archlens::ui {

std::optional<ScanStep> computeScanStep(const TraceModel& m, int layer, int token, int channel)
{
    const ProbeSeries* xs = m.series(layer, Probe::SsmX);
    const ProbeSeries* ds = m.series(layer, Probe::SsmDelta);
    const ProbeSeries* bs = m.series(layer, Probe::SsmB);
    const ProbeSeries* cs = m.series(layer, Probe::SsmC);
    const ProbeSeries* hs = m.series(layer, Probe::SsmState);
    const std::vector<float>& A = m.A(layer);
    const std::vector<float>& D = m.D(layer);
    const int64_t E = m.dInner(), N = m.dState();
    if (!xs || !ds || !bs || !cs || !hs || A.size() != size_t(E * N) || D.size() != size_t(E) || channel < 0 ||
        channel >= E || token < 0 || token >= xs->count() || !hs->row(token))
        return std::nullopt;
    ScanStep s;
    s.layer = layer;
    s.token = token;
    s.channel = channel;
    s.x = xs->at(token, channel);
    s.delta = ds->at(token, channel);
    s.D = D[size_t(channel)];
    if (const ProbeSeries* g = m.series(layer, Probe::SsmGate))
        s.gate = g->at(token, channel);
    if (const ProbeSeries* y = m.series(layer, Probe::SsmY))
        s.yRecorded = y->at(token, channel);
    const float* prev = token > 0 ? hs->row(token - 1) : nullptr;
    s.hasPrevious = token == 0 || prev;
    const float* cur = hs->row(token);
    for (int64_t n = 0; n < N; ++n) {
        const float a = A[size_t(channel * N + n)];
        const float b = bs->at(token, n), c = cs->at(token, n);
        const float hp = prev ? prev[channel * N + n] : 0.f;
        const float decay = std::exp(s.delta * a);
        s.A.push_back(a);
        s.B.push_back(b);
        s.C.push_back(c);
        s.hPrev.push_back(hp);
        s.decay.push_back(decay);
        s.kept.push_back(decay * hp);
        s.written.push_back(s.delta * b * s.x);
        s.h.push_back(decay * hp + s.delta * b * s.x);
        s.hRecorded.push_back(cur[channel * N + n]);
        s.readout.push_back(c * cur[channel * N + n]);
        s.Ch += c * cur[channel * N + n];
    }
    s.Dx = s.D * s.x;
    s.y = s.Ch + s.Dx;
    return s;
}

} // namespace archlens::ui
