// A small deterministic trace shared by tst_trace and trace_fixture_writer (whose output
// check_trace_h5py.py verifies with h5py): 7 tokens recorded as a 5-token prefill then two
// one-token steps, layers 0 and 2 of 3, every probe. The value formulas are repeated in the
// Python script; change both together.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "formats/trace.h"

namespace archlens::fixture {

constexpr int64_t kT = 7, kV = 11, kE = 6, kN = 4, kX = 3, kK = 2, kH = 2;
constexpr int kLayerCount = 3;
constexpr int64_t kPrefill = 5;
inline const std::vector<int> kLayers{0, 2};

inline TraceDims dims() { return {kT, kV, kE, kN, kX, kK, kH}; }

inline ProbeSelection selection()
{
    ProbeSelection sel;
    sel.layers = {kLayers.begin(), kLayers.end()};
    for (Probe p : allProbes())
        sel.probes.insert(p);
    return sel;
}

inline TraceMeta meta()
{
    TraceMeta m;
    m.modelType = "mamba";
    m.architecture = "MambaForCausalLM";
    m.backend = "cpu";
    m.weightDType = "F32";
    m.computeDType = "F32";
    m.prompt = "Once upon a time, café";
    m.promptLength = kPrefill;
    m.seed = 1234;
    m.modelPath = "/models/mamba-tiny";
    m.revision = "0123abcd";
    m.created = "2024-05-01T12:00:00Z";
    return m;
}

inline int32_t tokenId(int64_t t) { return int32_t(100 + 3 * t); }

// Token 1 is two-byte UTF-8, token 2 a lone byte that the writer replaces with U+FFFD.
inline std::string tokenText(int64_t t)
{
    if (t == 1)
        return "caf\xC3\xA9";
    if (t == 2)
        return "\xFF";
    return "tok" + std::to_string(t);
}

inline float logit(int64_t t, int64_t v) { return float(t) + float(v) / 16.f; }

// Element j (row-major within one token's row) of a float probe at token t. Exact in float32.
inline float probeValue(int layer, Probe p, int64_t t, int64_t j)
{
    return float(layer * 1000 + int(p) * 100) + float(t) + float(j) / 64.f;
}

inline float aValue(int64_t e, int64_t n) { return -float(e * kN + n + 1) / 8.f; }
inline float dValue(int64_t e) { return 1.f + float(e) / 4.f; }
inline int32_t topkExpert(int64_t t, int64_t j) { return int32_t((t + j) % kX); }
inline int64_t expertLoad(int layer, int64_t x) { return 10'000'000'000LL + layer * 10 + x; }
inline float attnValue(int layer, int64_t h, int64_t i, int64_t j)
{
    return float(layer * 1000 + h * 100 + i) + float(j) / 16.f;
}

// Rows [t0, t1) of a token-major probe, or the whole tensor for the others (at T = t1).
inline Tensor probeTensor(int layer, Probe p, int64_t t0, int64_t t1)
{
    const TraceDims d{t1, kV, kE, kN, kX, kK, kH};
    Shape s = traceProbeShape(p, d);
    if (p == Probe::MoeTopkExperts) {
        s[0] = t1 - t0;
        Tensor out = Tensor::empty(s, DType::I32);
        for (int64_t t = t0; t < t1; ++t)
            for (int64_t j = 0; j < kK; ++j)
                out.i32()[(t - t0) * kK + j] = topkExpert(t, j);
        return out;
    }
    if (p == Probe::MoeExpertLoad) {
        Tensor out = Tensor::empty(s, DType::I64);
        for (int64_t x = 0; x < kX; ++x)
            out.i64()[x] = expertLoad(layer, x);
        return out;
    }
    if (p == Probe::MoeLoadBalancingLoss)
        return Tensor::fromVector(s, {float(layer) + 0.25f});
    if (p == Probe::AttnWeights) {
        Tensor out = Tensor::empty(s);
        float* o = out.f32();
        for (int64_t h = 0; h < kH; ++h)
            for (int64_t i = 0; i < t1; ++i)
                for (int64_t j = 0; j < t1; ++j)
                    *o++ = attnValue(layer, h, i, j);
        return out;
    }
    s[0] = t1 - t0;
    Tensor out = Tensor::empty(s);
    const int64_t row = out.numel() / std::max<int64_t>(1, s[0]);
    for (int64_t t = t0; t < t1; ++t)
        for (int64_t j = 0; j < row; ++j)
            out.f32()[(t - t0) * row + j] = probeValue(layer, p, t, j);
    return out;
}

inline Tensor aTensor()
{
    Tensor a = Tensor::empty({kE, kN});
    for (int64_t e = 0; e < kE; ++e)
        for (int64_t n = 0; n < kN; ++n)
            a.f32()[e * kN + n] = aValue(e, n);
    return a;
}

inline Tensor dTensor()
{
    Tensor d = Tensor::empty({kE});
    for (int64_t e = 0; e < kE; ++e)
        d.f32()[e] = dValue(e);
    return d;
}

// Records tokens [t0, t1) the way a session does: constants, probes of every layer, tokens, logits.
inline void recordChunk(TraceWriter& w, int64_t t0, int64_t t1)
{
    for (int layer = 0; layer < kLayerCount; ++layer) {
        w.recordConstant(layer, "ssm", "A", aTensor());
        w.recordConstant(layer, "ssm", "D", dTensor());
        for (Probe p : allProbes())
            if (w.wants(layer, p))
                w.record(layer, p, t0, probeTensor(layer, p, t0, t1));
    }
    std::vector<int32_t> ids;
    std::vector<std::string> texts;
    for (int64_t t = t0; t < t1; ++t) {
        ids.push_back(tokenId(t));
        texts.push_back(tokenText(t));
    }
    w.appendTokens(ids, texts);
    Tensor logits = Tensor::empty({t1 - t0, kV});
    for (int64_t t = t0; t < t1; ++t)
        for (int64_t v = 0; v < kV; ++v)
            logits.f32()[(t - t0) * kV + v] = logit(t, v);
    w.appendLogits(t0, logits);
}

inline void write(const std::filesystem::path& path)
{
    TraceWriter w(path, meta(), selection());
    w.setAttribute("layer_mixer", std::vector<std::string>{"mamba", "mamba", "mamba"});
    w.setAttribute("kv_cache_bytes_per_token", int64_t(0));
    w.setAttribute("temperature", 0.5);
    recordChunk(w, 0, kPrefill);
    for (int64_t t = kPrefill; t < kT; ++t)
        recordChunk(w, t, t + 1);
    w.finish();
}

} // namespace archlens::fixture
