#include "analysis/moe_analysis.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include <fmt/format.h>

#include "base/error.h"

namespace archlens::analysis {

int64_t LayerRouting::tokens() const
{
    if (experts <= 0 || topK <= 0)
        return 0;
    return std::min<int64_t>(int64_t(probs.size()) / experts, int64_t(topk.size()) / topK);
}

const LayerRouting* RoutingData::routing(int layer) const
{
    auto it = moe.find(layer);
    return it != moe.end() && it->second.tokens() > 0 ? &it->second : nullptr;
}

const LayerAttention* RoutingData::attention(int layer) const
{
    auto it = attn.find(layer);
    return it != attn.end() && it->second.tokens > 0 ? &it->second : nullptr;
}

std::vector<int> RoutingData::moeLayers() const
{
    std::vector<int> out;
    for (const auto& [l, r] : moe)
        if (r.tokens() > 0)
            out.push_back(l);
    return out;
}

std::vector<int> RoutingData::attentionLayers() const
{
    std::vector<int> out;
    for (const auto& [l, a] : attn)
        if (a.tokens > 0)
            out.push_back(l);
    return out;
}

int64_t RoutingData::tokens() const
{
    int64_t n = 0;
    for (const auto& [l, r] : moe)
        n = std::max(n, r.tokens());
    for (const auto& [l, a] : attn)
        n = std::max(n, a.tokens);
    return n;
}

// ---- recorder ----

RoutingRecorder::RoutingRecorder(bool attention)
    : m_attention(attention)
{
}

void RoutingRecorder::reset(std::vector<std::string> layerMixer, std::vector<std::string> layerFfn, int64_t promptLength)
{
    std::lock_guard lock(m_mutex);
    m_data = RoutingData{};
    m_data.layerMixer = std::move(layerMixer);
    m_data.layerFfn = std::move(layerFfn);
    m_data.promptLength = promptLength;
    ++m_version;
}

void RoutingRecorder::setPromptLength(int64_t n)
{
    std::lock_guard lock(m_mutex);
    m_data.promptLength = n;
    ++m_version;
}

bool RoutingRecorder::wants(int, Probe p) const
{
    switch (p) {
    case Probe::MoeRouterProbs:
    case Probe::MoeTopkExperts:
    case Probe::MoeTopkWeights:
    case Probe::MoeRouterEntropy:
    case Probe::MoeSharedGate:
        return true;
    case Probe::AttnWeights:
        return m_attention;
    default:
        return false;
    }
}

namespace {
// Writes rows [begin, begin + rows) of width w into a token-major vector, growing it.
template <typename T>
void putRows(std::vector<T>& dst, int64_t w, int64_t begin, const T* src, int64_t rows)
{
    if (w <= 0 || rows <= 0)
        return;
    const size_t need = size_t((begin + rows) * w);
    if (dst.size() < need)
        dst.resize(need);
    std::memcpy(dst.data() + begin * w, src, size_t(rows * w) * sizeof(T));
}
} // namespace

void RoutingRecorder::record(int layer, Probe p, int64_t tokenBegin, const Tensor& value)
{
    if (!wants(layer, p) || value.numel() == 0)
        return;
    const Tensor v = (p == Probe::MoeTopkExperts || value.dtype() == DType::F32) ? value : value.toF32();
    std::lock_guard lock(m_mutex);
    if (p == Probe::AttnWeights) {
        // (H, t, S) rows for queries [tokenBegin, tokenBegin + t) over keys [0, S)
        const int64_t H = v.dim(0), t = v.dim(1), S = v.dim(2);
        int64_t end = tokenBegin + t;
        if (m_attentionCap > 0 && end > m_attentionCap) {
            m_data.attentionCap = m_attentionCap;
            end = m_attentionCap;
        }
        if (end <= tokenBegin)
            return;
        LayerAttention& a = m_data.attn[layer];
        if (a.heads != H) {
            a = LayerAttention{};
            a.heads = H;
        }
        if (end > a.stride) {
            int64_t stride = std::max<int64_t>(a.stride, 16);
            while (stride < end)
                stride *= 2;
            if (m_attentionCap > 0)
                stride = std::min(stride, std::max(m_attentionCap, end));
            std::vector<float> grown(size_t(H * stride * stride), 0.f);
            for (int64_t h = 0; h < H; ++h)
                for (int64_t q = 0; q < a.tokens; ++q)
                    std::memcpy(&grown[size_t((h * stride + q) * stride)], &a.weights[size_t((h * a.stride + q) * a.stride)],
                                size_t(a.tokens) * sizeof(float));
            a.weights.swap(grown);
            a.stride = stride;
        }
        a.tokens = std::max(a.tokens, end);
        const float* src = v.f32();
        for (int64_t h = 0; h < H; ++h)
            for (int64_t q = 0; q < end - tokenBegin; ++q)
                std::memcpy(&a.weights[size_t((h * a.stride + tokenBegin + q) * a.stride)], src + (h * t + q) * S,
                            size_t(std::min(S, end)) * sizeof(float));
        ++m_version;
        return;
    }
    LayerRouting& r = m_data.moe[layer];
    const int64_t rows = v.dim(0);
    const int64_t w = rows > 0 ? v.numel() / rows : 0;
    switch (p) {
    case Probe::MoeRouterProbs:
        r.experts = w;
        putRows(r.probs, w, tokenBegin, v.f32(), rows);
        break;
    case Probe::MoeTopkExperts:
        r.topK = w;
        putRows(r.topk, w, tokenBegin, v.i32(), rows);
        break;
    case Probe::MoeTopkWeights:
        putRows(r.weights, w, tokenBegin, v.f32(), rows);
        break;
    case Probe::MoeRouterEntropy:
        putRows(r.entropy, 1, tokenBegin, v.f32(), rows);
        break;
    case Probe::MoeSharedGate:
        putRows(r.sharedGate, 1, tokenBegin, v.f32(), rows);
        break;
    default:
        break;
    }
    ++m_version;
}

void RoutingRecorder::dropTokens(int64_t end)
{
    end = std::max<int64_t>(end, 0);
    std::lock_guard lock(m_mutex);
    for (auto& [layer, r] : m_data.moe) {
        const auto rows = [end](std::vector<float>& v, int64_t w) {
            if (w > 0 && int64_t(v.size()) > end * w)
                v.resize(size_t(end * w));
        };
        rows(r.probs, r.experts);
        rows(r.weights, r.topK);
        rows(r.entropy, 1);
        rows(r.sharedGate, 1);
        if (r.topK > 0 && int64_t(r.topk.size()) > end * r.topK)
            r.topk.resize(size_t(end * r.topK));
    }
    for (auto& [layer, a] : m_data.attn) {
        // rows past `end` are zeroed so a later decoding step finds them as a fresh matrix would
        for (int64_t h = 0; h < a.heads; ++h)
            for (int64_t q = end; q < a.tokens; ++q)
                std::fill_n(a.weights.begin() + (h * a.stride + q) * a.stride, a.stride, 0.f);
        a.tokens = std::min(a.tokens, end);
    }
    m_data.promptLength = std::min(m_data.promptLength, end);
    ++m_version;
}

RoutingData RoutingRecorder::snapshot() const
{
    std::lock_guard lock(m_mutex);
    return m_data;
}

bool TeeSink::wants(int layer, Probe p) const
{
    return (m_a && m_a->wants(layer, p)) || (m_b && m_b->wants(layer, p));
}

void TeeSink::record(int layer, Probe p, int64_t tokenBegin, const Tensor& value)
{
    if (m_a && m_a->wants(layer, p))
        m_a->record(layer, p, tokenBegin, value);
    if (m_b && m_b->wants(layer, p))
        m_b->record(layer, p, tokenBegin, value);
}

void TeeSink::recordConstant(int layer, std::string_view group, std::string_view name, const Tensor& value)
{
    if (m_a)
        m_a->recordConstant(layer, group, name, value);
    if (m_b)
        m_b->recordConstant(layer, group, name, value);
}

void TeeSink::recordModelValue(std::string_view name, double value)
{
    if (m_a)
        m_a->recordModelValue(name, value);
    if (m_b)
        m_b->recordModelValue(name, value);
}

// ---- readouts ----

namespace {
std::pair<int64_t, int64_t> range(const LayerRouting& r, int64_t t0, int64_t t1)
{
    const int64_t T = r.tokens();
    if (t1 < 0 || t1 > T)
        t1 = T;
    t0 = std::clamp<int64_t>(t0, 0, t1);
    return {t0, t1};
}
} // namespace

std::vector<int64_t> expertCounts(const LayerRouting& r, int64_t t0, int64_t t1)
{
    std::tie(t0, t1) = range(r, t0, t1);
    std::vector<int64_t> counts(size_t(std::max<int64_t>(r.experts, 0)), 0);
    for (int64_t t = t0; t < t1; ++t)
        for (int64_t j = 0; j < r.topK; ++j) {
            const int32_t e = r.topk[size_t(t * r.topK + j)];
            if (e >= 0 && e < r.experts)
                ++counts[size_t(e)];
        }
    return counts;
}

std::string BalanceReadout::warning() const
{
    if (!collapse())
        return {};
    auto list = [](const std::vector<int64_t>& v) {
        std::string s;
        for (int64_t e : v)
            s += (s.empty() ? "" : ", ") + std::to_string(e);
        return s;
    };
    std::string w;
    if (!idle.empty())
        w += fmt::format("expert{} {} got no tokens", idle.size() > 1 ? "s" : "", list(idle));
    if (!overloaded.empty())
        w += fmt::format("{}expert{} {} got more than twice the uniform share", w.empty() ? "" : "; ",
                         overloaded.size() > 1 ? "s" : "", list(overloaded));
    return w;
}

double jensenShannonBits(std::span<const int64_t> a, std::span<const int64_t> b)
{
    if (a.size() != b.size() || a.empty())
        throw Error(ErrorCode::InvalidArgument,
                    fmt::format("expert loads of {} and {} experts cannot be compared", a.size(), b.size()));
    double sa = 0, sb = 0;
    for (size_t i = 0; i < a.size(); ++i) {
        sa += double(a[i]);
        sb += double(b[i]);
    }
    if (sa <= 0 || sb <= 0)
        throw Error(ErrorCode::InvalidArgument, "an expert load with no picks has no distribution");
    // KL(p‖m) with m = (p + q) / 2; terms with p = 0 contribute 0.
    double js = 0;
    for (size_t i = 0; i < a.size(); ++i) {
        const double p = double(a[i]) / sa, q = double(b[i]) / sb, m = 0.5 * (p + q);
        if (p > 0)
            js += 0.5 * p * std::log2(p / m);
        if (q > 0)
            js += 0.5 * q * std::log2(q / m);
    }
    return std::max(0.0, js);
}

BalanceReadout balanceReadout(std::span<const int64_t> counts, double meanEntropy, double loadBalancingLoss)
{
    BalanceReadout b;
    b.experts = int64_t(counts.size());
    b.meanEntropy = meanEntropy;
    b.loadBalancingLoss = loadBalancingLoss;
    for (int64_t c : counts)
        b.picks += c;
    if (b.experts == 0 || b.picks == 0)
        return b;
    const double mean = double(b.picks) / double(b.experts);
    double var = 0, mx = 0;
    for (size_t e = 0; e < counts.size(); ++e) {
        const double c = double(counts[e]);
        var += (c - mean) * (c - mean);
        mx = std::max(mx, c);
        if (counts[e] == 0)
            b.idle.push_back(int64_t(e));
        else if (c > 2.0 * mean)
            b.overloaded.push_back(int64_t(e));
    }
    b.cv = std::sqrt(var / double(b.experts)) / mean;
    b.maxViolation = mx / mean - 1.0;
    return b;
}

BalanceReadout layerBalance(const LayerRouting& r, int64_t t0, int64_t t1)
{
    std::tie(t0, t1) = range(r, t0, t1);
    const std::vector<int64_t> counts = expertCounts(r, t0, t1);
    const int64_t rows = t1 - t0;
    double ent = 0;
    int64_t entRows = 0;
    for (int64_t t = t0; t < t1 && t < int64_t(r.entropy.size()); ++t, ++entRows)
        ent += r.entropy[size_t(t)];
    std::vector<double> probSum(size_t(r.experts), 0.0);
    for (int64_t t = t0; t < t1; ++t)
        for (int64_t e = 0; e < r.experts; ++e)
            probSum[size_t(e)] += r.probs[size_t(t * r.experts + e)];
    // transformers' load_balancing_loss_func: X · Σ_e (picks_e / rows) · (mean prob_e)
    double lbl = 0;
    if (rows > 0) {
        for (int64_t e = 0; e < r.experts; ++e)
            lbl += (double(counts[size_t(e)]) / double(rows)) * (probSum[size_t(e)] / double(rows));
        lbl *= double(r.experts);
    }
    BalanceReadout b = balanceReadout(counts, entRows > 0 ? ent / double(entRows) : 0.0, lbl);
    b.rows = rows;
    return b;
}

std::vector<int64_t> coactivation(const LayerRouting& r, int64_t t0, int64_t t1)
{
    std::tie(t0, t1) = range(r, t0, t1);
    const int64_t X = r.experts, k = r.topK;
    std::vector<int64_t> m(size_t(X * X), 0);
    for (int64_t t = t0; t < t1; ++t)
        for (int64_t a = 0; a < k; ++a)
            for (int64_t b = a + 1; b < k; ++b) {
                const int32_t i = r.topk[size_t(t * k + a)], j = r.topk[size_t(t * k + b)];
                if (i == j || i < 0 || j < 0 || i >= X || j >= X)
                    continue;
                ++m[size_t(i * X + j)];
                ++m[size_t(j * X + i)];
            }
    return m;
}

// ---- corpora ----

void RouteAccumulator::add(const RoutingData& chunk, std::span<const int32_t> ids)
{
    ++m_chunks;
    m_tokens += int64_t(ids.size());
    for (const auto& [l, r] : chunk.moe) {
        const int64_t T = r.tokens();
        if (T == 0)
            continue;
        Layer& L = m_layers[l];
        if (L.experts == 0) {
            L.experts = r.experts;
            L.counts.assign(size_t(r.experts), 0);
            L.probSum.assign(size_t(r.experts), 0.0);
            L.tokenPicks.resize(size_t(r.experts));
        }
        if (L.experts != r.experts)
            throw makeError(ErrorCode::InvalidArgument, "layer {}: {} experts in one chunk, {} in another", l, r.experts,
                            L.experts);
        L.rows += T;
        for (int64_t t = 0; t < T; ++t) {
            for (int64_t e = 0; e < r.experts; ++e)
                L.probSum[size_t(e)] += r.probs[size_t(t * r.experts + e)];
            if (t < int64_t(r.entropy.size()))
                L.entropySum += r.entropy[size_t(t)];
            for (int64_t j = 0; j < r.topK; ++j) {
                const int32_t e = r.topk[size_t(t * r.topK + j)];
                if (e < 0 || e >= r.experts)
                    continue;
                ++L.counts[size_t(e)];
                if (t < int64_t(ids.size()))
                    ++L.tokenPicks[size_t(e)][ids[size_t(t)]];
            }
        }
    }
}

BalanceReadout RouteAccumulator::balance(int layer) const
{
    auto it = m_layers.find(layer);
    if (it == m_layers.end())
        return {};
    const Layer& L = it->second;
    double lbl = 0;
    if (L.rows > 0) {
        for (int64_t e = 0; e < L.experts; ++e)
            lbl += (double(L.counts[size_t(e)]) / double(L.rows)) * (L.probSum[size_t(e)] / double(L.rows));
        lbl *= double(L.experts);
    }
    BalanceReadout b = balanceReadout(L.counts, L.rows > 0 ? L.entropySum / double(L.rows) : 0.0, lbl);
    b.rows = L.rows;
    return b;
}

std::vector<std::pair<int32_t, int64_t>> RouteAccumulator::topTokens(int layer, int64_t expert, size_t n) const
{
    auto it = m_layers.find(layer);
    if (it == m_layers.end() || expert < 0 || expert >= it->second.experts)
        return {};
    const auto& m = it->second.tokenPicks[size_t(expert)];
    std::vector<std::pair<int32_t, int64_t>> v(m.begin(), m.end());
    std::sort(v.begin(), v.end(), [](const auto& a, const auto& b) {
        return a.second != b.second ? a.second > b.second : a.first < b.first;
    });
    if (v.size() > n)
        v.resize(n);
    return v;
}

} // namespace archlens::analysis
