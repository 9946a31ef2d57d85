// Forward and backward of the Llama-style attention and Mixtral-style MoE pieces
// (model-formats §6, §7), templated on the scalar like train_ops.h so each backward is checked
// against double-precision finite differences. DecoderTrainModel (decoder_train_model.h) trains
// Llama, Mixtral and Jamba with them (attention there runs the same maths through Eigen GEMMs).
// Conventions as in train_ops.h: forward outputs overwritten, gradients accumulated.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "training/train_ops.h"

namespace archlens::train {

// Rotary embedding, rotate_half form, on the first `rotDims` dims of every head of x
// (T, heads·Dh), position of row t = t: for i < rotDims/2, θ = t·invFreq[i],
// y[i] = x[i]cosθ − x[i+h]sinθ, y[i+h] = x[i+h]cosθ + x[i]sinθ (h = rotDims/2).
template<class S>
void ropeForward(int64_t T, int64_t heads, int64_t Dh, int64_t rotDims, const double* invFreq, const S* x, S* y)
{
    const int64_t h2 = rotDims / 2;
    for (int64_t t = 0; t < T; ++t)
        for (int64_t hd = 0; hd < heads; ++hd) {
            const S* xi = x + (t * heads + hd) * Dh;
            S* yi = y + (t * heads + hd) * Dh;
            for (int64_t i = rotDims; i < Dh; ++i)
                yi[i] = xi[i];
            for (int64_t i = 0; i < h2; ++i) {
                const double th = double(t) * invFreq[i];
                const S c = S(std::cos(th)), s = S(std::sin(th));
                yi[i] = xi[i] * c - xi[i + h2] * s;
                yi[i + h2] = xi[i + h2] * c + xi[i] * s;
            }
        }
}

// The rotation is orthogonal: dx = Rᵀ dy (rotate by −θ).
template<class S>
void ropeBackward(int64_t T, int64_t heads, int64_t Dh, int64_t rotDims, const double* invFreq, const S* dy, S* dx)
{
    const int64_t h2 = rotDims / 2;
    for (int64_t t = 0; t < T; ++t)
        for (int64_t hd = 0; hd < heads; ++hd) {
            const S* g = dy + (t * heads + hd) * Dh;
            S* d = dx + (t * heads + hd) * Dh;
            for (int64_t i = rotDims; i < Dh; ++i)
                d[i] += g[i];
            for (int64_t i = 0; i < h2; ++i) {
                const double th = double(t) * invFreq[i];
                const S c = S(std::cos(th)), s = S(std::sin(th));
                d[i] += g[i] * c + g[i + h2] * s;
                d[i + h2] += g[i + h2] * c - g[i] * s;
            }
        }
}

// Causal softmax attention with grouped KV heads: q (T, Hq·Dh), k and v (T, Hkv·Dh),
// out (T, Hq·Dh); P (Hq, T, T) keeps the probabilities for the backward (row t: columns ≤ t).
template<class S>
void attentionForward(int64_t T, int64_t Hq, int64_t Hkv, int64_t Dh, const S* q, const S* k, const S* v, S* out,
                      S* P)
{
    const int64_t group = Hq / Hkv;
    const S scale = S(1) / std::sqrt(S(Dh));
    for (int64_t h = 0; h < Hq; ++h) {
        const int64_t kh = h / group;
        for (int64_t t = 0; t < T; ++t) {
            S* p = P + (h * T + t) * T;
            S mx = -INFINITY;
            for (int64_t s = 0; s <= t; ++s) {
                S acc = 0;
                for (int64_t d = 0; d < Dh; ++d)
                    acc += q[(t * Hq + h) * Dh + d] * k[(s * Hkv + kh) * Dh + d];
                p[s] = acc * scale;
                mx = std::max(mx, p[s]);
            }
            S sum = 0;
            for (int64_t s = 0; s <= t; ++s)
                sum += (p[s] = std::exp(p[s] - mx));
            for (int64_t s = 0; s <= t; ++s)
                p[s] /= sum;
            for (int64_t s = t + 1; s < T; ++s)
                p[s] = 0;
            S* o = out + (t * Hq + h) * Dh;
            for (int64_t d = 0; d < Dh; ++d) {
                S acc = 0;
                for (int64_t s = 0; s <= t; ++s)
                    acc += p[s] * v[(s * Hkv + kh) * Dh + d];
                o[d] = acc;
            }
        }
    }
}

// dS = P ⊙ (dP − Σ_s dP·P) with dP = dout·vᵀ; dq = dS·k/√Dh, dk = dSᵀ·q/√Dh, dv = Pᵀ·dout.
template<class S>
void attentionBackward(int64_t T, int64_t Hq, int64_t Hkv, int64_t Dh, const S* q, const S* k, const S* v,
                       const S* P, const S* dout, S* dq, S* dk, S* dv)
{
    const int64_t group = Hq / Hkv;
    const S scale = S(1) / std::sqrt(S(Dh));
    std::vector<S> dp(static_cast<size_t>(T));
    for (int64_t h = 0; h < Hq; ++h) {
        const int64_t kh = h / group;
        for (int64_t t = 0; t < T; ++t) {
            const S* p = P + (h * T + t) * T;
            const S* g = dout + (t * Hq + h) * Dh;
            S dot = 0;
            for (int64_t s = 0; s <= t; ++s) {
                S acc = 0;
                for (int64_t d = 0; d < Dh; ++d) {
                    acc += g[d] * v[(s * Hkv + kh) * Dh + d];
                    dv[(s * Hkv + kh) * Dh + d] += p[s] * g[d];
                }
                dp[size_t(s)] = acc;
                dot += acc * p[s];
            }
            for (int64_t s = 0; s <= t; ++s) {
                const S ds = p[s] * (dp[size_t(s)] - dot) * scale;
                for (int64_t d = 0; d < Dh; ++d) {
                    dq[(t * Hq + h) * Dh + d] += ds * k[(s * Hkv + kh) * Dh + d];
                    dk[(s * Hkv + kh) * Dh + d] += ds * q[(t * Hq + h) * Dh + d];
                }
            }
        }
    }
}

// Softmax over rows of n: y = softmax(x); dx += y ⊙ (dy − Σ dy·y).
template<class S> void softmaxRowsForward(int64_t M, int64_t n, const S* x, S* y)
{
    for (int64_t i = 0; i < M; ++i) {
        S mx = x[i * n];
        for (int64_t j = 1; j < n; ++j)
            mx = std::max(mx, x[i * n + j]);
        S sum = 0;
        for (int64_t j = 0; j < n; ++j)
            sum += (y[i * n + j] = std::exp(x[i * n + j] - mx));
        for (int64_t j = 0; j < n; ++j)
            y[i * n + j] /= sum;
    }
}
template<class S> void softmaxRowsBackward(int64_t M, int64_t n, const S* y, const S* dy, S* dx)
{
    for (int64_t i = 0; i < M; ++i) {
        S dot = 0;
        for (int64_t j = 0; j < n; ++j)
            dot += dy[i * n + j] * y[i * n + j];
        for (int64_t j = 0; j < n; ++j)
            dx[i * n + j] += y[i * n + j] * (dy[i * n + j] - dot);
    }
}

// Mixtral routing on router probabilities probs (T, X): the k largest per row (ties to the
// lower index, as torch.topk), weights renormalised over the chosen k when `renormalise`.
template<class S>
void routerTopK(int64_t T, int64_t X, int64_t k, const S* probs, bool renormalise, int32_t* experts, S* weights)
{
    std::vector<int32_t> idx(static_cast<size_t>(X));
    for (int64_t t = 0; t < T; ++t) {
        const S* p = probs + t * X;
        for (int64_t e = 0; e < X; ++e)
            idx[size_t(e)] = int32_t(e);
        std::stable_sort(idx.begin(), idx.end(), [&](int32_t a, int32_t b) { return p[a] > p[b]; });
        S sum = 0;
        for (int64_t j = 0; j < k; ++j)
            sum += p[idx[size_t(j)]];
        for (int64_t j = 0; j < k; ++j) {
            experts[t * k + j] = idx[size_t(j)];
            weights[t * k + j] = renormalise ? p[idx[size_t(j)]] / sum : p[idx[size_t(j)]];
        }
    }
}
// dprobs += ∂weights/∂probs · dweights (the selection itself is piecewise constant).
template<class S>
void routerTopKBackward(int64_t T, int64_t X, int64_t k, const S* probs, bool renormalise, const int32_t* experts,
                        const S* dweights, S* dprobs)
{
    for (int64_t t = 0; t < T; ++t) {
        const S* p = probs + t * X;
        const int32_t* ex = experts + t * k;
        const S* dw = dweights + t * k;
        if (!renormalise) {
            for (int64_t j = 0; j < k; ++j)
                dprobs[t * X + ex[j]] += dw[j];
            continue;
        }
        S sum = 0, dot = 0;
        for (int64_t j = 0; j < k; ++j)
            sum += p[ex[j]];
        for (int64_t j = 0; j < k; ++j)
            dot += dw[j] * p[ex[j]];
        for (int64_t j = 0; j < k; ++j) // w_j = p_j / Σ p  ⇒  ∂/∂p_i = (δ_ij − w_j) / Σ p
            dprobs[t * X + ex[j]] += (dw[j] - dot / sum) / sum;
    }
}

// transformers' load_balancing_loss_func over the rows of one or more MoE layers:
// X · Σ_e Σ_j f[j, e] · P[e], f[j, e] = fraction of rows whose j-th choice is e, P[e] = mean
// router probability of e. The gradient flows through P only (f counts choices).
template<class S>
S loadBalancingLoss(int64_t T, int64_t X, int64_t k, const S* probs, const int32_t* experts, S coef, S* dprobs)
{
    std::vector<S> f(size_t(X), 0), P(size_t(X), 0);
    for (int64_t t = 0; t < T; ++t) {
        for (int64_t j = 0; j < k; ++j)
            f[size_t(experts[t * k + j])] += S(1) / S(T);
        for (int64_t e = 0; e < X; ++e)
            P[size_t(e)] += probs[t * X + e] / S(T);
    }
    S loss = 0;
    for (int64_t e = 0; e < X; ++e)
        loss += f[size_t(e)] * P[size_t(e)];
    loss *= S(X);
    if (dprobs)
        for (int64_t t = 0; t < T; ++t)
            for (int64_t e = 0; e < X; ++e)
                dprobs[t * X + e] += coef * S(X) * f[size_t(e)] / S(T);
    return loss;
}

// SwiGLU expert: out = down(SiLU(gate(x)) ⊙ up(x)); gate/up (I, D), down (D, I). act keeps
// gate(x) and up(x) (M, 2I) for the backward.
template<class S>
void swigluForward(int64_t M, int64_t D, int64_t I, const S* x, const S* Wg, const S* Wu, const S* Wd, S* act, S* out)
{
    std::vector<S> h(size_t(M * I));
    linearForward<S>(M, D, I, x, D, Wg, nullptr, act, 2 * I);
    linearForward<S>(M, D, I, x, D, Wu, nullptr, act + I, 2 * I);
    for (int64_t i = 0; i < M; ++i)
        for (int64_t j = 0; j < I; ++j)
            h[size_t(i * I + j)] = silu(act[i * 2 * I + j]) * act[i * 2 * I + I + j];
    linearForward<S>(M, I, D, h.data(), I, Wd, nullptr, out, D);
}
template<class S>
void swigluBackward(int64_t M, int64_t D, int64_t I, const S* x, const S* Wg, const S* Wu, const S* Wd, const S* act,
                    const S* dout, S* dx, S* dWg, S* dWu, S* dWd)
{
    std::vector<S> h(size_t(M * I)), dh(size_t(M * I), 0), dact(size_t(M * 2 * I), 0);
    for (int64_t i = 0; i < M; ++i)
        for (int64_t j = 0; j < I; ++j)
            h[size_t(i * I + j)] = silu(act[i * 2 * I + j]) * act[i * 2 * I + I + j];
    linearBackward<S>(M, I, D, h.data(), I, Wd, dout, D, dh.data(), I, dWd, nullptr);
    for (int64_t i = 0; i < M; ++i)
        for (int64_t j = 0; j < I; ++j) {
            const S g = act[i * 2 * I + j], u = act[i * 2 * I + I + j], d = dh[size_t(i * I + j)];
            dact[size_t(i * 2 * I + j)] = d * u * siluGrad(g);
            dact[size_t(i * 2 * I + I + j)] = d * silu(g);
        }
    linearBackward<S>(M, D, I, x, D, Wg, dact.data(), 2 * I, dx, D, dWg, nullptr);
    linearBackward<S>(M, D, I, x, D, Wu, dact.data() + I, 2 * I, dx, D, dWu, nullptr);
}

} // namespace archlens::train
