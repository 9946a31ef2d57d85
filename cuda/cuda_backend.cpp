// The CUDA backend: the Backend interface (core/backends/backend.h) on one device, one
// stream and one cuBLAS handle. Kernels live one op per file in kernels/; this file moves
// data and calls them.
//
// Where data lives:
//  * Weights (the `w`, `b`, A, D, dt-bias, embedding-table and expert arguments) are
//    uploaded on first use and kept on the device, keyed by their host address; the cache
//    holds a copy of the host Tensor, so that address cannot be reused by another tensor
//    while the entry lives. weightsChanged() drops the cache (weights changed in place).
//    With ARCHLENS_CUDA_WEIGHTS=bf16 (or f16) F32 GEMM weights are narrowed once at upload
//    and the GEMMs run on tensor cores with F32 accumulation; weights stored as BF16/F16
//    are always used as they are.
//  * Activations and state from newTensor() are CUDA managed memory (a pool): the ops use
//    them in place, no copy. Any other host tensor is copied in before the op and its
//    outputs copied back after it, on the stream.
//  * Every op ends with a stream synchronise, so its outputs are host-visible when it
//    returns (the Backend contract); errors surface there, as Error(Backend).
#include "cuda_backend.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include <fmt/format.h>

#include "cuda_check.h"
#include "kernels/kernels.h"
#include "ops/math.h"

namespace archlens::cuda {

[[noreturn]] void throwCudaError(cudaError_t err, const char* expr, const char* file, int line)
{
    const char* base = std::strrchr(file, '/');
    throw Error(ErrorCode::Backend,
        fmt::format("CUDA error {} ({}): {}", int(err), cudaGetErrorName(err), cudaGetErrorString(err)),
        fmt::format("{} at {}:{}", expr, base ? base + 1 : file, line),
        err == cudaErrorMemoryAllocation ? "the device is out of memory: use a smaller model or --backend cpu" : "");
}

[[noreturn]] void throwCublasError(cublasStatus_t status, const char* expr, const char* file, int line)
{
    const char* base = std::strrchr(file, '/');
    throw Error(ErrorCode::Backend,
        fmt::format("cuBLAS error {} ({}): {}", int(status), cublasGetStatusName(status), cublasGetStatusString(status)),
        fmt::format("{} at {}:{}", expr, base ? base + 1 : file, line));
}

namespace {

int dtypeCode(DType d)
{
    switch (d) {
    case DType::F32: return 0;
    case DType::F16: return 1;
    case DType::BF16: return 2;
    default:
        throw makeError(ErrorCode::Unsupported, "the CUDA backend takes F32, F16 or BF16 weights, not {}",
            dtypeName(d));
    }
}

cudaDataType cudaType(DType d)
{
    return d == DType::F16 ? CUDA_R_16F : d == DType::BF16 ? CUDA_R_16BF : CUDA_R_32F;
}

void checkShape(bool ok, const char* op, const std::string& what)
{
    if (!ok)
        throw makeError(ErrorCode::Shape, "cuda {}: unexpected shapes {}", op, what);
}

// Device memory accounting shared by every allocation of one backend.
struct Usage {
    uint64_t current = 0, peak = 0;
    void add(uint64_t b)
    {
        current += b;
        peak = std::max(peak, current);
    }
    void sub(uint64_t b) { current -= std::min(current, b); }
};

class DeviceBuffer {
public:
    DeviceBuffer() = default;
    DeviceBuffer(size_t bytes, Usage* usage)
        : m_bytes(std::max<size_t>(bytes, 256))
        , m_usage(usage)
    {
        CUDA_CHECK(cudaMalloc(&m_ptr, m_bytes));
        m_usage->add(m_bytes);
    }
    DeviceBuffer(DeviceBuffer&& o) noexcept { *this = std::move(o); }
    DeviceBuffer& operator=(DeviceBuffer&& o) noexcept
    {
        std::swap(m_ptr, o.m_ptr);
        std::swap(m_bytes, o.m_bytes);
        std::swap(m_usage, o.m_usage);
        return *this;
    }
    ~DeviceBuffer()
    {
        if (m_ptr) {
            cudaFree(m_ptr);
            m_usage->sub(m_bytes);
        }
    }
    void* get() const { return m_ptr; }
    size_t bytes() const { return m_bytes; }

private:
    void* m_ptr = nullptr;
    size_t m_bytes = 0;
    Usage* m_usage = nullptr;
};

// Managed-memory blocks for newTensor(), recycled by size so that a forward pass does not
// call cudaMallocManaged per activation. Blocks are freed when the pool goes (the last
// tensor and the backend both gone).
class ManagedPool : public std::enable_shared_from_this<ManagedPool> {
public:
    explicit ManagedPool(Usage* usage)
        : m_usage(usage)
    {
    }
    ~ManagedPool()
    {
        for (auto& [ptr, bytes] : m_blocks)
            cudaFree(reinterpret_cast<void*>(ptr));
    }
    void* take(size_t bytes)
    {
        std::lock_guard lock(m_mutex);
        auto it = m_free.lower_bound(bytes);
        if (it != m_free.end() && it->first <= bytes * 2) {
            void* p = it->second;
            m_free.erase(it);
            return p;
        }
        void* p = nullptr;
        CUDA_CHECK(cudaMallocManaged(&p, bytes));
        m_blocks[reinterpret_cast<uintptr_t>(p)] = bytes;
        m_usage->add(bytes);
        return p;
    }
    void give(void* p)
    {
        std::lock_guard lock(m_mutex);
        m_free.emplace(m_blocks.at(reinterpret_cast<uintptr_t>(p)), p);
    }
    // Whether [p, p + bytes) lies inside one managed block.
    bool contains(const void* p, size_t bytes) const
    {
        std::lock_guard lock(m_mutex);
        const auto a = reinterpret_cast<uintptr_t>(p);
        auto it = m_blocks.upper_bound(a);
        if (it == m_blocks.begin())
            return false;
        --it;
        return a + bytes <= it->first + it->second;
    }

private:
    mutable std::mutex m_mutex;
    Usage* m_usage;
    std::map<uintptr_t, size_t> m_blocks; // every block: start -> bytes
    std::multimap<size_t, void*> m_free;
};

class ManagedStorage final : public Storage {
public:
    ManagedStorage(std::shared_ptr<ManagedPool> pool, size_t bytes)
        : m_pool(std::move(pool))
        , m_bytes(bytes)
        , m_ptr(static_cast<std::byte*>(m_pool->take(std::max<size_t>(bytes, 256))))
    {
    }
    ~ManagedStorage() override { m_pool->give(m_ptr); }
    std::byte* data() override { return m_ptr; }
    size_t bytes() const override { return m_bytes; }
    bool mapped() const override { return false; }

private:
    std::shared_ptr<ManagedPool> m_pool;
    size_t m_bytes;
    std::byte* m_ptr;
};

class CudaBackend final : public Backend {
public:
    explicit CudaBackend(int device)
        : m_device(device)
    {
        CUDA_CHECK(cudaSetDevice(device));
        cudaDeviceProp prop {};
        CUDA_CHECK(cudaGetDeviceProperties(&prop, device));
        m_name = prop.name;
        m_sms = prop.multiProcessorCount;
        m_cc = prop.major * 10 + prop.minor;
        CUDA_CHECK(cudaStreamCreateWithFlags(&m_stream, cudaStreamNonBlocking));
        CUBLAS_CHECK(cublasCreate(&m_blas));
        CUBLAS_CHECK(cublasSetStream(m_blas, m_stream));
        // F32 GEMMs stay F32 (no TF32), so results match the CPU reference to F32 rounding
        CUBLAS_CHECK(cublasSetMathMode(m_blas, CUBLAS_DEFAULT_MATH));
        CUDA_CHECK(cudaEventCreate(&m_timerStart));
        CUDA_CHECK(cudaEventCreate(&m_timerStop));
        m_pool = std::make_shared<ManagedPool>(&m_usage);
        if (const char* w = std::getenv("ARCHLENS_CUDA_WEIGHTS"); w && *w) {
            const std::string s = w;
            if (s == "bf16")
                m_gemmDtype = DType::BF16;
            else if (s == "f16")
                m_gemmDtype = DType::F16;
            else if (s != "f32")
                throw makeError(ErrorCode::InvalidArgument,
                    "ARCHLENS_CUDA_WEIGHTS='{}': expected f32, bf16 or f16", s);
        }
    }

    ~CudaBackend() override
    {
        cudaSetDevice(m_device);
        cudaStreamSynchronize(m_stream);
        m_weights.clear();
        m_scratch.clear();
        m_halfScratch = DeviceBuffer();
        cublasDestroy(m_blas);
        cudaEventDestroy(m_timerStart);
        cudaEventDestroy(m_timerStop);
        cudaStreamDestroy(m_stream);
    }

    std::string name() const override { return "cuda"; }
    std::string description() const override
    {
        return fmt::format("CUDA {} (sm_{}, {} GEMM weights, F32 compute)", m_name, m_cc, dtypeName(m_gemmDtype));
    }
    bool supports(Op op) const override { return op != Op::Count; }
    std::optional<uint64_t> memoryAvailable() const override
    {
        size_t freeBytes = 0, total = 0;
        if (cudaSetDevice(m_device) != cudaSuccess || cudaMemGetInfo(&freeBytes, &total) != cudaSuccess)
            return std::nullopt;
        return uint64_t(freeBytes);
    }
    Tensor newTensor(const Shape& shape, DType dtype) override
    {
        const size_t bytes = size_t(shapeNumel(shape)) * dtypeSize(dtype);
        return Tensor::view(std::make_shared<ManagedStorage>(m_pool, bytes), 0, shape, dtype);
    }
    bool acceptsWeightDType(DType dtype) const override
    {
        return dtype == DType::F32 || dtype == DType::F16 || dtype == DType::BF16;
    }
    void weightsChanged() override
    {
        std::lock_guard lock(m_mutex);
        CUDA_CHECK(cudaStreamSynchronize(m_stream));
        m_weights.clear();
    }
    void timerStart() override { CUDA_CHECK(cudaEventRecord(m_timerStart, m_stream)); }
    std::optional<double> timerSeconds() override
    {
        CUDA_CHECK(cudaEventRecord(m_timerStop, m_stream));
        CUDA_CHECK(cudaEventSynchronize(m_timerStop));
        float ms = 0.f;
        CUDA_CHECK(cudaEventElapsedTime(&ms, m_timerStart, m_timerStop));
        return double(ms) * 1e-3;
    }
    uint64_t peakDeviceBytes() const override { return m_usage.peak; }

    // ---- ops -------------------------------------------------------------------------

    void linear(const Tensor& x, const Tensor& w, const Tensor* b, Tensor& y) override
    {
        const int64_t T = x.dim(0), in = x.dim(1), out = w.dim(0);
        checkShape(w.dim(1) == in && y.dim(0) == T && y.dim(1) == out, "linear",
            shapeToString(x.shape()) + " x " + shapeToString(w.shape()));
        OpScope scope(*this);
        const float* xd = input(x);
        float* yd = output(y, false);
        gemm(xd, w, yd, T, in, out);
        if (b && T > 0)
            cuda::launchAddBias(yd, weightF32(*b), T, out, m_stream);
        CUDA_CHECK_LAUNCH("linear");
        finish();
    }

    void embedding(const std::vector<int32_t>& ids, const Tensor& table, Tensor& out) override
    {
        const int64_t rows = table.dim(0), D = table.dim(1);
        checkShape(out.dim(0) == int64_t(ids.size()) && out.dim(1) == D, "embedding", shapeToString(out.shape()));
        for (int32_t id : ids)
            if (id < 0 || id >= rows)
                throw makeError(ErrorCode::InvalidArgument, "token id {} is outside the embedding table (0..{})", id,
                    rows - 1);
        OpScope scope(*this);
        const int64_t T = int64_t(ids.size());
        if (T > 0) {
            auto* idsDev = static_cast<int32_t*>(scratch(size_t(T) * sizeof(int32_t)));
            CUDA_CHECK(cudaMemcpyAsync(idsDev, ids.data(), size_t(T) * sizeof(int32_t), cudaMemcpyHostToDevice, m_stream));
            float* od = output(out, false);
            cuda::launchEmbedding(idsDev, T, weight(table, table.dtype()), dtypeCode(table.dtype()), D, od, m_stream);
            CUDA_CHECK_LAUNCH("embedding");
        }
        finish();
    }

    void rmsNorm(const Tensor& x, const Tensor& w, float eps, Tensor& y) override
    {
        const int64_t T = x.dim(0), D = x.dim(1);
        checkShape(w.numel() == D && y.numel() == x.numel(), "rmsNorm", shapeToString(x.shape()));
        OpScope scope(*this);
        if (x.numel() > 0) {
            const float* xd = input(x);
            cuda::launchRmsNorm(xd, weightF32(w), eps, T, D, output(y, false), m_stream);
            CUDA_CHECK_LAUNCH("rmsNorm");
        }
        finish();
    }

    void layerNorm(const Tensor& x, const Tensor& w, const Tensor* b, float eps, Tensor& y) override
    {
        const int64_t T = x.dim(0), D = x.dim(1);
        checkShape(w.numel() == D && y.numel() == x.numel(), "layerNorm", shapeToString(x.shape()));
        OpScope scope(*this);
        if (x.numel() > 0) {
            const float* xd = input(x);
            cuda::launchLayerNorm(xd, weightF32(w), b ? weightF32(*b) : nullptr, eps, T, D, output(y, false), m_stream);
            CUDA_CHECK_LAUNCH("layerNorm");
        }
        finish();
    }

    void add(const Tensor& a, const Tensor& b, Tensor& out) override { binary(cuda::Elementwise::Add, a, b, out); }
    void mul(const Tensor& a, const Tensor& b, Tensor& out) override { binary(cuda::Elementwise::Mul, a, b, out); }
    void silu(const Tensor& x, Tensor& y) override { unary(cuda::Elementwise::Silu, x, y); }
    void gelu(const Tensor& x, Tensor& y, GeluKind kind) override
    {
        unary(kind == GeluKind::Erf ? cuda::Elementwise::GeluErf : cuda::Elementwise::GeluTanh, x, y);
    }

    void causalConv1d(const Tensor& x, const Tensor& w, const Tensor* b, Tensor& history, Tensor& y) override
    {
        const int64_t T = x.dim(0), E = x.dim(1), K = w.dim(1);
        checkShape(w.dim(0) == E && history.dim(0) == E && history.dim(1) == K - 1, "causalConv1d",
            shapeToString(w.shape()));
        OpScope scope(*this);
        const float* xd = T > 0 ? input(x) : nullptr;
        float* hist = output(history, true);
        float* next = K > 1 ? static_cast<float*>(scratch(size_t(E * (K - 1)) * sizeof(float))) : nullptr;
        cuda::launchCausalConv1d(xd, weightF32(w), b ? weightF32(*b) : nullptr, hist, T, E, K,
            T > 0 ? output(y, false) : nullptr, next, m_stream);
        CUDA_CHECK_LAUNCH("causalConv1d");
        if (K > 1)
            CUDA_CHECK(cudaMemcpyAsync(hist, next, size_t(E * (K - 1)) * sizeof(float), cudaMemcpyDeviceToDevice, m_stream));
        finish();
    }

    void causalConv1dStep(const Tensor& x, const Tensor& w, const Tensor* b, Tensor& history, Tensor& y) override
    {
        const int64_t E = w.dim(0), K = w.dim(1);
        checkShape(history.dim(0) == E && history.dim(1) == K - 1 && x.numel() == E, "causalConv1dStep",
            shapeToString(history.shape()));
        OpScope scope(*this);
        const float* xd = input(x);
        float* hist = output(history, true);
        cuda::launchCausalConv1dStep(xd, weightF32(w), b ? weightF32(*b) : nullptr, hist, E, K, output(y, false),
            m_stream);
        CUDA_CHECK_LAUNCH("causalConv1dStep");
        finish();
    }

    void selectiveScan(const ScanArgs& a) override
    {
        const int64_t T = a.x->dim(0), E = a.x->dim(1), N = a.A->dim(1);
        checkShape(a.B->dim(0) == T && a.B->dim(1) == N && a.C->dim(1) == N && a.state->dim(0) == E
                && a.state->dim(1) == N,
            "selectiveScan", shapeToString(a.B->shape()));
        OpScope scope(*this);
        cuda::ScanPointers p = scanPointers(a, T, E, N);
        if (T > 0) {
            const int64_t chunk = cuda::scanChunkLength(T, E, m_sms);
            const size_t floats = cuda::scanScratchFloats(T, E, N, chunk);
            float* s = floats ? static_cast<float*>(scratch(floats * sizeof(float))) : nullptr;
            cuda::launchSelectiveScan(p, chunk, s, m_stream);
            CUDA_CHECK_LAUNCH("selectiveScan");
        }
        finish();
    }

    void selectiveScanStep(const ScanArgs& a) override
    {
        const int64_t E = a.x->numel(), N = a.A->dim(1);
        checkShape(a.B->numel() == N && a.C->numel() == N && a.state->numel() == E * N, "selectiveScanStep",
            shapeToString(a.x->shape()));
        OpScope scope(*this);
        cuda::ScanPointers p = scanPointers(a, 1, E, N);
        cuda::launchSelectiveScanStep(p, m_stream);
        CUDA_CHECK_LAUNCH("selectiveScanStep");
        finish();
    }

    void rotary(Tensor& x, int64_t position, int64_t rotaryDims, const std::vector<float>& invFreq,
        float mscale) override
    {
        const int64_t T = x.dim(0), H = x.dim(1), Dh = x.dim(2), half = rotaryDims / 2;
        checkShape(rotaryDims <= Dh && int64_t(invFreq.size()) == half, "rotary", shapeToString(x.shape()));
        OpScope scope(*this);
        if (x.numel() > 0 && half > 0) {
            auto* freq = static_cast<float*>(scratch(invFreq.size() * sizeof(float)));
            CUDA_CHECK(cudaMemcpyAsync(freq, invFreq.data(), invFreq.size() * sizeof(float), cudaMemcpyHostToDevice,
                m_stream));
            cuda::launchRotary(output(x, true), T, H, Dh, position, rotaryDims, freq, mscale, m_stream);
            CUDA_CHECK_LAUNCH("rotary");
        }
        finish();
    }

    void attention(const AttentionArgs& a) override
    {
        const int64_t T = a.q->dim(0), H = a.q->dim(1), Dh = a.q->dim(2);
        const int64_t S = a.k->dim(0), Hkv = a.k->dim(1);
        checkShape(S == a.pastLength + T && H % Hkv == 0 && a.k->dim(2) == Dh, "attention",
            shapeToString(a.k->shape()));
        if (Dh > cuda::kAttentionMaxHeadDim)
            throw makeError(ErrorCode::Unsupported, "the CUDA attention kernel takes head dims up to {}, not {}",
                cuda::kAttentionMaxHeadDim, Dh);
        OpScope scope(*this);
        if (T > 0) {
            cuda::AttentionPointers p;
            p.q = input(*a.q);
            p.k = input(*a.k);
            p.v = input(*a.v);
            p.out = output(*a.out, false);
            p.weightsOut = a.weightsOut ? output(*a.weightsOut, false) : nullptr;
            p.T = T;
            p.S = S;
            p.H = H;
            p.Hkv = Hkv;
            p.Dh = Dh;
            p.pastLength = a.pastLength;
            p.slidingWindow = a.slidingWindow;
            p.scale = a.scale;
            const int splits = cuda::attentionSplits(p, m_sms);
            auto* s = static_cast<float*>(scratch(cuda::attentionScratchFloats(p, splits) * sizeof(float)));
            cuda::launchAttention(p, splits, s, m_stream);
            CUDA_CHECK_LAUNCH("attention");
        }
        finish();
    }

    void routerTopK(const RouterArgs& a) override
    {
        const int64_t T = a.logits->dim(0), X = a.logits->dim(1);
        checkShape(a.k >= 1 && a.k <= X, "routerTopK", "k out of range");
        if (a.k > cuda::kRouterMaxTopK)
            throw makeError(ErrorCode::Unsupported, "the CUDA router takes top-k up to {}, not {}",
                cuda::kRouterMaxTopK, a.k);
        OpScope scope(*this);
        if (T > 0) {
            const float* l = input(*a.logits);
            float* probs = a.probs ? output(*a.probs, false)
                                   : static_cast<float*>(scratch(size_t(T * X) * sizeof(float)));
            int32_t* ids = a.topkIds ? static_cast<int32_t*>(static_cast<void*>(output(*a.topkIds, false))) : nullptr;
            float* wts = a.topkWeights ? output(*a.topkWeights, false) : nullptr;
            cuda::launchRouterTopK(l, T, X, a.k, a.renormalize, probs, ids, wts, m_stream);
            CUDA_CHECK_LAUNCH("routerTopK");
        }
        finish();
    }

    void expertFfn(const Tensor& x, const Tensor& topkIds, const Tensor& topkWeights,
        const std::vector<ExpertWeights>& experts, Tensor& out) override
    {
        const int64_t T = x.dim(0), D = x.dim(1), k = topkIds.dim(1);
        checkShape(topkIds.dim(0) == T && topkWeights.numel() == T * k && out.numel() == T * D, "expertFfn",
            shapeToString(topkIds.shape()));
        // group the (token, slot) pairs by expert, on the host: the ids are host-visible
        std::vector<std::vector<int32_t>> tokens(experts.size());
        std::vector<std::vector<float>> gains(experts.size());
        for (int64_t t = 0; t < T; ++t)
            for (int64_t j = 0; j < k; ++j) {
                const int32_t e = topkIds.i32()[t * k + j];
                if (e < 0 || size_t(e) >= experts.size())
                    throw makeError(ErrorCode::InvalidArgument, "expert id {} outside 0..{}", e, experts.size() - 1);
                tokens[size_t(e)].push_back(int32_t(t));
                gains[size_t(e)].push_back(topkWeights.f32()[t * k + j]);
            }
        OpScope scope(*this);
        float* od = output(out, false);
        CUDA_CHECK(cudaMemsetAsync(od, 0, out.nbytes(), m_stream));
        if (T > 0) {
            const float* xd = input(x);
            size_t most = 0, total = 0;
            int64_t I = 0;
            for (size_t e = 0; e < experts.size(); ++e) {
                most = std::max(most, tokens[e].size());
                total += tokens[e].size();
                if (!tokens[e].empty())
                    I = std::max(I, experts[e].gate->dim(0));
            }
            // one upload of every expert's token list and gains, in expert order
            std::vector<int32_t> allTokens;
            std::vector<float> allGains;
            allTokens.reserve(total);
            allGains.reserve(total);
            for (size_t e = 0; e < experts.size(); ++e) {
                allTokens.insert(allTokens.end(), tokens[e].begin(), tokens[e].end());
                allGains.insert(allGains.end(), gains[e].begin(), gains[e].end());
            }
            auto* tokDev = static_cast<int32_t*>(scratch(total * sizeof(int32_t)));
            auto* gainDev = static_cast<float*>(scratch(total * sizeof(float)));
            CUDA_CHECK(cudaMemcpyAsync(tokDev, allTokens.data(), total * sizeof(int32_t), cudaMemcpyHostToDevice, m_stream));
            CUDA_CHECK(cudaMemcpyAsync(gainDev, allGains.data(), total * sizeof(float), cudaMemcpyHostToDevice, m_stream));
            auto* rows = static_cast<float*>(scratch(most * size_t(D) * sizeof(float)));
            auto* g = static_cast<float*>(scratch(most * size_t(I) * sizeof(float)));
            auto* u = static_cast<float*>(scratch(most * size_t(I) * sizeof(float)));
            auto* o = static_cast<float*>(scratch(most * size_t(D) * sizeof(float)));
            size_t offset = 0;
            for (size_t e = 0; e < experts.size(); ++e) {
                const int64_t n = int64_t(tokens[e].size());
                if (n == 0)
                    continue;
                const ExpertWeights& ew = experts[e];
                const int64_t Ie = ew.gate->dim(0);
                checkShape(ew.gate->dim(1) == D && ew.up->dim(0) == Ie && ew.down->dim(0) == D && ew.down->dim(1) == Ie,
                    "expertFfn", shapeToString(ew.down->shape()));
                cuda::launchGatherRows(xd, tokDev + offset, n, D, rows, m_stream);
                gemm(rows, *ew.gate, g, n, D, Ie);
                gemm(rows, *ew.up, u, n, D, Ie);
                cuda::launchSiluMul(g, u, n * Ie, m_stream);
                gemm(g, *ew.down, o, n, Ie, D);
                cuda::launchScatterAddRows(o, tokDev + offset, gainDev + offset, n, D, od, m_stream);
                CUDA_CHECK_LAUNCH("expertFfn");
                offset += size_t(n);
            }
        }
        finish();
    }

    int32_t sample(const Tensor& logits, const SamplingParams& params, uint64_t& rngState) override
    {
        // logits are host-visible after the op that wrote them; sampling is a few µs of host work
        return sampleFromLogits(logits.f32(), logits.numel(), params.temperature, params.topK, params.topP, rngState);
    }

private:
    // One op's bookkeeping: the lock, and scratch and copy-backs that start empty.
    struct OpScope {
        explicit OpScope(CudaBackend& b)
            : lock(b.m_mutex)
        {
            b.m_scratchUsed = 0;
            b.m_copyBack.clear();
        }
        std::lock_guard<std::mutex> lock;
    };

    struct CopyBack {
        void* host;
        const void* device;
        size_t bytes;
    };

    bool deviceVisible(const Tensor& t) const { return m_pool->contains(t.raw(), t.nbytes()); }

    // Scratch slots: the n-th request of an op gets the n-th slot, grown as needed.
    void* scratch(size_t bytes)
    {
        if (m_scratchUsed == m_scratch.size())
            m_scratch.emplace_back();
        DeviceBuffer& slot = m_scratch[m_scratchUsed++];
        if (slot.bytes() < bytes) {
            slot = DeviceBuffer(); // free first
            slot = DeviceBuffer(bytes + bytes / 4, &m_usage);
        }
        return slot.get();
    }

    const float* input(const Tensor& t)
    {
        if (deviceVisible(t) || t.numel() == 0)
            return static_cast<const float*>(t.raw());
        void* d = scratch(t.nbytes());
        CUDA_CHECK(cudaMemcpyAsync(d, t.raw(), t.nbytes(), cudaMemcpyHostToDevice, m_stream));
        return static_cast<const float*>(d);
    }

    float* output(Tensor& t, bool readFirst)
    {
        if (deviceVisible(t) || t.numel() == 0)
            return static_cast<float*>(t.raw());
        void* d = scratch(t.nbytes());
        if (readFirst)
            CUDA_CHECK(cudaMemcpyAsync(d, t.raw(), t.nbytes(), cudaMemcpyHostToDevice, m_stream));
        m_copyBack.push_back({ t.raw(), d, t.nbytes() });
        return static_cast<float*>(d);
    }

    // Copies outputs back to host tensors, then waits: the op's results are host-visible.
    void finish()
    {
        for (const CopyBack& c : m_copyBack)
            CUDA_CHECK(cudaMemcpyAsync(c.host, c.device, c.bytes, cudaMemcpyDeviceToHost, m_stream));
        m_copyBack.clear();
        CUDA_CHECK(cudaStreamSynchronize(m_stream));
    }

    // The device copy of a weight in dtype `want` (uploaded, and narrowed, on first use).
    const void* weight(const Tensor& w, DType want)
    {
        if (deviceVisible(w) && w.dtype() == want)
            return w.raw();
        const WeightKey key { w.raw(), w.nbytes(), int(w.dtype()) * 8 + int(want) };
        if (auto it = m_weights.find(key); it != m_weights.end())
            return it->second.buffer.get();
        WeightEntry entry;
        entry.keep = w;
        const size_t n = size_t(w.numel());
        entry.buffer = DeviceBuffer(n * dtypeSize(want), &m_usage);
        if (w.dtype() == want) {
            CUDA_CHECK(cudaMemcpyAsync(entry.buffer.get(), w.raw(), w.nbytes(), cudaMemcpyHostToDevice, m_stream));
        } else if (w.dtype() == DType::F32 && (want == DType::F16 || want == DType::BF16)) {
            DeviceBuffer wide(w.nbytes(), &m_usage);
            CUDA_CHECK(cudaMemcpyAsync(wide.get(), w.raw(), w.nbytes(), cudaMemcpyHostToDevice, m_stream));
            cuda::launchF32ToHalf(static_cast<const float*>(wide.get()), entry.buffer.get(), int64_t(n),
                dtypeCode(want), m_stream);
            CUDA_CHECK_LAUNCH("weight upload");
            CUDA_CHECK(cudaStreamSynchronize(m_stream)); // before `wide` is freed
        } else if (want == DType::F32) {
            const Tensor wide = w.toF32();
            CUDA_CHECK(cudaMemcpyAsync(entry.buffer.get(), wide.raw(), wide.nbytes(), cudaMemcpyHostToDevice, m_stream));
            CUDA_CHECK(cudaStreamSynchronize(m_stream)); // before `wide` goes
        } else {
            throw makeError(ErrorCode::Unsupported, "cuda: cannot convert a {} weight to {}", dtypeName(w.dtype()),
                dtypeName(want));
        }
        const void* p = entry.buffer.get();
        m_weights.emplace(key, std::move(entry));
        return p;
    }
    const float* weightF32(const Tensor& w) { return static_cast<const float*>(weight(w, DType::F32)); }

    // Y (T, out) = X (T, in) · Wᵀ, W (out, in) row-major, F32 accumulation. cuBLAS is
    // column-major: Yᵀ (out × T) = op(W) · Xᵀ with W seen as (in × out), transposed.
    void gemm(const float* X, const Tensor& w, float* Y, int64_t T, int64_t in, int64_t out)
    {
        if (T == 0 || out == 0)
            return;
        if (in == 0) {
            CUDA_CHECK(cudaMemsetAsync(Y, 0, size_t(T * out) * sizeof(float), m_stream));
            return;
        }
        const DType want = w.dtype() == DType::F32 ? m_gemmDtype : w.dtype();
        dtypeCode(want); // F32, F16 or BF16, else a clear error
        const void* W = weight(w, want);
        const void* B = X;
        if (want != DType::F32) {
            const size_t bytes = size_t(T * in) * 2;
            if (m_halfScratch.bytes() < bytes) {
                m_halfScratch = DeviceBuffer();
                m_halfScratch = DeviceBuffer(bytes, &m_usage);
            }
            cuda::launchF32ToHalf(X, m_halfScratch.get(), T * in, dtypeCode(want), m_stream);
            CUDA_CHECK_LAUNCH("gemm input");
            B = m_halfScratch.get();
        }
        const float alpha = 1.f, beta = 0.f;
        CUBLAS_CHECK(cublasGemmEx(m_blas, CUBLAS_OP_T, CUBLAS_OP_N, int(out), int(T), int(in), &alpha, W,
            cudaType(want), int(in), B, cudaType(want), int(in), &beta, Y, CUDA_R_32F, int(out), CUBLAS_COMPUTE_32F,
            CUBLAS_GEMM_DEFAULT));
    }

    void binary(cuda::Elementwise kind, const Tensor& a, const Tensor& b, Tensor& out)
    {
        checkShape(a.numel() == b.numel() && a.numel() == out.numel(), "elementwise", shapeToString(a.shape()));
        OpScope scope(*this);
        if (a.numel() > 0) {
            const float* ad = input(a);
            const float* bd = input(b);
            cuda::launchElementwise(kind, ad, bd, output(out, false), a.numel(), m_stream);
            CUDA_CHECK_LAUNCH("elementwise");
        }
        finish();
    }

    void unary(cuda::Elementwise kind, const Tensor& x, Tensor& y)
    {
        checkShape(x.numel() == y.numel(), "elementwise", shapeToString(x.shape()));
        OpScope scope(*this);
        if (x.numel() > 0) {
            const float* xd = input(x);
            cuda::launchElementwise(kind, xd, nullptr, output(y, false), x.numel(), m_stream);
            CUDA_CHECK_LAUNCH("elementwise");
        }
        finish();
    }

    cuda::ScanPointers scanPointers(const ScanArgs& a, int64_t T, int64_t E, int64_t N)
    {
        cuda::ScanPointers p;
        p.T = T;
        p.E = E;
        p.N = N;
        if (T == 0 || E == 0)
            return p;
        p.x = input(*a.x);
        p.dt = input(*a.dt);
        p.dtBias = a.dtBias ? weightF32(*a.dtBias) : nullptr;
        p.A = weightF32(*a.A);
        p.B = input(*a.B);
        p.C = input(*a.C);
        p.D = a.D ? weightF32(*a.D) : nullptr;
        p.z = a.z ? input(*a.z) : nullptr;
        p.state = output(*a.state, true);
        p.y = output(*a.y, false);
        p.deltaOut = a.deltaOut ? output(*a.deltaOut, false) : nullptr;
        p.statesOut = a.statesOut ? output(*a.statesOut, false) : nullptr;
        p.stateNormOut = a.stateNormOut ? output(*a.stateNormOut, false) : nullptr;
        p.yPreGateOut = a.yPreGateOut ? output(*a.yPreGateOut, false) : nullptr;
        p.gateOut = a.z && a.gateOut ? output(*a.gateOut, false) : nullptr;
        return p;
    }

    struct WeightKey {
        const void* ptr;
        size_t bytes;
        int dtypes;
        bool operator==(const WeightKey& o) const { return ptr == o.ptr && bytes == o.bytes && dtypes == o.dtypes; }
    };
    struct WeightKeyHash {
        size_t operator()(const WeightKey& k) const
        {
            return std::hash<const void*>()(k.ptr) ^ (k.bytes * 1315423911u) ^ size_t(k.dtypes);
        }
    };
    struct WeightEntry {
        Tensor keep; // keeps the host storage, so its address stays this weight's
        DeviceBuffer buffer;
    };

    int m_device = 0;
    std::string m_name;
    int m_sms = 1, m_cc = 0;
    DType m_gemmDtype = DType::F32;
    cudaStream_t m_stream = nullptr;
    cublasHandle_t m_blas = nullptr;
    cudaEvent_t m_timerStart = nullptr, m_timerStop = nullptr;
    std::mutex m_mutex;
    Usage m_usage;
    std::shared_ptr<ManagedPool> m_pool;
    std::unordered_map<WeightKey, WeightEntry, WeightKeyHash> m_weights;
    std::vector<DeviceBuffer> m_scratch;
    size_t m_scratchUsed = 0;
    DeviceBuffer m_halfScratch;
    std::vector<CopyBack> m_copyBack;
};

} // namespace

std::unique_ptr<Backend> makeCudaBackend(int device) { return std::make_unique<CudaBackend>(device); }

} // namespace archlens::cuda
