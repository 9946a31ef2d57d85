// Every training op's backward against central finite differences of its forward, all in
// double precision on small sizes (the same templates the trainer runs in float). The loss is
// L = Σ r ⊙ out with a fixed random r, so dL/dout = r.
#include <functional>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "grad_check.h"
#include "training/train_ops.h"

using namespace archlens::train;
using namespace archlens::train::test;

TEST(TrainOps, LinearWithStridesAndBias)
{
    std::mt19937_64 rng(1);
    const int64_t M = 5, in = 4, out = 3, ldx = 6, ldy = 7;
    Vec x = randVec(M * ldx, rng), W = randVec(out * in, rng), b = randVec(out, rng), r = randVec(M * ldy, rng);
    for (int64_t i = 0; i < M; ++i)
        for (int64_t j = out; j < ldy; ++j)
            r[i * ldy + j] = 0; // columns the op does not write do not count
    auto loss = [&] {
        Vec y(M * ldy, 0.0);
        linearForward<double>(M, in, out, x.data(), ldx, W.data(), b.data(), y.data(), ldy);
        return dot(y, r);
    };
    Vec dx(M * ldx, 0.0), dW(out * in, 0.0), db(out, 0.0);
    linearBackward<double>(M, in, out, x.data(), ldx, W.data(), r.data(), ldy, dx.data(), ldx, dW.data(), db.data());
    checkGrad("dx", x, dx, loss);
    checkGrad("dW", W, dW, loss);
    checkGrad("db", b, db, loss);
}

TEST(TrainOps, RmsNorm)
{
    std::mt19937_64 rng(2);
    const int64_t M = 4, D = 6;
    Vec x = randVec(M * D, rng), w = randVec(D, rng), r = randVec(M * D, rng);
    auto loss = [&] {
        Vec y(M * D), rs(M);
        rmsNormForward<double>(M, D, x.data(), w.data(), 1e-5, y.data(), rs.data());
        return dot(y, r);
    };
    Vec y(M * D), rs(M), dx(M * D, 0.0), dw(D, 0.0);
    rmsNormForward<double>(M, D, x.data(), w.data(), 1e-5, y.data(), rs.data());
    rmsNormBackward<double>(M, D, x.data(), w.data(), rs.data(), r.data(), dx.data(), dw.data());
    checkGrad("dx", x, dx, loss);
    checkGrad("dw", w, dw, loss);
}

TEST(TrainOps, CausalConv1d)
{
    std::mt19937_64 rng(3);
    const int64_t T = 7, E = 3, K = 4, ldx = 5;
    Vec x = randVec(T * ldx, rng), w = randVec(E * K, rng), b = randVec(E, rng), r = randVec(T * E, rng);
    auto loss = [&] {
        Vec y(T * E);
        conv1dForward<double>(T, E, K, x.data(), ldx, w.data(), b.data(), y.data());
        return dot(y, r);
    };
    Vec dx(T * ldx, 0.0), dw(E * K, 0.0), db(E, 0.0);
    conv1dBackward<double>(T, E, K, x.data(), ldx, w.data(), r.data(), dx.data(), ldx, dw.data(), db.data());
    checkGrad("dx", x, dx, loss);
    checkGrad("dw", w, dw, loss);
    checkGrad("db", b, db, loss);
}

TEST(TrainOps, SiluSoftplusAndGate)
{
    std::mt19937_64 rng(4);
    const int64_t n = 12;
    Vec x = randVec(n, rng, 4.0), r = randVec(n, rng);
    x[0] = 25; // softplus's linear branch (threshold 20)
    x[1] = -30;
    for (auto [fwd, bwd, name] :
         {std::tuple{&siluForward<double>, &siluBackward<double>, "silu"},
          std::tuple{&softplusForward<double>, &softplusBackward<double>, "softplus"}}) {
        auto loss = [&, fwd = fwd] {
            Vec y(n);
            fwd(n, x.data(), y.data());
            return dot(y, r);
        };
        Vec dx(n, 0.0);
        bwd(n, x.data(), r.data(), dx.data());
        checkGrad(name, x, dx, loss);
    }
    const int64_t T = 3, E = 4, ldz = 8;
    Vec y = randVec(T * E, rng), z = randVec(T * ldz, rng), rg = randVec(T * E, rng);
    auto loss = [&] {
        Vec o(T * E);
        gateForward<double>(T, E, y.data(), z.data(), ldz, o.data());
        return dot(o, rg);
    };
    Vec dy(T * E, 0.0), dz(T * ldz, 0.0);
    gateBackward<double>(T, E, y.data(), z.data(), ldz, rg.data(), dy.data(), dz.data(), ldz);
    checkGrad("gate dy", y, dy, loss);
    checkGrad("gate dz", z, dz, loss);
}

TEST(TrainOps, EmbeddingAndTiedHeadCrossEntropy)
{
    std::mt19937_64 rng(5);
    const int64_t T = 6, V = 5, D = 4;
    const std::vector<int32_t> ids = {0, 3, 3, 1, 4, 2};
    const std::vector<int32_t> targets = {3, -1, 1, 4, -1, 0}; // two ignored positions
    Vec E = randVec(V * D, rng);
    // loss = mean CE of (E[ids] · Eᵀ): embedding and tied head share E
    auto loss = [&] {
        Vec h(T * D), logits(T * V);
        embeddingForward<double>(T, D, ids.data(), E.data(), h.data());
        linearForward<double>(T, D, V, h.data(), D, E.data(), nullptr, logits.data(), V);
        return crossEntropy<double>(T, V, logits.data(), targets.data(), 0.25, nullptr) / 4.0;
    };
    Vec h(T * D), logits(T * V), dlogits(T * V), dh(T * D, 0.0), dE(V * D, 0.0);
    embeddingForward<double>(T, D, ids.data(), E.data(), h.data());
    linearForward<double>(T, D, V, h.data(), D, E.data(), nullptr, logits.data(), V);
    crossEntropy<double>(T, V, logits.data(), targets.data(), 0.25, dlogits.data());
    for (int64_t v = 0; v < V; ++v) {
        EXPECT_EQ(dlogits[1 * V + v], 0.0); // ignored rows give no gradient
        EXPECT_EQ(dlogits[4 * V + v], 0.0);
    }
    linearBackward<double>(T, D, V, h.data(), D, E.data(), dlogits.data(), V, dh.data(), D, dE.data(), nullptr);
    embeddingBackward<double>(T, D, ids.data(), dh.data(), dE.data());
    checkGrad("dE (embedding + tied head)", E, dE, loss);
}

TEST(TrainOps, SelectiveScanChunkedBackward)
{
    std::mt19937_64 rng(6);
    const int64_t T = 11, E = 3, N = 4, ldb = 10; // B and C columns of a wider matrix
    for (int64_t chunk : {int64_t(1), int64_t(3), int64_t(4), int64_t(11), int64_t(16)}) {
        Vec x = randVec(T * E, rng), delta(T * E), A(E * N), dbc = randVec(T * ldb, rng), Dp = randVec(E, rng),
            r = randVec(T * E, rng);
        std::uniform_real_distribution<double> u(0.05, 1.0);
        for (auto& v : delta)
            v = u(rng);
        for (auto& v : A)
            v = -u(rng) * 2;
        const double* B = dbc.data() + 1;
        const double* C = dbc.data() + 1 + N;
        auto loss = [&] {
            Vec y(T * E), cs(scanChunks(T, chunk) * E * N), h(E * N);
            scanForward<double>(T, E, N, chunk, x.data(), delta.data(), A.data(), dbc.data() + 1, ldb,
                                dbc.data() + 1 + N, ldb, Dp.data(), y.data(), cs.data(), h.data());
            return dot(y, r);
        };
        Vec y(T * E), cs(scanChunks(T, chunk) * E * N), h(E * N), work(scanBackwardWork(E, N, chunk));
        scanForward<double>(T, E, N, chunk, x.data(), delta.data(), A.data(), B, ldb, C, ldb, Dp.data(), y.data(),
                            cs.data(), h.data());
        Vec dx(T * E, 0.0), ddelta(T * E, 0.0), dA(E * N, 0.0), ddbc(T * ldb, 0.0), dD(E, 0.0);
        scanBackward<double>(T, E, N, chunk, x.data(), delta.data(), A.data(), B, ldb, C, ldb, Dp.data(), cs.data(),
                             r.data(), dx.data(), ddelta.data(), dA.data(), ddbc.data() + 1, ldb,
                             ddbc.data() + 1 + N, ldb, dD.data(), work.data());
        SCOPED_TRACE(testing::Message() << "chunk " << chunk);
        checkGrad("dx", x, dx, loss);
        checkGrad("ddelta", delta, ddelta, loss);
        checkGrad("dA", A, dA, loss);
        checkGrad("dB, dC", dbc, ddbc, loss);
        checkGrad("dD", Dp, dD, loss);
        // columns of dbc that are neither B nor C got nothing
        for (int64_t t = 0; t < T; ++t) {
            EXPECT_EQ(ddbc[t * ldb], 0.0);
            EXPECT_EQ(ddbc[t * ldb + ldb - 1], 0.0);
        }
    }
}

TEST(TrainOps, ScanChunkStatesMatchFullForward)
{
    // the chunk checkpoints are the states the forward passed through
    std::mt19937_64 rng(7);
    const int64_t T = 10, E = 2, N = 3;
    Vec x = randVec(T * E, rng), delta(T * E, 0.3), A(E * N, -0.5), B = randVec(T * N, rng), C = randVec(T * N, rng),
        Dp(E, 1.0);
    Vec y1(T * E), y4(T * E), c1(T * E * N), c4(3 * E * N), h(E * N);
    scanForward<double>(T, E, N, 1, x.data(), delta.data(), A.data(), B.data(), N, C.data(), N, Dp.data(), y1.data(),
                        c1.data(), h.data());
    scanForward<double>(T, E, N, 4, x.data(), delta.data(), A.data(), B.data(), N, C.data(), N, Dp.data(), y4.data(),
                        c4.data(), h.data());
    EXPECT_EQ(y1, y4);
    for (int64_t k = 0; k < 3; ++k)
        for (int64_t i = 0; i < E * N; ++i)
            EXPECT_EQ(c4[k * E * N + i], c1[k * 4 * E * N + i]);
}
