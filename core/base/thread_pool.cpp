#include "base/thread_pool.h"

#include <algorithm>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define ARCHLENS_CPU_RELAX() _mm_pause()
#else
#define ARCHLENS_CPU_RELAX() ((void)0)
#endif

namespace archlens {

namespace {
// About 10-50 µs of spinning before sleeping: long enough to catch the next op of a layer,
// short enough not to steal a shared machine's cores between tokens.
constexpr int kSpins = 2000;
} // namespace

ThreadPool::ThreadPool(int threads)
{
    const int workers = std::max(1, threads) - 1;
    m_workers.reserve(size_t(workers));
    for (int i = 0; i < workers; ++i)
        m_workers.emplace_back([this, i] { workerLoop(i + 1); });
}

ThreadPool::~ThreadPool()
{
    m_stop.store(true, std::memory_order_release);
    m_epoch.fetch_add(1, std::memory_order_release);
    m_epoch.notify_all();
    for (auto& t : m_workers)
        t.join();
}

int ThreadPool::partsFor(int64_t n, int64_t grain, int64_t align) const
{
    const int64_t units = (n + align - 1) / align;
    const int64_t byGrain = std::max<int64_t>(1, n / std::max<int64_t>(1, grain));
    return int(std::clamp<int64_t>(std::min(units, byGrain), 1, threads()));
}

void ThreadPool::runErased(int parts, void (*call)(void*, int), void* ctx)
{
    bool expected = false;
    if (parts <= 1 || m_workers.empty() || !m_busy.compare_exchange_strong(expected, true, std::memory_order_acquire)) {
        for (int p = 0; p < parts; ++p)
            call(ctx, p);
        return;
    }
    m_call = call;
    m_ctx = ctx;
    m_parts = std::min(parts, threads());
    m_error = nullptr;
    m_remaining.store(int(m_workers.size()), std::memory_order_relaxed);
    m_epoch.fetch_add(1, std::memory_order_release);
    m_epoch.notify_all();
    try {
        call(ctx, 0);
    } catch (...) {
        std::lock_guard lock(m_errorMutex);
        if (!m_error)
            m_error = std::current_exception();
    }
    int spins = 0;
    for (int r; (r = m_remaining.load(std::memory_order_acquire)) != 0;) {
        if (++spins < kSpins)
            ARCHLENS_CPU_RELAX();
        else
            m_remaining.wait(r, std::memory_order_acquire);
    }
    std::exception_ptr error = m_error;
    m_busy.store(false, std::memory_order_release);
    if (error)
        std::rethrow_exception(error);
}

void ThreadPool::workerLoop(int index)
{
    uint32_t seen = 0;
    for (;;) {
        uint32_t e;
        int spins = 0;
        while ((e = m_epoch.load(std::memory_order_acquire)) == seen) {
            if (++spins < kSpins)
                ARCHLENS_CPU_RELAX();
            else
                m_epoch.wait(seen, std::memory_order_acquire);
        }
        seen = e;
        if (m_stop.load(std::memory_order_acquire))
            return;
        if (index < m_parts) {
            try {
                m_call(m_ctx, index);
            } catch (...) {
                std::lock_guard lock(m_errorMutex);
                if (!m_error)
                    m_error = std::current_exception();
            }
        }
        if (m_remaining.fetch_sub(1, std::memory_order_acq_rel) == 1)
            m_remaining.notify_one();
    }
}

} // namespace archlens
