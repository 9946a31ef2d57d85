// Pooled memory for the FrameStore: fixed-size blocks carved out of large anonymous mappings.
// A run at the memory cap drops and refills frames for hours. With plain malloc, the store's
// long-lived objects (frames, states, their bookkeeping nodes) land in the holes the model's
// short-lived per-token tensors leave, and the heap fragments: in the 100k-token test about 10%
// of the cap stayed resident as free heap. Here every block size has its own slabs, a dropped
// block is reused by the next block of its size, slabs fill lowest address first and an emptied
// slab is unmapped (one spare kept), so resident memory follows what the store holds.
// Thread-safe: frames may be released on a consumer thread after the store dropped them.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <span>
#include <vector>

namespace archlens {

// Blocks of one size (a multiple of 64 bytes, 64-byte aligned).
class BlockPool {
public:
    explicit BlockPool(size_t blockBytes);
    ~BlockPool();
    BlockPool(const BlockPool&) = delete;
    BlockPool& operator=(const BlockPool&) = delete;

    void* acquire(); // Error(Backend) when the system refuses memory
    void release(void* block);
    size_t blockBytes() const { return m_blockBytes; }
    uint64_t mappedBytes() const;
    // Free blocks beyond one slab's worth: memory the pool keeps resident but nobody uses
    // (one slab of slack is the allocator's granularity and is not counted).
    uint64_t excessFreeBytes() const;
    size_t slabBytes() const { return m_slabBytes; }

private:
    struct Slab {
        std::vector<uint32_t> freeList;
        uint32_t capacity = 0;
    };
    const size_t m_blockBytes;
    size_t m_slabBytes = 0;
    uint32_t m_perSlab = 0;
    mutable std::mutex m_mutex;
    std::map<char*, Slab> m_slabs;
    std::set<char*> m_withFree;
    uint64_t m_live = 0;
};

// One BlockPool per size class.
class PoolSet {
public:
    static size_t blockBytes(size_t bytes) { return (std::max<size_t>(bytes, 1) + 63) / 64 * 64; }
    void* allocate(size_t bytes);
    void deallocate(void* p, size_t bytes);
    uint64_t liveBytes() const { return m_live.load(); } // blocks handed out
    uint64_t mappedBytes() const;                        // slabs mapped (live + free blocks)
    uint64_t excessFreeBytes() const;                    // Σ BlockPool::excessFreeBytes
    uint64_t granularityBytes() const;                   // Σ slab size: the slack not counted above

private:
    BlockPool& poolFor(size_t bytes);
    mutable std::mutex m_mutex;
    std::map<size_t, std::unique_ptr<BlockPool>> m_pools;
    std::atomic<uint64_t> m_live{0};
};

// std allocator over a PoolSet (std::allocate_shared, std::map nodes).
template <class T>
struct PoolAllocator {
    using value_type = T;
    std::shared_ptr<PoolSet> set;
    explicit PoolAllocator(std::shared_ptr<PoolSet> s)
        : set(std::move(s))
    {
    }
    template <class U>
    PoolAllocator(const PoolAllocator<U>& o) // NOLINT(google-explicit-constructor): rebinding
        : set(o.set)
    {
    }
    T* allocate(size_t n) { return static_cast<T*>(set->allocate(n * sizeof(T))); }
    void deallocate(T* p, size_t n) { set->deallocate(p, n * sizeof(T)); }
    template <class U>
    bool operator==(const PoolAllocator<U>& o) const
    {
        return set == o.set;
    }
};

// One pooled block of `bytes`; returned to its pool when destroyed. Move-only.
class PooledBlock {
public:
    PooledBlock() = default;
    PooledBlock(std::shared_ptr<PoolSet> set, size_t bytes);
    PooledBlock(PooledBlock&& o) noexcept;
    PooledBlock& operator=(PooledBlock&& o) noexcept;
    PooledBlock(const PooledBlock&) = delete;
    PooledBlock& operator=(const PooledBlock&) = delete;
    ~PooledBlock();

    std::byte* data() const { return m_ptr; }
    size_t bytes() const { return m_bytes; }
    size_t blockBytes() const { return m_ptr ? PoolSet::blockBytes(m_bytes) : 0; }

private:
    std::shared_ptr<PoolSet> m_set;
    std::byte* m_ptr = nullptr;
    size_t m_bytes = 0;
};

} // namespace archlens
