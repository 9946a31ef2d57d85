#include "training/mamba_mixer_train.h"

#include <algorithm>
#include <cmath>

#include "training/train_ops.h"

namespace archlens::train {

namespace {

void zero(std::vector<float>& v, size_t n)
{
    v.resize(n);
    std::fill(v.begin(), v.end(), 0.f);
}

// Copies columns [c0, c0 + n) of rows of width ld into a contiguous (T, n) block, and back.
void gatherCols(int64_t T, int64_t ld, int64_t c0, int64_t n, const float* src, float* dst)
{
    for (int64_t t = 0; t < T; ++t)
        std::copy(src + t * ld + c0, src + t * ld + c0 + n, dst + t * n);
}
void addCols(int64_t T, int64_t ld, int64_t c0, int64_t n, const float* src, float* dst)
{
    for (int64_t t = 0; t < T; ++t)
        for (int64_t j = 0; j < n; ++j)
            dst[t * ld + c0 + j] += src[t * n + j];
}

} // namespace

void mambaMixerForward(const MambaMixerDims& d, const MambaMixerWeights& w, int64_t T, const float* u, float* out,
                       MambaMixerActs& a, MambaMixerScratch& s)
{
    const int64_t D = d.D, E = d.E, N = d.N, R = d.R, W = R + 2 * N;
    a.chunk = defaultScanChunk(T);
    a.xz.resize(size_t(T * 2 * E));
    a.xc.resize(size_t(T * E));
    a.xs.resize(size_t(T * E));
    a.dbc.resize(size_t(T * W));
    a.dtraw.resize(size_t(T * E));
    a.delta.resize(size_t(T * E));
    a.y.resize(size_t(T * E));
    a.yg.resize(size_t(T * E));
    a.chunks.resize(size_t(scanChunks(T, a.chunk) * E * N));
    a.A.resize(size_t(E * N));
    s.scanH.resize(size_t(E * N));
    linearForward<float>(T, D, 2 * E, u, D, w.inProj, nullptr, a.xz.data(), 2 * E);                 // (T, 2E)
    conv1dForward<float>(T, E, d.K, a.xz.data(), 2 * E, w.convW, w.convB, a.xc.data());            // (T, E)
    siluForward<float>(T * E, a.xc.data(), a.xs.data());
    linearForward<float>(T, E, W, a.xs.data(), E, w.xProj, nullptr, a.dbc.data(), W);              // (T, R+2N)
    const float *dtLow = a.dbc.data(), *Bm = a.dbc.data() + R, *Cm = a.dbc.data() + R + N;
    int64_t ldDt = W, ldBC = W;
    if (d.innerNorms) {
        a.dtIn.resize(size_t(T * R));
        a.bIn.resize(size_t(T * N));
        a.cIn.resize(size_t(T * N));
        a.dtN.resize(size_t(T * R));
        a.bN.resize(size_t(T * N));
        a.cN.resize(size_t(T * N));
        a.rDt.resize(size_t(T));
        a.rB.resize(size_t(T));
        a.rC.resize(size_t(T));
        gatherCols(T, W, 0, R, a.dbc.data(), a.dtIn.data());
        gatherCols(T, W, R, N, a.dbc.data(), a.bIn.data());
        gatherCols(T, W, R + N, N, a.dbc.data(), a.cIn.data());
        rmsNormForward<float>(T, R, a.dtIn.data(), w.dtNorm, d.eps, a.dtN.data(), a.rDt.data());
        rmsNormForward<float>(T, N, a.bIn.data(), w.bNorm, d.eps, a.bN.data(), a.rB.data());
        rmsNormForward<float>(T, N, a.cIn.data(), w.cNorm, d.eps, a.cN.data(), a.rC.data());
        dtLow = a.dtN.data();
        Bm = a.bN.data();
        Cm = a.cN.data();
        ldDt = R;
        ldBC = N;
    }
    linearForward<float>(T, R, E, dtLow, ldDt, w.dtW, w.dtB, a.dtraw.data(), E);                    // (T, E)
    softplusForward<float>(T * E, a.dtraw.data(), a.delta.data());
    for (int64_t i = 0; i < E * N; ++i)
        a.A[size_t(i)] = -std::exp(w.aLog[i]);
    scanForward<float>(T, E, N, a.chunk, a.xs.data(), a.delta.data(), a.A.data(), Bm, ldBC, Cm, ldBC, w.dSkip,
                       a.y.data(), a.chunks.data(), s.scanH.data());                                // (T, E)
    gateForward<float>(T, E, a.y.data(), a.xz.data() + E, 2 * E, a.yg.data());
    linearForward<float>(T, E, D, a.yg.data(), E, w.outProj, nullptr, out, D);                     // (T, D)
}

void mambaMixerBackward(const MambaMixerDims& d, const MambaMixerWeights& w, int64_t T, const float* u,
                        const float* dout, const MambaMixerActs& a, MambaMixerScratch& s, float* du,
                        const MambaMixerGrads& g)
{
    const int64_t D = d.D, E = d.E, N = d.N, R = d.R, W = R + 2 * N;
    zero(s.dyg, size_t(T * E));
    linearBackward<float>(T, E, D, a.yg.data(), E, w.outProj, dout, D, s.dyg.data(), E, g.outProj, nullptr);
    zero(s.dy, size_t(T * E));
    zero(s.dxz, size_t(T * 2 * E));
    gateBackward<float>(T, E, a.y.data(), a.xz.data() + E, 2 * E, s.dyg.data(), s.dy.data(), s.dxz.data() + E, 2 * E);
    zero(s.dxs, size_t(T * E));
    zero(s.ddelta, size_t(T * E));
    zero(s.ddbc, size_t(T * W));
    zero(s.dA, size_t(E * N));
    s.work.resize(size_t(scanBackwardWork(E, N, a.chunk)));
    const float *Bm = a.dbc.data() + R, *Cm = a.dbc.data() + R + N;
    float *dB = s.ddbc.data() + R, *dC = s.ddbc.data() + R + N;
    int64_t ldBC = W;
    if (d.innerNorms) {
        zero(s.dbN, size_t(T * N));
        zero(s.dcN, size_t(T * N));
        Bm = a.bN.data();
        Cm = a.cN.data();
        dB = s.dbN.data();
        dC = s.dcN.data();
        ldBC = N;
    }
    scanBackward<float>(T, E, N, a.chunk, a.xs.data(), a.delta.data(), a.A.data(), Bm, ldBC, Cm, ldBC, w.dSkip,
                        a.chunks.data(), s.dy.data(), s.dxs.data(), s.ddelta.data(), g.aLog ? s.dA.data() : nullptr,
                        dB, ldBC, dC, ldBC, g.dSkip, s.work.data());
    if (g.aLog)
        for (int64_t i = 0; i < E * N; ++i)
            g.aLog[i] += s.dA[size_t(i)] * a.A[size_t(i)]; // A = −exp(A_log)
    zero(s.ddt, size_t(T * E));
    softplusBackward<float>(T * E, a.dtraw.data(), s.ddelta.data(), s.ddt.data());
    if (d.innerNorms) {
        zero(s.ddtN, size_t(T * R));
        linearBackward<float>(T, R, E, a.dtN.data(), R, w.dtW, s.ddt.data(), E, s.ddtN.data(), R, g.dtW, g.dtB);
        zero(s.ddtIn, size_t(T * R));
        zero(s.dbIn, size_t(T * N));
        zero(s.dcIn, size_t(T * N));
        rmsNormBackward<float>(T, R, a.dtIn.data(), w.dtNorm, a.rDt.data(), s.ddtN.data(), s.ddtIn.data(), g.dtNorm);
        rmsNormBackward<float>(T, N, a.bIn.data(), w.bNorm, a.rB.data(), s.dbN.data(), s.dbIn.data(), g.bNorm);
        rmsNormBackward<float>(T, N, a.cIn.data(), w.cNorm, a.rC.data(), s.dcN.data(), s.dcIn.data(), g.cNorm);
        addCols(T, W, 0, R, s.ddtIn.data(), s.ddbc.data());
        addCols(T, W, R, N, s.dbIn.data(), s.ddbc.data());
        addCols(T, W, R + N, N, s.dcIn.data(), s.ddbc.data());
    } else {
        linearBackward<float>(T, R, E, a.dbc.data(), W, w.dtW, s.ddt.data(), E, s.ddbc.data(), W, g.dtW, g.dtB);
    }
    linearBackward<float>(T, E, W, a.xs.data(), E, w.xProj, s.ddbc.data(), W, s.dxs.data(), E, g.xProj, nullptr);
    zero(s.dxc, size_t(T * E));
    siluBackward<float>(T * E, a.xc.data(), s.dxs.data(), s.dxc.data());
    conv1dBackward<float>(T, E, d.K, a.xz.data(), 2 * E, w.convW, s.dxc.data(), s.dxz.data(), 2 * E, g.convW,
                          g.convB);
    linearBackward<float>(T, D, 2 * E, u, D, w.inProj, s.dxz.data(), 2 * E, du, D, g.inProj, nullptr);
}

} // namespace archlens::train
