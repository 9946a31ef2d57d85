#include "models/rope.h"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

#include "base/error.h"

namespace archlens {

namespace {

// θ_i = base^(−2i/rd) in float32, as torch computes 1 / base ** (arange(0, rd, 2).float() / rd)
std::vector<float> defaultInvFreq(double base, int64_t rd)
{
    std::vector<float> f(size_t(rd / 2));
    for (int64_t i = 0; i < rd / 2; ++i) {
        const float exponent = float(2 * i) / float(rd);
        f[size_t(i)] = 1.0f / float(std::pow(base, double(exponent)));
    }
    return f;
}

double yarnMscale(double scale, double mscale = 1.0)
{
    return scale <= 1 ? 1.0 : 0.1 * mscale * std::log(scale) + 1.0;
}

} // namespace

std::vector<float> RopeConfig::invFreqFor(int64_t seqLen) const
{
    if (type != "dynamic" || seqLen <= maxPositions)
        return invFreq;
    const double rd = double(rotaryDims);
    const double base = theta * std::pow(factor * double(seqLen) / double(maxPositions) - (factor - 1), rd / (rd - 2));
    return defaultInvFreq(base, rotaryDims);
}

std::string RopeConfig::describe() const
{
    if (rotaryDims == 0)
        return "none";
    std::string s = fmt::format("{} dims, theta {:g}", rotaryDims, theta);
    if (type != "default")
        s += fmt::format(", {} scaling (factor {:g})", type, factor);
    return s;
}

RopeConfig readRopeConfig(const HfConfig& c, int64_t headDim, double rotaryFraction, double thetaDefault,
                          const char* legacyThetaKey)
{
    RopeConfig r;
    // Where the scaling keys live: v5's rope_parameters, else rope_scaling (null or absent: none).
    std::string prefix;
    if (c.has("rope_parameters") && c.json().at("rope_parameters").is_object())
        prefix = "rope_parameters.";
    else if (c.has("rope_scaling")) {
        if (!c.json().at("rope_scaling").is_object())
            c.fail("rope_scaling", fmt::format("expected an object or null, found {}", c.json().at("rope_scaling").dump()));
        prefix = "rope_scaling.";
    }
    auto key = [&](const char* k) { return prefix + k; };

    if (prefix == "rope_parameters." && c.has("rope_parameters.partial_rotary_factor"))
        rotaryFraction = c.getDouble("rope_parameters.partial_rotary_factor");
    r.rotaryDims = int64_t(double(headDim) * rotaryFraction);
    if (r.rotaryDims % 2 != 0 || r.rotaryDims <= 0 || r.rotaryDims > headDim)
        throw Error(ErrorCode::Config,
                    fmt::format("the rotary part of each head must be a positive even number of dims ≤ head_dim {}, "
                                "found {} (head_dim × rotary fraction {:g})",
                                headDim, r.rotaryDims, rotaryFraction),
                    c.path().string());

    if (prefix == "rope_parameters." && c.has("rope_parameters.rope_theta"))
        r.theta = c.getDouble("rope_parameters.rope_theta");
    else if (legacyThetaKey && c.has(legacyThetaKey))
        r.theta = c.getDouble(legacyThetaKey);
    else
        r.theta = c.getDouble("rope_theta", thetaDefault);
    if (!(r.theta > 1))
        c.fail("rope_theta", fmt::format("must be greater than 1, found {:g}", r.theta));
    r.maxPositions = c.getInt("max_position_embeddings", 2048);

    // rope_scaling spells the type "type" (older files) or "rope_type"; either may be absent
    const std::string typeKey = prefix.empty() ? std::string("rope_scaling.type")
                                               : (c.has(key("rope_type")) ? key("rope_type") : key("type"));
    if (!prefix.empty())
        r.type = c.getString(typeKey, "default");
    const int64_t rd = r.rotaryDims;
    r.invFreq = defaultInvFreq(r.theta, rd);
    auto factorKey = [&]() {
        r.factor = c.getDouble(key("factor"));
        if (!(r.factor > 0))
            c.fail(key("factor"), fmt::format("must be positive, found {:g}", r.factor));
    };
    if (r.type == "default") {
        // nothing to scale
    } else if (r.type == "linear") {
        factorKey();
        for (float& f : r.invFreq)
            f = f / float(r.factor);
    } else if (r.type == "dynamic") {
        factorKey();
        if (rd <= 2)
            c.fail(typeKey, "dynamic scaling needs more than 2 rotary dims");
    } else if (r.type == "llama3") {
        factorKey();
        const double low = c.getDouble(key("low_freq_factor"));
        const double high = c.getDouble(key("high_freq_factor"));
        const double oldContext = double(c.getInt(key("original_max_position_embeddings")));
        if (!(high > low))
            c.fail(key("high_freq_factor"), fmt::format("must exceed low_freq_factor ({:g} ≤ {:g})", high, low));
        const float lowWavelen = float(oldContext / low), highWavelen = float(oldContext / high);
        const float factor = float(r.factor);
        for (float& f : r.invFreq) {
            const float wavelen = float(2 * M_PI) / f;
            // torch.where(wavelen > low_freq_wavelen, inv_freq / factor, inv_freq), then the
            // medium band is smoothed between the two
            const float scaled = wavelen > lowWavelen ? f / factor : f;
            if (wavelen < highWavelen || wavelen > lowWavelen) {
                f = scaled;
            } else {
                const float smooth = float((oldContext / double(wavelen) - low) / (high - low));
                f = (1 - smooth) * scaled / factor + smooth * scaled;
            }
        }
    } else if (r.type == "yarn") {
        factorKey();
        double factor = r.factor;
        double originalMax = double(r.maxPositions);
        // DeepSeek-V3 style configs keep the pretrained length here; the ratio is the factor.
        if (c.has(key("original_max_position_embeddings"))) {
            originalMax = double(c.getInt(key("original_max_position_embeddings")));
            factor = double(r.maxPositions) / originalMax;
        }
        double attention = 0;
        if (c.has(key("attention_factor"))) {
            attention = c.getDouble(key("attention_factor"));
        } else {
            const double mscale = c.getDouble(key("mscale"), 0), mscaleAll = c.getDouble(key("mscale_all_dim"), 0);
            attention = (mscale != 0 && mscaleAll != 0) ? yarnMscale(factor, mscale) / yarnMscale(factor, mscaleAll)
                                                        : yarnMscale(factor);
        }
        r.attentionScaling = float(attention);
        double betaFast = c.getDouble(key("beta_fast"), 32), betaSlow = c.getDouble(key("beta_slow"), 1);
        if (betaFast == 0)
            betaFast = 32;
        if (betaSlow == 0)
            betaSlow = 1;
        const bool truncate = c.getBool(key("truncate"), true);
        auto correctionDim = [&](double rotations) {
            return (double(rd) * std::log(originalMax / (rotations * 2 * M_PI))) / (2 * std::log(r.theta));
        };
        double lo = correctionDim(betaFast), hi = correctionDim(betaSlow);
        if (truncate) {
            lo = std::floor(lo);
            hi = std::ceil(hi);
        }
        lo = std::max(lo, 0.0);
        hi = std::min(hi, double(rd - 1));
        if (lo == hi)
            hi += 0.001; // as transformers: avoids a zero-width ramp
        const std::vector<float> pos = [&] {
            std::vector<float> p(size_t(rd / 2));
            for (int64_t i = 0; i < rd / 2; ++i)
                p[size_t(i)] = float(std::pow(r.theta, double(float(2 * i) / float(rd))));
            return p;
        }();
        for (int64_t i = 0; i < rd / 2; ++i) {
            const float ramp = std::clamp(float((float(i) - float(lo)) / float(hi - lo)), 0.f, 1.f);
            const float extrapolationFactor = 1 - ramp;
            const float extrapolation = 1.0f / pos[size_t(i)];
            const float interpolation = 1.0f / (float(factor) * pos[size_t(i)]);
            r.invFreq[size_t(i)] = interpolation * (1 - extrapolationFactor) + extrapolation * extrapolationFactor;
        }
        r.factor = factor;
    } else {
        throw Error(ErrorCode::Unsupported,
                    fmt::format("key '{}': unsupported rope scaling type \"{}\"", typeKey, r.type), c.path().string(),
                    "supported: default, linear, dynamic, llama3, yarn");
    }
    return r;
}

} // namespace archlens
