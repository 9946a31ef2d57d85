#include "models/ffn_blocks.h"

#include <fmt/format.h>

#include "ops/math.h"

namespace archlens {

MlpBlock::MlpBlock(Kind kind, MlpWeights w, GeluKind gelu)
    : m_kind(kind)
    , m_w(std::move(w))
    , m_gelu(gelu)
{
}

void MlpBlock::forward(Backend& be, const Tensor& x, Tensor& out) const
{
    const int64_t T = x.dim(0), I = m_w.up.dim(0);
    Tensor up = Tensor::empty({T, I}); // (T, I)
    be.linear(x, m_w.up, optionalTensor(m_w.upBias), up);
    Tensor act = Tensor::empty({T, I});
    if (m_kind == Kind::SwiGlu) {
        Tensor gate = Tensor::empty({T, I});
        be.linear(x, m_w.gate, optionalTensor(m_w.gateBias), gate);
        be.silu(gate, act);
        be.mul(act, up, act);
    } else {
        be.gelu(up, act, m_gelu);
    }
    be.linear(act, m_w.down, optionalTensor(m_w.downBias), out);
}

MlpWeights bindSwiGlu(WeightBinder& wb, const std::string& p, int64_t D, int64_t I, bool bias)
{
    MlpWeights w;
    w.gate = wb.get(p + "gate_proj.weight", {I, D});
    w.up = wb.get(p + "up_proj.weight", {I, D});
    w.down = wb.get(p + "down_proj.weight", {D, I});
    if (bias) {
        w.gateBias = wb.get(p + "gate_proj.bias", {I});
        w.upBias = wb.get(p + "up_proj.bias", {I});
        w.downBias = wb.get(p + "down_proj.bias", {D});
    }
    return w;
}

std::vector<ExpertTensors> bindExperts(WeightBinder& wb, const ExpertNames& n, const MoeConfig& c)
{
    std::vector<ExpertTensors> experts(size_t(c.X));
    const std::string fusedGateUp = n.experts + "gate_up_proj", fusedDown = n.experts + "down_proj";
    if (wb.has(fusedGateUp) && !wb.has(n.experts + "0." + n.gate + ".weight")) {
        const Tensor gu = wb.get(fusedGateUp, {c.X, 2 * c.I, c.D});
        const Tensor dn = wb.get(fusedDown, {c.X, c.D, c.I});
        if (wb.loading()) {
            const Tensor gu2 = gu.reshaped({c.X * 2 * c.I, c.D}), dn2 = dn.reshaped({c.X * c.D, c.I});
            for (int64_t e = 0; e < c.X; ++e) {
                auto& ex = experts[size_t(e)];
                ex.gate = gu2.rows(e * 2 * c.I, e * 2 * c.I + c.I); // gate rows first, then up
                ex.up = gu2.rows(e * 2 * c.I + c.I, (e + 1) * 2 * c.I);
                ex.down = dn2.rows(e * c.D, (e + 1) * c.D);
            }
        }
    } else {
        for (int64_t e = 0; e < c.X; ++e) {
            const std::string p = fmt::format("{}{}.", n.experts, e);
            auto& ex = experts[size_t(e)];
            ex.gate = wb.get(p + n.gate + ".weight", {c.I, c.D});
            ex.up = wb.get(p + n.up + ".weight", {c.I, c.D});
            ex.down = wb.get(p + n.down + ".weight", {c.D, c.I});
        }
        // One expert more than the config says is a mismatch, not extra data to ignore.
        const std::string extra = fmt::format("{}{}.{}.weight", n.experts, c.X, n.gate);
        if (wb.has(extra))
            throw Error(ErrorCode::Config,
                        fmt::format("the checkpoint has tensor '{}' but the config says {} experts per layer", extra, c.X),
                        wb.checkpoint().fileOf(extra).string(), "check num_experts / num_local_experts in config.json");
    }
    wb.routedExperts(3 * c.I * c.D, c.X, c.k);
    return experts;
}

MoeBlock::MoeBlock(MoeConfig cfg, MoeWeights w)
    : m_cfg(cfg)
    , m_w(std::move(w))
{
    for (const auto& e : m_w.experts)
        m_experts.push_back({&e.gate, &e.down, &e.up});
    if (m_cfg.sharedI > 0)
        m_shared.push_back({&m_w.shared.gate, &m_w.shared.down, &m_w.shared.up});
}

void MoeBlock::forward(Backend& be, const Tensor& x, MoeRouterStats* stats, ProbeSink* sink, int layer, int64_t pos,
                       Tensor& out) const
{
    const auto& c = m_cfg;
    const int64_t T = x.dim(0);
    Tensor logits = Tensor::empty({T, c.X});            // (T, X)
    be.linear(x, m_w.router, nullptr, logits);
    Tensor probs = Tensor::empty({T, c.X});             // (T, X)
    Tensor ids = Tensor::empty({T, c.k}, DType::I32);   // (T, k)
    Tensor weights = Tensor::empty({T, c.k});           // (T, k)
    RouterArgs r;
    r.logits = &logits;
    r.k = int(c.k);
    r.renormalize = c.renormalize;
    r.probs = &probs;
    r.topkIds = &ids;
    r.topkWeights = &weights;
    be.routerTopK(r);
    be.expertFfn(x, ids, weights, m_experts, out);

    Tensor sharedGate;
    if (c.sharedI > 0) {
        Tensor g = Tensor::empty({T, 1});
        be.linear(x, m_w.sharedGate, nullptr, g);
        for (float& v : g.span())
            v = sigmoidf(v);
        // the shared expert is an expert every token uses with weight sigmoid(W_sg x)
        const Tensor zeros = Tensor::zeros({T, 1}, DType::I32);
        Tensor shared = Tensor::empty({T, c.D});
        be.expertFfn(x, zeros, g, m_shared, shared);
        be.add(out, shared, out);
        sharedGate = g.reshaped({T});
    }

    if (stats)
        stats->add(probs, ids);
    if (!sink)
        return;
    auto emit = [&](Probe p, auto&& make) {
        if (sink->wants(layer, p))
            sink->record(layer, p, pos, make());
    };
    emit(Probe::MoeRouterLogits, [&] { return logits; });
    emit(Probe::MoeRouterProbs, [&] { return probs; });
    emit(Probe::MoeTopkExperts, [&] { return ids; });
    emit(Probe::MoeTopkWeights, [&] { return weights; });
    emit(Probe::MoeRouterEntropy, [&] { return routerEntropy(probs); });
    if (sharedGate.defined())
        emit(Probe::MoeSharedGate, [&] { return sharedGate; });
    if (stats) {
        emit(Probe::MoeExpertLoad, [&] { return stats->expertLoad(); });
        emit(Probe::MoeLoadBalancingLoss,
             [&] { return Tensor::fromVector({}, {float(stats->loadBalancingLoss())}); });
    }
}

} // namespace archlens
