#include "ops/math.h"

#include <algorithm>
#include <numeric>
#include <vector>

namespace archlens {

void softmax(const float* in, float* out, int64_t n)
{
    float m = -INFINITY;
    for (int64_t i = 0; i < n; ++i)
        m = std::max(m, in[i]);
    double sum = 0;
    for (int64_t i = 0; i < n; ++i) {
        out[i] = std::exp(in[i] - m);
        sum += out[i];
    }
    for (int64_t i = 0; i < n; ++i)
        out[i] = float(out[i] / sum);
}

uint64_t splitmix64(uint64_t& state)
{
    uint64_t z = (state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

double uniform01(uint64_t& state) { return double(splitmix64(state) >> 11) * 0x1.0p-53; }

int32_t sampleFromLogits(const float* logits, int64_t n, float temperature, int topK, float topP, uint64_t& rngState)
{
    if (temperature <= 0.f) {
        return int32_t(std::max_element(logits, logits + n) - logits);
    }
    std::vector<float> scaled(static_cast<size_t>(n)), p(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i)
        scaled[size_t(i)] = logits[i] / temperature;
    softmax(scaled.data(), p.data(), n);
    std::vector<int32_t> order(static_cast<size_t>(n));
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return p[size_t(a)] > p[size_t(b)]; });
    size_t keep = size_t(n);
    if (topK > 0)
        keep = std::min(keep, size_t(topK));
    if (topP < 1.f) {
        double cum = 0;
        for (size_t i = 0; i < keep; ++i) {
            cum += p[size_t(order[i])];
            if (cum >= topP) {
                keep = i + 1;
                break;
            }
        }
    }
    double mass = 0;
    for (size_t i = 0; i < keep; ++i)
        mass += p[size_t(order[i])];
    double r = uniform01(rngState) * mass;
    for (size_t i = 0; i < keep; ++i) {
        r -= p[size_t(order[i])];
        if (r < 0)
            return order[i];
    }
    return order[keep - 1];
}

} // namespace archlens
