// Llama-style attention (rotary, causal softmax, grouped KV heads) and a Mixtral-style MoE
// layer (router softmax, top-k with renormalised weights, SwiGLU experts, load-balancing aux
// loss) backward against double-precision finite differences.
#include <functional>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "grad_check.h"
#include "training/train_ops_attention.h"

using namespace archlens::train;
using namespace archlens::train::test;

TEST(TrainOpsAttention, RotaryPartialDims)
{
    std::mt19937_64 rng(1);
    const int64_t T = 5, H = 2, Dh = 6, rot = 4;
    const double invFreq[2] = {1.0, 0.1};
    Vec x = randVec(T * H * Dh, rng), r = randVec(T * H * Dh, rng);
    auto loss = [&] {
        Vec y(x.size());
        ropeForward<double>(T, H, Dh, rot, invFreq, x.data(), y.data());
        return dot(y, r);
    };
    Vec dx(x.size(), 0.0);
    ropeBackward<double>(T, H, Dh, rot, invFreq, r.data(), dx.data());
    checkGrad("rope dx", x, dx, loss);
}

TEST(TrainOpsAttention, CausalGqaAttentionWithRotary)
{
    std::mt19937_64 rng(2);
    const int64_t T = 6, Hq = 4, Hkv = 2, Dh = 4;
    const double invFreq[2] = {1.0, 0.01};
    Vec q = randVec(T * Hq * Dh, rng), k = randVec(T * Hkv * Dh, rng), v = randVec(T * Hkv * Dh, rng),
        r = randVec(T * Hq * Dh, rng);
    // loss = Σ r ⊙ attention(rope(q), rope(k), v)
    auto forward = [&](Vec& qr, Vec& kr, Vec& out, Vec& P) {
        qr.assign(q.size(), 0);
        kr.assign(k.size(), 0);
        out.assign(q.size(), 0);
        P.assign(size_t(Hq * T * T), 0);
        ropeForward<double>(T, Hq, Dh, Dh, invFreq, q.data(), qr.data());
        ropeForward<double>(T, Hkv, Dh, Dh, invFreq, k.data(), kr.data());
        attentionForward<double>(T, Hq, Hkv, Dh, qr.data(), kr.data(), v.data(), out.data(), P.data());
    };
    auto loss = [&] {
        Vec qr, kr, out, P;
        forward(qr, kr, out, P);
        return dot(out, r);
    };
    Vec qr, kr, out, P;
    forward(qr, kr, out, P);
    for (int64_t h = 0; h < Hq; ++h) // causal: no weight on the future
        for (int64_t t = 0; t < T; ++t)
            for (int64_t s = t + 1; s < T; ++s)
                EXPECT_EQ(P[size_t((h * T + t) * T + s)], 0.0);
    Vec dqr(q.size(), 0.0), dkr(k.size(), 0.0), dv(v.size(), 0.0), dq(q.size(), 0.0), dk(k.size(), 0.0);
    attentionBackward<double>(T, Hq, Hkv, Dh, qr.data(), kr.data(), v.data(), P.data(), r.data(), dqr.data(),
                              dkr.data(), dv.data());
    ropeBackward<double>(T, Hq, Dh, Dh, invFreq, dqr.data(), dq.data());
    ropeBackward<double>(T, Hkv, Dh, Dh, invFreq, dkr.data(), dk.data());
    checkGrad("dq", q, dq, loss);
    checkGrad("dk", k, dk, loss);
    checkGrad("dv", v, dv, loss);
}

TEST(TrainOpsAttention, MoeLayerWithLoadBalancingLoss)
{
    std::mt19937_64 rng(3);
    const int64_t T = 7, D = 4, I = 5, X = 4, k = 2;
    const double coef = 0.02;
    Vec x = randVec(T * D, rng), Wr = randVec(X * D, rng), r = randVec(T * D, rng);
    std::vector<Vec> Wg, Wu, Wd;
    for (int64_t e = 0; e < X; ++e) {
        Wg.push_back(randVec(I * D, rng, 0.5));
        Wu.push_back(randVec(I * D, rng, 0.5));
        Wd.push_back(randVec(D * I, rng, 0.5));
    }
    // selection fixed from the unperturbed input (finite differences must not flip it)
    std::vector<int32_t> fixedExperts(size_t(T * k));
    struct Fwd {
        Vec logits, probs, weights, out;
        std::vector<int32_t> experts;
        std::vector<Vec> act;
        double loss = 0;
    };
    auto forward = [&](bool useFixed) {
        Fwd f;
        f.logits.assign(size_t(T * X), 0);
        f.probs.assign(size_t(T * X), 0);
        f.weights.assign(size_t(T * k), 0);
        f.experts.assign(size_t(T * k), 0);
        f.out.assign(size_t(T * D), 0);
        linearForward<double>(T, D, X, x.data(), D, Wr.data(), nullptr, f.logits.data(), X);
        softmaxRowsForward<double>(T, X, f.logits.data(), f.probs.data());
        routerTopK<double>(T, X, k, f.probs.data(), true, f.experts.data(), f.weights.data());
        if (useFixed) {
            f.experts = fixedExperts;
            for (int64_t t = 0; t < T; ++t) {
                double s = 0;
                for (int64_t j = 0; j < k; ++j)
                    s += f.probs[size_t(t * X + f.experts[size_t(t * k + j)])];
                for (int64_t j = 0; j < k; ++j)
                    f.weights[size_t(t * k + j)] = f.probs[size_t(t * X + f.experts[size_t(t * k + j)])] / s;
            }
        }
        f.act.assign(size_t(T * k), Vec(size_t(2 * I)));
        for (int64_t t = 0; t < T; ++t)
            for (int64_t j = 0; j < k; ++j) {
                const int32_t e = f.experts[size_t(t * k + j)];
                Vec o(static_cast<size_t>(D));
                swigluForward<double>(1, D, I, x.data() + t * D, Wg[size_t(e)].data(), Wu[size_t(e)].data(),
                                      Wd[size_t(e)].data(), f.act[size_t(t * k + j)].data(), o.data());
                for (int64_t d = 0; d < D; ++d)
                    f.out[size_t(t * D + d)] += f.weights[size_t(t * k + j)] * o[size_t(d)];
            }
        f.loss = dot(f.out, r)
                 + coef * loadBalancingLoss<double>(T, X, k, f.probs.data(), f.experts.data(), coef, nullptr);
        return f;
    };
    Fwd f = forward(false);
    fixedExperts = f.experts;
    auto loss = [&] { return forward(true).loss; };

    Vec dx(x.size(), 0.0), dWr(Wr.size(), 0.0), dprobs(size_t(T * X), 0.0), dlogits(size_t(T * X), 0.0),
        dweights(size_t(T * k), 0.0);
    std::vector<Vec> dWg(size_t(X), Vec(size_t(I * D), 0.0)), dWu = dWg, dWd(size_t(X), Vec(size_t(D * I), 0.0));
    for (int64_t t = 0; t < T; ++t)
        for (int64_t j = 0; j < k; ++j) {
            const int32_t e = f.experts[size_t(t * k + j)];
            Vec o(static_cast<size_t>(D)), act(size_t(2 * I));
            swigluForward<double>(1, D, I, x.data() + t * D, Wg[size_t(e)].data(), Wu[size_t(e)].data(),
                                  Wd[size_t(e)].data(), act.data(), o.data());
            dweights[size_t(t * k + j)] = 0;
            Vec dout(static_cast<size_t>(D));
            for (int64_t d = 0; d < D; ++d) {
                dweights[size_t(t * k + j)] += o[size_t(d)] * r[size_t(t * D + d)];
                dout[size_t(d)] = f.weights[size_t(t * k + j)] * r[size_t(t * D + d)];
            }
            swigluBackward<double>(1, D, I, x.data() + t * D, Wg[size_t(e)].data(), Wu[size_t(e)].data(),
                                   Wd[size_t(e)].data(), act.data(), dout.data(), dx.data() + t * D,
                                   dWg[size_t(e)].data(), dWu[size_t(e)].data(), dWd[size_t(e)].data());
        }
    routerTopKBackward<double>(T, X, k, f.probs.data(), true, f.experts.data(), dweights.data(), dprobs.data());
    loadBalancingLoss<double>(T, X, k, f.probs.data(), f.experts.data(), coef, dprobs.data());
    softmaxRowsBackward<double>(T, X, f.probs.data(), dprobs.data(), dlogits.data());
    linearBackward<double>(T, D, X, x.data(), D, Wr.data(), dlogits.data(), X, dx.data(), D, dWr.data(), nullptr);
    checkGrad("dx", x, dx, loss);
    checkGrad("router", Wr, dWr, loss);
    for (int64_t e = 0; e < X; ++e) {
        checkGrad("expert gate", Wg[size_t(e)], dWg[size_t(e)], loss);
        checkGrad("expert up", Wu[size_t(e)], dWu[size_t(e)], loss);
        checkGrad("expert down", Wd[size_t(e)], dWd[size_t(e)], loss);
    }
    // a perfectly balanced router (f = k/X, P = 1/X for every expert) has aux loss X·X·(k/X)(1/X) = k
    Vec uniform(size_t(T * X), 1.0 / double(X));
    std::vector<int32_t> roundRobin(size_t(4 * 2));
    for (int i = 0; i < 8; ++i)
        roundRobin[size_t(i)] = i % 4;
    EXPECT_NEAR(loadBalancingLoss<double>(4, 4, 2, uniform.data(), roundRobin.data(), 0.0, nullptr), 2.0, 1e-12);
}
