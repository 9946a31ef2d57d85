#include "training/optimizer.h"

#include <cmath>

#include <fmt/format.h>

#include "base/error.h"
#include "formats/safetensors.h"

namespace archlens::train {

AdamW::AdamW(const ParamStore& params, AdamWOptions opts)
    : m_opts(opts)
    , m_m(size_t(params.numel()), 0.f)
    , m_v(size_t(params.numel()), 0.f)
{
}

void AdamW::step(ParamStore& params, const float* grads, double lr)
{
    ++m_steps;
    const double b1 = m_opts.beta1, b2 = m_opts.beta2;
    const double c1 = 1.0 - std::pow(b1, double(m_steps)), c2 = 1.0 - std::pow(b2, double(m_steps));
    const float stepSize = float(lr / c1);
    const float sqrtC2 = float(std::sqrt(c2));
    std::vector<float>& values = params.values();
    for (int i = 0; i < params.count(); ++i) {
        const ParamInfo& p = params.info(i);
        if (!p.trainable)
            continue;
        const float decay = p.decay ? float(1.0 - lr * m_opts.weightDecay) : 1.0f;
        for (int64_t j = p.offset; j < p.offset + p.numel; ++j) {
            const float g = grads[j];
            float& m = m_m[size_t(j)];
            float& v = m_v[size_t(j)];
            m = float(b1) * m + float(1 - b1) * g;
            v = float(b2) * v + float(1 - b2) * g * g;
            values[size_t(j)] = values[size_t(j)] * decay - stepSize * m / (std::sqrt(v) / sqrtC2 + float(m_opts.eps));
        }
    }
}

void AdamW::save(const std::filesystem::path& path, const ParamStore& params,
                 const std::map<std::string, std::string>& metadata) const
{
    std::vector<std::pair<std::string, Tensor>> tensors;
    for (int i = 0; i < params.count(); ++i) {
        const ParamInfo& p = params.info(i);
        if (!p.trainable)
            continue;
        Tensor m = Tensor::empty(p.shape), v = Tensor::empty(p.shape);
        std::copy(m_m.begin() + p.offset, m_m.begin() + p.offset + p.numel, m.f32());
        std::copy(m_v.begin() + p.offset, m_v.begin() + p.offset + p.numel, v.f32());
        tensors.emplace_back(p.name + ".exp_avg", m);
        tensors.emplace_back(p.name + ".exp_avg_sq", v);
    }
    std::map<std::string, std::string> meta = metadata;
    meta["format"] = "pt";
    meta["adamw_steps"] = std::to_string(m_steps);
    writeSafetensors(path, tensors, meta);
}

std::map<std::string, std::string> AdamW::load(const std::filesystem::path& path, const ParamStore& params)
{
    const auto file = SafetensorsFile::open(path);
    for (int i = 0; i < params.count(); ++i) {
        const ParamInfo& p = params.info(i);
        if (!p.trainable)
            continue;
        for (int k = 0; k < 2; ++k) {
            const std::string key = p.name + (k ? ".exp_avg_sq" : ".exp_avg");
            if (!file->contains(key))
                throw Error(ErrorCode::Format, fmt::format("optimizer state lacks '{}'", key), path.string(),
                            "the checkpoint was saved for another model or adapter");
            if (file->info(key).shape != p.shape)
                throw Error(ErrorCode::Shape, fmt::format("optimizer tensor '{}' has shape {}, expected {}", key,
                                                          shapeToString(file->info(key).shape),
                                                          shapeToString(p.shape)),
                            path.string());
            const Tensor t = file->tensor(key).toF32();
            std::copy(t.f32(), t.f32() + t.numel(), (k ? m_v : m_m).begin() + p.offset);
        }
    }
    const auto& meta = file->metadata();
    auto it = meta.find("adamw_steps");
    if (it == meta.end())
        throw Error(ErrorCode::Format, "optimizer state lacks the 'adamw_steps' metadata", path.string());
    m_steps = std::stoll(it->second);
    return meta;
}

double scheduleLr(int64_t step, int64_t total, int64_t warmup, double peak, double minLr)
{
    if (warmup > 0 && step < warmup)
        return peak * double(step + 1) / double(warmup);
    const int64_t span = std::max<int64_t>(1, total - warmup);
    const double progress = std::min(1.0, double(step - warmup) / double(span));
    return minLr + 0.5 * (peak - minLr) * (1.0 + std::cos(M_PI * progress));
}

double clipGradNorm(float* g, int64_t n, double maxNorm)
{
    double ss = 0;
    for (int64_t i = 0; i < n; ++i)
        ss += double(g[i]) * double(g[i]);
    const double norm = std::sqrt(ss);
    if (maxNorm > 0 && norm > maxNorm) {
        const float s = float(maxNorm / (norm + 1e-6));
        for (int64_t i = 0; i < n; ++i)
            g[i] *= s;
    }
    return norm;
}

} // namespace archlens::train
