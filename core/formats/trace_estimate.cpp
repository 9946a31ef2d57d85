// Size estimate of a trace before it is written, so --max-bytes can refuse it up front.
// Kept out of formats/hdf5/ so builds without HDF5 still have it.
#include "formats/trace.h"

namespace archlens {

Shape traceProbeShape(Probe p, const TraceDims& d)
{
    const int64_t T = d.tokens, E = d.dInner, N = d.dState, X = d.experts, k = d.topK, H = d.heads;
    const bool moe = X > 0;
    switch (p) {
    case Probe::SsmX:
    case Probe::SsmDelta:
    case Probe::SsmStateNorm:
    case Probe::SsmY:
    case Probe::SsmGate: return {T, E};
    case Probe::SsmB:
    case Probe::SsmC: return {T, N};
    case Probe::SsmState: return {T, E, N};
    case Probe::MoeRouterLogits:
    case Probe::MoeRouterProbs: return moe ? Shape{T, X} : Shape{};
    case Probe::MoeTopkExperts:
    case Probe::MoeTopkWeights: return moe ? Shape{T, k} : Shape{};
    case Probe::MoeExpertLoad: return moe ? Shape{X} : Shape{};
    case Probe::MoeLoadBalancingLoss: return moe ? Shape{1} : Shape{};
    case Probe::MoeRouterEntropy:
    case Probe::MoeSharedGate: return moe ? Shape{T} : Shape{};
    case Probe::AttnWeights: return H > 0 ? Shape{H, T, T} : Shape{};
    case Probe::Count: break;
    }
    return {};
}

namespace {
// Bytes per element as stored: expert ids int32, expert counts int64, everything else float32.
uint64_t probeElementBytes(Probe p) { return p == Probe::MoeExpertLoad ? 8 : 4; }
} // namespace

uint64_t estimateTraceBytes(const TraceDims& dims, const ProbeSelection& sel, int layerCount)
{
    const auto T = uint64_t(dims.tokens);
    uint64_t bytes = T * 4                          // /tokens
                     + T * kTraceTokenTextBytes      // /token_text
                     + T * uint64_t(dims.vocab) * 4; // /logits
    for (int layer = 0; layer < layerCount; ++layer) {
        bool anySsm = false;
        for (Probe p : sel.probes) {
            if (!sel.wants(layer, p))
                continue;
            const Shape s = traceProbeShape(p, dims);
            if (s.empty())
                continue;
            bytes += uint64_t(shapeNumel(s)) * probeElementBytes(p);
            anySsm = anySsm || probeGroup(p) == "ssm";
        }
        if (anySsm) // ssm/A (E, N) and ssm/D (E)
            bytes += uint64_t(dims.dInner) * uint64_t(dims.dState + 1) * 4;
    }
    return bytes;
}

} // namespace archlens
