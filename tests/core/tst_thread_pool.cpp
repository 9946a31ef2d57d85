// The CPU backends' thread pool: every index once, uneven and aligned splits, nested and
// concurrent calls (which run serially instead of deadlocking), exceptions.
#include <gtest/gtest.h>

#include <atomic>
#include <stdexcept>
#include <thread>
#include <vector>

#include "base/thread_pool.h"

using archlens::ThreadPool;

TEST(ThreadPool, CoversEveryIndexOnce)
{
    for (int threads : { 1, 2, 3, 8 }) {
        ThreadPool pool(threads);
        EXPECT_EQ(pool.threads(), threads);
        for (int64_t n : { 0, 1, 2, 7, 16, 17, 1000 })
            for (int64_t grain : { 1, 5, 100 })
                for (int64_t align : { 1, 16 }) {
                    std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
                    pool.parallelFor(
                        n, grain,
                        [&](int64_t b, int64_t e) {
                            EXPECT_TRUE(b % align == 0) << b;
                            for (int64_t i = b; i < e; ++i)
                                hits[size_t(i)]++;
                        },
                        align);
                    for (int64_t i = 0; i < n; ++i)
                        ASSERT_EQ(hits[size_t(i)].load(), 1) << "n=" << n << " i=" << i << " threads=" << threads;
                }
    }
}

TEST(ThreadPool, NestedAndConcurrentCallsRunSerially)
{
    ThreadPool pool(3);
    std::atomic<int64_t> sum { 0 };
    pool.run(3, [&](int) { pool.parallelFor(100, 1, [&](int64_t b, int64_t e) { sum += e - b; }); });
    EXPECT_EQ(sum.load(), 300);
    sum = 0;
    std::vector<std::thread> callers;
    for (int c = 0; c < 4; ++c)
        callers.emplace_back([&] {
            for (int r = 0; r < 200; ++r)
                pool.parallelFor(64, 1, [&](int64_t b, int64_t e) { sum += e - b; });
        });
    for (auto& t : callers)
        t.join();
    EXPECT_EQ(sum.load(), 4 * 200 * 64);
}

TEST(ThreadPool, ExceptionsReachTheCaller)
{
    ThreadPool pool(3);
    EXPECT_THROW(pool.run(3,
                     [](int part) {
                         if (part == 2)
                             throw std::runtime_error("part 2");
                     }),
        std::runtime_error);
    int ran = 0; // still usable afterwards
    pool.run(1, [&](int) { ++ran; });
    EXPECT_EQ(ran, 1);
}
