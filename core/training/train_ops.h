// Forward and backward of every op Mamba-1 trains through (model-formats §3.4), as plain
// loops over raw arrays, templated on the scalar so the tests can check each backward against
// double-precision finite differences with the very code the trainer runs in float.
// Conventions: row-major; a leading dimension (ld) lets an op read or write a column block of
// a wider matrix (x | z of in_proj, δ | B | C of x_proj). Forward outputs are overwritten;
// every gradient output is ACCUMULATED (+=), and a null gradient pointer skips that gradient.
// Mirrors PyTorch's conventions: softplus is linear above 20, RMSNorm as HF MambaRMSNorm.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include <Eigen/Core>

namespace archlens::train {

template<class S> using RowMat = Eigen::Matrix<S, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template<class S> using MapC = Eigen::Map<const RowMat<S>, 0, Eigen::OuterStride<>>;
template<class S> using MapM = Eigen::Map<RowMat<S>, 0, Eigen::OuterStride<>>;

// y (M, out) = x (M, in) · Wᵀ (+ b); W is (out, in) as torch stores it.
template<class S>
void linearForward(int64_t M, int64_t in, int64_t out, const S* x, int64_t ldx, const S* W, const S* b, S* y,
                   int64_t ldy)
{
    MapC<S> X(x, M, in, Eigen::OuterStride<>(ldx));
    MapC<S> Wm(W, out, in, Eigen::OuterStride<>(in));
    MapM<S> Y(y, M, out, Eigen::OuterStride<>(ldy));
    Y.noalias() = X * Wm.transpose();
    if (b)
        for (int64_t i = 0; i < M; ++i)
            for (int64_t o = 0; o < out; ++o)
                y[i * ldy + o] += b[o];
}

// dx += dy · W; dW += dyᵀ · x; db += Σ_rows dy.
template<class S>
void linearBackward(int64_t M, int64_t in, int64_t out, const S* x, int64_t ldx, const S* W, const S* dy, int64_t lddy,
                    S* dx, int64_t lddx, S* dW, S* db)
{
    MapC<S> DY(dy, M, out, Eigen::OuterStride<>(lddy));
    if (dx) {
        MapC<S> Wm(W, out, in, Eigen::OuterStride<>(in));
        MapM<S> DX(dx, M, in, Eigen::OuterStride<>(lddx));
        DX.noalias() += DY * Wm;
    }
    if (dW) {
        MapC<S> X(x, M, in, Eigen::OuterStride<>(ldx));
        MapM<S> DW(dW, out, in, Eigen::OuterStride<>(in));
        DW.noalias() += DY.transpose() * X;
    }
    if (db)
        for (int64_t i = 0; i < M; ++i)
            for (int64_t o = 0; o < out; ++o)
                db[o] += dy[i * lddy + o];
}

// In float (what the trainer runs) both go through the fast CPU backend's blocked SGEMM
// (backends/cpu_gemm.h: AVX2/AVX-512 kernels chosen at run time, single-threaded here since
// the trainer spreads sequences over the pool; a fixed summation order, so seeded runs stay
// reproducible); the double instantiations (finite-difference tests) keep Eigen.
template<>
void linearForward<float>(int64_t M, int64_t in, int64_t out, const float* x, int64_t ldx, const float* W,
                          const float* b, float* y, int64_t ldy);
template<>
void linearBackward<float>(int64_t M, int64_t in, int64_t out, const float* x, int64_t ldx, const float* W,
                           const float* dy, int64_t lddy, float* dx, int64_t lddx, float* dW, float* db);

// y = w ⊙ v / sqrt(mean(v²) + eps) per row; rstd (M) keeps 1/sqrt(...) for the backward.
template<class S> void rmsNormForward(int64_t M, int64_t D, const S* x, const S* w, double eps, S* y, S* rstd)
{
    for (int64_t i = 0; i < M; ++i) {
        const S* xi = x + i * D;
        S ss = 0;
        for (int64_t j = 0; j < D; ++j)
            ss += xi[j] * xi[j];
        const S r = S(1) / std::sqrt(ss / S(D) + S(eps));
        rstd[i] = r;
        for (int64_t j = 0; j < D; ++j)
            y[i * D + j] = w[j] * (xi[j] * r);
    }
}

// dx_j += r g_j − r³ v_j Σ_k g_k v_k / D with g = dy ⊙ w; dw += dy ⊙ v r.
template<class S>
void rmsNormBackward(int64_t M, int64_t D, const S* x, const S* w, const S* rstd, const S* dy, S* dx, S* dw)
{
    for (int64_t i = 0; i < M; ++i) {
        const S* xi = x + i * D;
        const S* dyi = dy + i * D;
        const S r = rstd[i];
        S dot = 0;
        for (int64_t j = 0; j < D; ++j)
            dot += dyi[j] * w[j] * xi[j];
        const S k = r * r * r * dot / S(D);
        for (int64_t j = 0; j < D; ++j) {
            if (dx)
                dx[i * D + j] += r * dyi[j] * w[j] - k * xi[j];
            if (dw)
                dw[j] += dyi[j] * xi[j] * r;
        }
    }
}

// Causal depthwise conv: y[t,c] = b[c] + Σ_k w[c,k] x[t−K+1+k, c], zeros before t = 0.
template<class S>
void conv1dForward(int64_t T, int64_t E, int64_t K, const S* x, int64_t ldx, const S* w, const S* b, S* y)
{
    for (int64_t t = 0; t < T; ++t)
        for (int64_t c = 0; c < E; ++c) {
            S acc = b ? b[c] : S(0);
            for (int64_t k = 0; k < K; ++k) {
                const int64_t s = t - K + 1 + k;
                if (s >= 0)
                    acc += w[c * K + k] * x[s * ldx + c];
            }
            y[t * E + c] = acc;
        }
}

template<class S>
void conv1dBackward(int64_t T, int64_t E, int64_t K, const S* x, int64_t ldx, const S* w, const S* dy, S* dx,
                    int64_t lddx, S* dw, S* db)
{
    for (int64_t t = 0; t < T; ++t)
        for (int64_t c = 0; c < E; ++c) {
            const S g = dy[t * E + c];
            if (db)
                db[c] += g;
            for (int64_t k = 0; k < K; ++k) {
                const int64_t s = t - K + 1 + k;
                if (s < 0)
                    continue;
                if (dx)
                    dx[s * lddx + c] += w[c * K + k] * g;
                if (dw)
                    dw[c * K + k] += x[s * ldx + c] * g;
            }
        }
}

template<class S> inline S sigmoid(S v) { return S(1) / (S(1) + std::exp(-v)); }
template<class S> inline S silu(S v) { return v * sigmoid(v); }
template<class S> inline S siluGrad(S v)
{
    const S s = sigmoid(v);
    return s * (S(1) + v * (S(1) - s));
}
template<class S> inline S softplus(S v) { return v > S(20) ? v : std::log1p(std::exp(v)); }
template<class S> inline S softplusGrad(S v) { return v > S(20) ? S(1) : sigmoid(v); }

// y = act(x) over n values with strides; dx += act'(x) dy.
template<class S> void siluForward(int64_t n, const S* x, S* y)
{
    for (int64_t i = 0; i < n; ++i)
        y[i] = silu(x[i]);
}
template<class S> void siluBackward(int64_t n, const S* x, const S* dy, S* dx)
{
    for (int64_t i = 0; i < n; ++i)
        dx[i] += siluGrad(x[i]) * dy[i];
}
template<class S> void softplusForward(int64_t n, const S* x, S* y)
{
    for (int64_t i = 0; i < n; ++i)
        y[i] = softplus(x[i]);
}
template<class S> void softplusBackward(int64_t n, const S* x, const S* dy, S* dx)
{
    for (int64_t i = 0; i < n; ++i)
        dx[i] += softplusGrad(x[i]) * dy[i];
}

// Gate: out[t,c] = y[t,c] · SiLU(z[t,c]); z read with stride ldz.
template<class S> void gateForward(int64_t T, int64_t E, const S* y, const S* z, int64_t ldz, S* out)
{
    for (int64_t t = 0; t < T; ++t)
        for (int64_t c = 0; c < E; ++c)
            out[t * E + c] = y[t * E + c] * silu(z[t * ldz + c]);
}
template<class S>
void gateBackward(int64_t T, int64_t E, const S* y, const S* z, int64_t ldz, const S* dout, S* dy, S* dz, int64_t lddz)
{
    for (int64_t t = 0; t < T; ++t)
        for (int64_t c = 0; c < E; ++c) {
            const S zv = z[t * ldz + c], g = dout[t * E + c];
            if (dy)
                dy[t * E + c] += g * silu(zv);
            if (dz)
                dz[t * lddz + c] += g * y[t * E + c] * siluGrad(zv);
        }
}

// out (T, D) = table[ids]; dtable[ids] += dout.
template<class S> void embeddingForward(int64_t T, int64_t D, const int32_t* ids, const S* table, S* out)
{
    for (int64_t t = 0; t < T; ++t)
        std::memcpy(out + t * D, table + int64_t(ids[t]) * D, sizeof(S) * size_t(D));
}
template<class S> void embeddingBackward(int64_t T, int64_t D, const int32_t* ids, const S* dout, S* dtable)
{
    for (int64_t t = 0; t < T; ++t)
        for (int64_t j = 0; j < D; ++j)
            dtable[int64_t(ids[t]) * D + j] += dout[t * D + j];
}

// Cross-entropy of logits (M, V) against targets; a target < 0 does not count. Returns the
// summed loss over counted rows; writes dlogits = scale · (softmax − onehot) (0 for ignored rows).
template<class S> double crossEntropy(int64_t M, int64_t V, const S* logits, const int32_t* targets, S scale, S* dlogits)
{
    double total = 0;
    for (int64_t i = 0; i < M; ++i) {
        const S* li = logits + i * V;
        S* di = dlogits ? dlogits + i * V : nullptr;
        if (targets[i] < 0) {
            if (di)
                std::fill(di, di + V, S(0));
            continue;
        }
        S mx = li[0];
        for (int64_t v = 1; v < V; ++v)
            mx = std::max(mx, li[v]);
        S sum = 0;
        for (int64_t v = 0; v < V; ++v)
            sum += std::exp(li[v] - mx);
        const S lse = mx + std::log(sum);
        total += double(lse - li[targets[i]]);
        if (di) {
            for (int64_t v = 0; v < V; ++v)
                di[v] = scale * std::exp(li[v] - lse);
            di[targets[i]] -= scale;
        }
    }
    return total;
}

// The selective scan (selective_scan_ref): h_t = exp(Δ_t A) ⊙ h_{t−1} + Δ_t B_t x_t,
// y_t = C_t · h_t + D ⊙ x_t, h_{−1} = 0. x, Δ, y are (T, E); B and C (T, N) with strides;
// A (E, N); D (E). The forward keeps only the state at the start of every chunk of `chunk`
// tokens (chunkStates: ceil(T/chunk) × E × N); the backward recomputes one chunk's states
// at a time from it, so memory is O((T/chunk + chunk)·E·N) instead of O(T·E·N).
inline int64_t scanChunks(int64_t T, int64_t chunk) { return (T + chunk - 1) / chunk; }
// A chunk length near √T minimises T/chunk + chunk.
inline int64_t defaultScanChunk(int64_t T) { return std::max<int64_t>(1, int64_t(std::ceil(std::sqrt(double(T))))); }

// out[c, n] = exp(Δ[c] · A[c, n]) for one token, through Eigen's vectorised exp (the scan's
// exponentials are most of a training step's time).
template<class S> void decayRow(int64_t E, int64_t N, const S* delta, const S* A, S* out)
{
    for (int64_t c = 0; c < E; ++c)
        for (int64_t n = 0; n < N; ++n)
            out[c * N + n] = delta[c] * A[c * N + n];
    Eigen::Map<Eigen::Array<S, Eigen::Dynamic, 1>> v(out, E * N);
    v = v.exp();
}

template<class S>
void scanForward(int64_t T, int64_t E, int64_t N, int64_t chunk, const S* x, const S* delta, const S* A, const S* B,
                 int64_t ldb, const S* C, int64_t ldc, const S* Dp, S* y, S* chunkStates, S* h /* E·N scratch */)
{
    std::fill(h, h + E * N, S(0));
    std::vector<S> decay(size_t(E * N));
    for (int64_t t = 0; t < T; ++t) {
        if (t % chunk == 0)
            std::memcpy(chunkStates + (t / chunk) * E * N, h, sizeof(S) * size_t(E * N));
        decayRow<S>(E, N, delta + t * E, A, decay.data());
        const S* Bt = B + t * ldb;
        const S* Ct = C + t * ldc;
        for (int64_t c = 0; c < E; ++c) {
            const S dt = delta[t * E + c], xv = x[t * E + c], dx = dt * xv;
            const S* ac = decay.data() + c * N;
            S* hc = h + c * N;
            S acc = 0;
            for (int64_t n = 0; n < N; ++n) {
                hc[n] = ac[n] * hc[n] + dx * Bt[n];
                acc += hc[n] * Ct[n];
            }
            y[t * E + c] = acc + Dp[c] * xv;
        }
    }
}

// work: (chunk + 1)·E·N + chunk·E·N + E·N scalars (states, decays, carried dh).
inline int64_t scanBackwardWork(int64_t E, int64_t N, int64_t chunk) { return (2 * chunk + 2) * E * N; }

template<class S>
void scanBackward(int64_t T, int64_t E, int64_t N, int64_t chunk, const S* x, const S* delta, const S* A, const S* B,
                  int64_t ldb, const S* C, int64_t ldc, const S* Dp, const S* chunkStates, const S* dy, S* dx,
                  S* ddelta, S* dA, S* dB, int64_t lddb, S* dC, int64_t lddc, S* dD, S* work)
{
    const int64_t EN = E * N;
    S* hs = work;                        // (chunk + 1, E, N): h_{t0−1} .. h_{t1−1}
    S* as = hs + (chunk + 1) * EN;       // (chunk, E, N): exp(Δ_t A)
    S* dh = as + chunk * EN;             // (E, N): ∂L/∂h_t arriving from t + 1
    std::fill(dh, dh + EN, S(0));
    for (int64_t k = scanChunks(T, chunk) - 1; k >= 0; --k) {
        const int64_t t0 = k * chunk, t1 = std::min(T, t0 + chunk);
        std::memcpy(hs, chunkStates + k * EN, sizeof(S) * size_t(EN));
        for (int64_t t = t0; t < t1; ++t) {
            const S* hp = hs + (t - t0) * EN;
            S* hc = hs + (t - t0 + 1) * EN;
            S* ac = as + (t - t0) * EN;
            const S* Bt = B + t * ldb;
            decayRow<S>(E, N, delta + t * E, A, ac);
            for (int64_t c = 0; c < E; ++c) {
                const S dxv = delta[t * E + c] * x[t * E + c];
                for (int64_t n = 0; n < N; ++n)
                    hc[c * N + n] = ac[c * N + n] * hp[c * N + n] + dxv * Bt[n];
            }
        }
        for (int64_t t = t1 - 1; t >= t0; --t) {
            const S* hp = hs + (t - t0) * EN;
            const S* hc = hs + (t - t0 + 1) * EN;
            const S* ac = as + (t - t0) * EN;
            const S* Bt = B + t * ldb;
            const S* Ct = C + t * ldc;
            S* dBt = dB ? dB + t * lddb : nullptr;
            S* dCt = dC ? dC + t * lddc : nullptr;
            for (int64_t c = 0; c < E; ++c) {
                const S g_y = dy[t * E + c], dt = delta[t * E + c], xv = x[t * E + c];
                S dxAcc = g_y * Dp[c], ddt = 0;
                if (dD)
                    dD[c] += g_y * xv;
                for (int64_t n = 0; n < N; ++n) {
                    const int64_t i = c * N + n;
                    const S g = dh[i] + g_y * Ct[n]; // total ∂L/∂h_t[c,n]
                    if (dCt)
                        dCt[n] += g_y * hc[i];
                    const S a = ac[i];
                    const S gaA = g * hp[i] * a;     // ∂L/∂(Δ A) through the decay
                    ddt += gaA * A[i] + g * Bt[n] * xv;
                    if (dA)
                        dA[i] += gaA * dt;
                    if (dBt)
                        dBt[n] += g * dt * xv;
                    dxAcc += g * dt * Bt[n];
                    dh[i] = g * a;
                }
                if (dx)
                    dx[t * E + c] += dxAcc;
                if (ddelta)
                    ddelta[t * E + c] += ddt;
            }
        }
    }
}

} // namespace archlens::train
