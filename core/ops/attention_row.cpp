#include "ops/attention_row.h"

#include <algorithm>
#include <cmath>

namespace archlens {

void attentionRow(const AttentionArgs& a, int64_t h, int64_t t, float* scores)
{
    const int64_t T = a.q->dim(0), H = a.q->dim(1), Dh = a.q->dim(2);
    const int64_t S = a.k->dim(0), Hkv = a.k->dim(1);
    const int64_t hk = h / (H / Hkv);
    const int64_t p = a.pastLength + t;
    const int64_t first = a.slidingWindow > 0 ? std::max<int64_t>(0, p - a.slidingWindow + 1) : 0;
    const float* q = a.q->f32() + (t * H + h) * Dh;
    float maxScore = -INFINITY;
    for (int64_t s = first; s <= p; ++s) {
        const float* k = a.k->f32() + (s * Hkv + hk) * Dh;
        float dot = 0.f;
        for (int64_t d = 0; d < Dh; ++d)
            dot += q[d] * k[d];
        scores[s] = dot * a.scale;
        maxScore = std::max(maxScore, scores[s]);
    }
    double sum = 0;
    for (int64_t s = first; s <= p; ++s) {
        scores[s] = std::exp(scores[s] - maxScore);
        sum += scores[s];
    }
    float* o = a.out->f32() + (t * H + h) * Dh;
    std::fill_n(o, Dh, 0.f);
    for (int64_t s = 0; s < S; ++s) {
        const float wgt = (s >= first && s <= p) ? float(scores[s] / sum) : 0.f;
        if (a.weightsOut)
            a.weightsOut->f32()[(h * T + t) * S + s] = wgt;
        if (wgt == 0.f)
            continue;
        const float* v = a.v->f32() + (s * Hkv + hk) * Dh;
        for (int64_t d = 0; d < Dh; ++d)
            o[d] += wgt * v[d];
    }
}

} // namespace archlens
