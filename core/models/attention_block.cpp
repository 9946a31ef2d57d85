#include "models/attention_block.h"

#include <algorithm>
#include <cstring>

namespace archlens {

void KvCache::append(const Tensor& kNew, const Tensor& vNew)
{
    const int64_t T = kNew.dim(0), Hkv = kNew.dim(1), Dh = kNew.dim(2);
    const int64_t need = length + T;
    if (!k.defined() || k.dim(0) < need) {
        const int64_t capacity = std::max<int64_t>(need, k.defined() ? 2 * k.dim(0) : 16);
        Tensor k2 = Tensor::empty({capacity, Hkv, Dh}), v2 = Tensor::empty({capacity, Hkv, Dh});
        if (length > 0) {
            std::memcpy(k2.raw(), k.raw(), size_t(length * Hkv * Dh) * sizeof(float));
            std::memcpy(v2.raw(), v.raw(), size_t(length * Hkv * Dh) * sizeof(float));
        }
        k = k2;
        v = v2;
    }
    const size_t row = size_t(Hkv * Dh) * sizeof(float);
    std::memcpy(static_cast<char*>(k.raw()) + size_t(length) * row, kNew.raw(), size_t(T) * row);
    std::memcpy(static_cast<char*>(v.raw()) + size_t(length) * row, vNew.raw(), size_t(T) * row);
    length = need;
}

KvCache KvCache::clone() const
{
    KvCache c;
    c.length = length;
    if (k.defined()) {
        c.k = k.clone();
        c.v = v.clone();
    }
    return c;
}

AttentionBlock::AttentionBlock(AttentionConfig cfg, AttentionWeights w)
    : m_cfg(std::move(cfg))
    , m_w(std::move(w))
{
}

void AttentionBlock::forward(Backend& be, const Tensor& x, KvCache& cache, ProbeSink* sink, int layer,
                             Tensor& out) const
{
    const auto& c = m_cfg;
    const int64_t T = x.dim(0), past = cache.length, S = past + T;
    Tensor q = Tensor::empty({T, c.H * c.Dh});   // (T, H·Dh)
    Tensor k = Tensor::empty({T, c.Hkv * c.Dh}); // (T, Hkv·Dh)
    Tensor v = Tensor::empty({T, c.Hkv * c.Dh}); // (T, Hkv·Dh)
    be.linear(x, m_w.q, optionalTensor(m_w.qBias), q);
    be.linear(x, m_w.k, optionalTensor(m_w.kBias), k);
    be.linear(x, m_w.v, optionalTensor(m_w.vBias), v);
    if (m_w.qNorm.defined()) {
        // OLMoE: RMSNorm over the whole projected vector, before the head split
        Tensor qn = Tensor::empty(q.shape()), kn = Tensor::empty(k.shape());
        be.rmsNorm(q, m_w.qNorm, c.normEps, qn);
        be.rmsNorm(k, m_w.kNorm, c.normEps, kn);
        q = qn;
        k = kn;
    }
    if (c.clipQkv > 0)
        for (Tensor* t : {&q, &k, &v})
            for (float& e : t->span())
                e = std::clamp(e, -c.clipQkv, c.clipQkv);
    q = q.reshaped({T, c.H, c.Dh});
    k = k.reshaped({T, c.Hkv, c.Dh});
    v = v.reshaped({T, c.Hkv, c.Dh});
    if (c.rotary) {
        const std::vector<float> invFreq = c.rope.invFreqFor(S);
        be.rotary(q, past, c.rope.rotaryDims, invFreq, c.rope.attentionScaling);
        be.rotary(k, past, c.rope.rotaryDims, invFreq, c.rope.attentionScaling);
    }
    cache.append(k, v);

    AttentionArgs a;
    Tensor keys = cache.k.rows(0, S), values = cache.v.rows(0, S);
    Tensor o = Tensor::empty({T, c.H, c.Dh});
    Tensor weights;
    a.q = &q;
    a.k = &keys;
    a.v = &values;
    a.out = &o;
    a.pastLength = past;
    a.scale = c.scale;
    a.slidingWindow = c.slidingWindow;
    const bool wantWeights = sink && sink->wants(layer, Probe::AttnWeights);
    if (wantWeights)
        a.weightsOut = &(weights = Tensor::empty({c.H, T, S}));
    be.attention(a);
    if (wantWeights)
        sink->record(layer, Probe::AttnWeights, past, weights);
    be.linear(o.reshaped({T, c.H * c.Dh}), m_w.o, optionalTensor(m_w.oBias), out);
}

AttentionWeights bindLlamaAttention(WeightBinder& wb, const std::string& p, const AttentionConfig& c, bool qkvBias,
                                    bool outputBias, bool qkNorm)
{
    AttentionWeights w;
    const int64_t q = c.H * c.Dh, kv = c.Hkv * c.Dh;
    w.q = wb.get(p + "q_proj.weight", {q, c.D});
    w.k = wb.get(p + "k_proj.weight", {kv, c.D});
    w.v = wb.get(p + "v_proj.weight", {kv, c.D});
    w.o = wb.get(p + "o_proj.weight", {c.D, q});
    if (qkvBias) {
        w.qBias = wb.get(p + "q_proj.bias", {q});
        w.kBias = wb.get(p + "k_proj.bias", {kv});
        w.vBias = wb.get(p + "v_proj.bias", {kv});
    }
    if (outputBias)
        w.oBias = wb.get(p + "o_proj.bias", {c.D});
    if (qkNorm) {
        w.qNorm = wb.get(p + "q_norm.weight", {q});
        w.kNorm = wb.get(p + "k_norm.weight", {kv});
    }
    return w;
}

} // namespace archlens
