// The float linear forward and backward of train_ops.h through the blocked SGEMM.
#include "training/train_ops.h"

#include "backends/cpu_gemm.h"

namespace archlens::train {

template<>
void linearForward<float>(int64_t M, int64_t in, int64_t out, const float* x, int64_t ldx, const float* W,
                          const float* b, float* y, int64_t ldy)
{
    fastcpu::GemmArgs g; // y = x · Wᵀ
    g.M = M;
    g.N = out;
    g.K = in;
    g.a = x;
    g.lda = ldx;
    g.b = W;
    g.ldb = in;
    g.transB = true;
    g.c = y;
    g.ldc = ldy;
    sgemm(g);
    if (b)
        for (int64_t i = 0; i < M; ++i)
            for (int64_t o = 0; o < out; ++o)
                y[i * ldy + o] += b[o];
}

template<>
void linearBackward<float>(int64_t M, int64_t in, int64_t out, const float* x, int64_t ldx, const float* W,
                           const float* dy, int64_t lddy, float* dx, int64_t lddx, float* dW, float* db)
{
    if (dx) {
        fastcpu::GemmArgs g; // dx += dy · W
        g.M = M;
        g.N = in;
        g.K = out;
        g.a = dy;
        g.lda = lddy;
        g.b = W;
        g.ldb = in;
        g.c = dx;
        g.ldc = lddx;
        g.accumulate = true;
        sgemm(g);
    }
    if (dW) {
        fastcpu::GemmArgs g; // dW += dyᵀ · x
        g.M = out;
        g.N = in;
        g.K = M;
        g.a = dy;
        g.lda = lddy;
        g.transA = true;
        g.b = x;
        g.ldb = ldx;
        g.c = dW;
        g.ldc = in;
        g.accumulate = true;
        sgemm(g);
    }
    if (db)
        for (int64_t i = 0; i < M; ++i)
            for (int64_t o = 0; o < out; ++o)
                db[o] += dy[i * lddy + o];
}

} // namespace archlens::train
