#include "models/mamba_mixer.h"

#include <cmath>

namespace archlens {

MambaMixerWeights bindMambaMixer(WeightBinder& wb, const std::string& p, const MambaMixerConfig& c)
{
    MambaMixerWeights w;
    w.inProj = wb.get(p + "in_proj.weight", {2 * c.E, c.D});
    if (c.projBias)
        w.inProjBias = wb.get(p + "in_proj.bias", {2 * c.E});
    // conv1d.weight is [E, 1, K]; we keep it as (E, K)
    w.convW = wb.get(p + "conv1d.weight", {c.E, 1, c.K});
    if (w.convW.defined())
        w.convW = w.convW.reshaped({c.E, c.K});
    if (c.convBias)
        w.convB = wb.get(p + "conv1d.bias", {c.E});
    w.xProj = wb.get(p + "x_proj.weight", {c.R + 2 * c.N, c.E});
    w.dtProj = wb.get(p + "dt_proj.weight", {c.E, c.R});
    w.dtBias = wb.get(p + "dt_proj.bias", {c.E});
    const Tensor aLog = wb.get(p + "A_log", {c.E, c.N});
    if (aLog.defined()) {
        w.A = Tensor::empty({c.E, c.N});
        for (int64_t j = 0; j < aLog.numel(); ++j)
            w.A.f32()[j] = -std::exp(aLog.f32()[j]);
    }
    w.D = wb.get(p + "D", {c.E});
    w.outProj = wb.get(p + "out_proj.weight", {c.D, c.E});
    if (c.projBias)
        w.outProjBias = wb.get(p + "out_proj.bias", {c.D});
    if (c.innerNorms) {
        w.dtNorm = wb.get(p + "dt_layernorm.weight", {c.R});
        w.bNorm = wb.get(p + "b_layernorm.weight", {c.N});
        w.cNorm = wb.get(p + "c_layernorm.weight", {c.N});
    }
    return w;
}

MambaMixer::MambaMixer(MambaMixerConfig cfg, MambaMixerWeights w)
    : m_cfg(cfg)
    , m_w(std::move(w))
{
}

MambaLayerState MambaMixer::newState() const
{
    return {Tensor::zeros({m_cfg.E, m_cfg.K - 1}), Tensor::zeros({m_cfg.E, m_cfg.N})};
}

void MambaMixer::forward(Backend& be, const Tensor& hn, MambaLayerState& state, bool recurrent, ProbeSink* sink,
                         int layer, int64_t pos, Tensor& out) const
{
    const auto& c = m_cfg;
    const int64_t T = hn.dim(0);
    Tensor xz = Tensor::empty({T, 2 * c.E});
    Tensor xc = Tensor::empty({T, c.E});
    Tensor xs = Tensor::empty({T, c.E});
    Tensor dbc = Tensor::empty({T, c.R + 2 * c.N});
    Tensor dt = Tensor::empty({T, c.E});
    Tensor y = Tensor::empty({T, c.E});
    be.linear(hn, m_w.inProj, optionalTensor(m_w.inProjBias), xz);   // (T, 2E)
    Tensor x = columns(xz, 0, c.E);                                     // (T, E)
    Tensor z = columns(xz, c.E, c.E);                                   // (T, E)
    if (recurrent)
        be.causalConv1dStep(x, m_w.convW, optionalTensor(m_w.convB), state.conv, xc);
    else
        be.causalConv1d(x, m_w.convW, optionalTensor(m_w.convB), state.conv, xc);
    be.silu(xc, xs);                                                    // (T, E)
    be.linear(xs, m_w.xProj, nullptr, dbc);                             // (T, R + 2N)
    Tensor delta0 = columns(dbc, 0, c.R);                               // (T, R)
    Tensor B = columns(dbc, c.R, c.N);                                  // (T, N)
    Tensor C = columns(dbc, c.R + c.N, c.N);                            // (T, N)
    if (c.innerNorms) {
        Tensor dn = Tensor::empty({T, c.R}), bn = Tensor::empty({T, c.N}), cn = Tensor::empty({T, c.N});
        be.rmsNorm(delta0, m_w.dtNorm, c.innerNormEps, dn);
        be.rmsNorm(B, m_w.bNorm, c.innerNormEps, bn);
        be.rmsNorm(C, m_w.cNorm, c.innerNormEps, cn);
        delta0 = dn;
        B = bn;
        C = cn;
    }
    be.linear(delta0, m_w.dtProj, nullptr, dt);                         // (T, E)

    ScanArgs args;
    args.x = &xs;
    args.dt = &dt;
    args.dtBias = &m_w.dtBias;
    args.A = &m_w.A;
    args.B = &B;
    args.C = &C;
    args.D = &m_w.D;
    args.z = &z;
    args.state = &state.ssm;
    args.y = &y;
    Tensor pDelta, pStates, pNorm, pY, pGate;
    if (sink) {
        if (sink->wants(layer, Probe::SsmDelta))
            args.deltaOut = &(pDelta = Tensor::empty({T, c.E}));
        if (sink->wants(layer, Probe::SsmState))
            args.statesOut = &(pStates = Tensor::empty({T, c.E, c.N}));
        if (sink->wants(layer, Probe::SsmStateNorm))
            args.stateNormOut = &(pNorm = Tensor::empty({T, c.E}));
        if (sink->wants(layer, Probe::SsmY))
            args.yPreGateOut = &(pY = Tensor::empty({T, c.E}));
        if (sink->wants(layer, Probe::SsmGate))
            args.gateOut = &(pGate = Tensor::empty({T, c.E}));
    }
    if (recurrent)
        be.selectiveScanStep(args);
    else
        be.selectiveScan(args);
    if (sink) {
        bool any = false;
        auto emit = [&](Probe probe, const Tensor& t) {
            if (sink->wants(layer, probe)) {
                sink->record(layer, probe, pos, t);
                any = true;
            }
        };
        emit(Probe::SsmX, xs);
        emit(Probe::SsmDelta, pDelta);
        emit(Probe::SsmB, B);
        emit(Probe::SsmC, C);
        emit(Probe::SsmState, pStates);
        emit(Probe::SsmStateNorm, pNorm);
        emit(Probe::SsmY, pY);
        emit(Probe::SsmGate, pGate);
        if (any) {
            sink->recordConstant(layer, "ssm", "A", m_w.A);
            sink->recordConstant(layer, "ssm", "D", m_w.D);
        }
    }
    be.linear(y, m_w.outProj, optionalTensor(m_w.outProjBias), out);   // (T, D)
}

} // namespace archlens
