// Helpers shared by the C++ tests: a probe sink that keeps everything, the relative error
// metric the issues quote, and temporary folders.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <map>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "probes/probes.h"
#include "tensor/tensor.h"

namespace archlens::test {

// max |a - b| / max |b|  (the issues' "max abs error over max abs value")
inline double relError(const Tensor& a, const Tensor& b)
{
    Tensor fa = a.dtype() == DType::F32 ? a : a.toF32();
    Tensor fb = b.dtype() == DType::F32 ? b : b.toF32();
    if (fa.numel() != fb.numel())
        return INFINITY;
    double maxDiff = 0, maxRef = 0;
    for (int64_t i = 0; i < fa.numel(); ++i) {
        const double d = std::fabs(double(fa.f32()[i]) - double(fb.f32()[i]));
        if (std::isnan(d))
            return INFINITY;
        maxDiff = std::max(maxDiff, d);
        maxRef = std::max(maxRef, std::fabs(double(fb.f32()[i])));
    }
    return maxRef == 0 ? maxDiff : maxDiff / maxRef;
}

inline bool bitEqual(const Tensor& a, const Tensor& b)
{
    return a.shape() == b.shape() && a.dtype() == b.dtype() && std::memcmp(a.raw(), b.raw(), a.nbytes()) == 0;
}

// Keeps every probe it is sent: token-major ones concatenated along the token axis, the
// others (attn.weights, moe.expert_load, moe.load_balancing_loss) replaced by each call, as
// the trace writer does; model-level values by name.
class CaptureSink : public ProbeSink {
public:
    CaptureSink()
    {
        for (Probe p : defaultProbes())
            m_sel.probes.insert(p);
    }
    explicit CaptureSink(ProbeSelection sel)
        : m_sel(std::move(sel))
    {
    }
    bool wants(int layer, Probe p) const override { return m_sel.wants(layer, p); }
    void record(int layer, Probe p, int64_t tokenBegin, const Tensor& value) override
    {
        auto key = std::make_pair(layer, p);
        auto it = m_values.find(key);
        if (it == m_values.end() || !probeIsTokenMajor(p)) {
            m_values[key] = value.clone();
            m_begin[key] = tokenBegin;
            return;
        }
        Tensor& old = it->second;
        Shape shape = old.shape();
        shape[0] += value.dim(0);
        Tensor joined = Tensor::empty(shape, old.dtype());
        std::memcpy(joined.raw(), old.raw(), old.nbytes());
        std::memcpy(static_cast<char*>(joined.raw()) + old.nbytes(), value.raw(), value.nbytes());
        old = joined;
    }
    void recordConstant(int layer, std::string_view group, std::string_view name, const Tensor& value) override
    {
        m_constants[std::to_string(layer) + "." + std::string(group) + "." + std::string(name)] = value.clone();
    }
    void recordModelValue(std::string_view name, double value) override { m_modelValues[std::string(name)] = value; }
    const std::map<std::string, double>& modelValues() const { return m_modelValues; }
    // Every (layer, probe) recorded.
    std::vector<std::pair<int, Probe>> keys() const
    {
        std::vector<std::pair<int, Probe>> out;
        for (const auto& [key, value] : m_values)
            out.push_back(key);
        return out;
    }
    const Tensor* get(int layer, Probe p) const
    {
        auto it = m_values.find({layer, p});
        return it == m_values.end() ? nullptr : &it->second;
    }
    const Tensor* constant(const std::string& key) const
    {
        auto it = m_constants.find(key);
        return it == m_constants.end() ? nullptr : &it->second;
    }
    size_t size() const { return m_values.size(); }

private:
    ProbeSelection m_sel;
    std::map<std::pair<int, Probe>, Tensor> m_values;
    std::map<std::pair<int, Probe>, int64_t> m_begin;
    std::map<std::string, Tensor> m_constants;
    std::map<std::string, double> m_modelValues;
};

// A fresh folder under the system temp dir, removed when the object goes away.
class TempDir {
public:
    TempDir()
    {
        std::random_device rd;
        m_path = std::filesystem::temp_directory_path() / ("archlens-test-" + std::to_string(rd()) + std::to_string(rd()));
        std::filesystem::create_directories(m_path);
    }
    ~TempDir()
    {
        std::error_code ec;
        std::filesystem::remove_all(m_path, ec);
    }
    const std::filesystem::path& path() const { return m_path; }

private:
    std::filesystem::path m_path;
};

inline std::filesystem::path referenceCase(const std::string& name)
{
    return std::filesystem::path(ARCHLENS_TEST_DATA) / name;
}

} // namespace archlens::test
