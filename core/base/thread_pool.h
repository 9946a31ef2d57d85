// A small persistent thread pool for the CPU backends: `threads - 1` workers plus the
// calling thread, woken per call (a short spin, then a futex wait through std::atomic::wait),
// with static partitioning, so a call allocates nothing and costs a few microseconds.
// A call made while the pool is busy (from another thread, or nested inside a task) runs
// serially on its caller instead of waiting, so sharing one backend between sessions
// cannot deadlock. The first exception thrown by a part is rethrown to the caller.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

namespace archlens {

class ThreadPool {
public:
    explicit ThreadPool(int threads); // total, including the caller; at least 1
    ~ThreadPool();
    ThreadPool(const ThreadPool&) = delete;
    ThreadPool& operator=(const ThreadPool&) = delete;

    int threads() const { return int(m_workers.size()) + 1; }

    // Calls fn(part) for every part in [0, parts), parts ≤ threads(); returns when all are done.
    template<typename F> void run(int parts, F&& fn)
    {
        runErased(
            parts, [](void* ctx, int part) { (*static_cast<F*>(ctx))(part); }, &fn);
    }

    // Splits [0, n) into at most threads() contiguous ranges of at least `grain` items whose
    // boundaries are multiples of `align`, and calls fn(begin, end) for each.
    template<typename F> void parallelFor(int64_t n, int64_t grain, F&& fn, int64_t align = 1)
    {
        if (n <= 0)
            return;
        const int parts = partsFor(n, grain, align);
        if (parts <= 1) {
            fn(int64_t(0), n);
            return;
        }
        const int64_t units = (n + align - 1) / align;
        run(parts, [&](int part) {
            const int64_t b = std::min(n, units * part / parts * align);
            const int64_t e = std::min(n, units * (part + 1) / parts * align);
            if (b < e)
                fn(b, e);
        });
    }

    int partsFor(int64_t n, int64_t grain, int64_t align) const;

private:
    void runErased(int parts, void (*call)(void*, int), void* ctx);
    void workerLoop(int index);

    std::vector<std::thread> m_workers;
    std::atomic<bool> m_busy { false };
    std::atomic<uint32_t> m_epoch { 0 };
    std::atomic<int> m_remaining { 0 };
    std::atomic<bool> m_stop { false };
    // the current job, published by the m_epoch increment
    void (*m_call)(void*, int) = nullptr;
    void* m_ctx = nullptr;
    int m_parts = 0;
    std::mutex m_errorMutex;
    std::exception_ptr m_error;
};

} // namespace archlens
