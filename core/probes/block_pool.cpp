#include "probes/block_pool.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <utility>

#include "base/error.h"

namespace archlens {

namespace {
constexpr size_t kSlabTargetBytes = size_t(2) << 20;
constexpr size_t kSlabMinBytes = size_t(64) << 10;
} // namespace

BlockPool::BlockPool(size_t blockBytes)
    : m_blockBytes(PoolSet::blockBytes(blockBytes))
{
    const auto page = size_t(sysconf(_SC_PAGESIZE));
    size_t slab = std::clamp(m_blockBytes * 128, kSlabMinBytes, kSlabTargetBytes);
    slab = std::max(slab, m_blockBytes);
    m_slabBytes = (slab + page - 1) / page * page;
    m_perSlab = uint32_t(m_slabBytes / m_blockBytes);
}

BlockPool::~BlockPool()
{
    for (auto& [base, slab] : m_slabs)
        munmap(base, m_slabBytes);
}

void* BlockPool::acquire()
{
    std::lock_guard lock(m_mutex);
    if (m_withFree.empty()) {
        void* p = mmap(nullptr, m_slabBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED)
            throw makeError(ErrorCode::Backend, "out of host memory mapping {} bytes for probe frames", m_slabBytes);
        Slab slab;
        slab.capacity = m_perSlab;
        for (uint32_t i = m_perSlab; i > 0; --i)
            slab.freeList.push_back(i - 1); // pop_back hands out index 0 first
        m_slabs.emplace(static_cast<char*>(p), std::move(slab));
        m_withFree.insert(static_cast<char*>(p));
    }
    char* base = *m_withFree.begin(); // lowest address first keeps the live blocks packed
    Slab& slab = m_slabs.at(base);
    const uint32_t idx = slab.freeList.back();
    slab.freeList.pop_back();
    if (slab.freeList.empty())
        m_withFree.erase(base);
    ++m_live;
    return base + size_t(idx) * m_blockBytes;
}

void BlockPool::release(void* block)
{
    if (!block)
        return;
    std::lock_guard lock(m_mutex);
    char* p = static_cast<char*>(block);
    auto it = m_slabs.upper_bound(p);
    ARCHLENS_ASSERT(it != m_slabs.begin(), "block not from this pool");
    --it;
    char* base = it->first;
    Slab& slab = it->second;
    ARCHLENS_ASSERT(p < base + m_slabBytes, "block not from this pool");
    slab.freeList.push_back(uint32_t(size_t(p - base) / m_blockBytes));
    m_withFree.insert(base);
    --m_live;
    // an empty slab goes back to the system unless it is the only one with room
    if (slab.freeList.size() == slab.capacity && m_withFree.size() > 1) {
        munmap(base, m_slabBytes);
        m_withFree.erase(base);
        m_slabs.erase(it);
    }
}

uint64_t BlockPool::mappedBytes() const
{
    std::lock_guard lock(m_mutex);
    return uint64_t(m_slabs.size()) * m_slabBytes;
}

uint64_t BlockPool::excessFreeBytes() const
{
    std::lock_guard lock(m_mutex);
    const uint64_t free = uint64_t(m_slabs.size()) * m_slabBytes - m_live * m_blockBytes;
    return free > m_slabBytes ? free - m_slabBytes : 0;
}

BlockPool& PoolSet::poolFor(size_t bytes)
{
    const size_t size = blockBytes(bytes);
    std::lock_guard lock(m_mutex);
    auto& pool = m_pools[size];
    if (!pool)
        pool = std::make_unique<BlockPool>(size);
    return *pool;
}

void* PoolSet::allocate(size_t bytes)
{
    void* p = poolFor(bytes).acquire();
    m_live += blockBytes(bytes);
    return p;
}

void PoolSet::deallocate(void* p, size_t bytes)
{
    if (!p)
        return;
    poolFor(bytes).release(p);
    m_live -= blockBytes(bytes);
}

uint64_t PoolSet::mappedBytes() const
{
    std::lock_guard lock(m_mutex);
    uint64_t total = 0;
    for (const auto& [size, pool] : m_pools)
        total += pool->mappedBytes();
    return total;
}

uint64_t PoolSet::excessFreeBytes() const
{
    std::lock_guard lock(m_mutex);
    uint64_t total = 0;
    for (const auto& [size, pool] : m_pools)
        total += pool->excessFreeBytes();
    return total;
}

uint64_t PoolSet::granularityBytes() const
{
    std::lock_guard lock(m_mutex);
    uint64_t total = 0;
    for (const auto& [size, pool] : m_pools)
        total += pool->slabBytes();
    return total;
}

PooledBlock::PooledBlock(std::shared_ptr<PoolSet> set, size_t bytes)
    : m_set(std::move(set))
    , m_bytes(bytes)
{
    m_ptr = static_cast<std::byte*>(m_set->allocate(bytes));
}

PooledBlock::PooledBlock(PooledBlock&& o) noexcept
    : m_set(std::move(o.m_set))
    , m_ptr(std::exchange(o.m_ptr, nullptr))
    , m_bytes(std::exchange(o.m_bytes, 0))
{
}

PooledBlock& PooledBlock::operator=(PooledBlock&& o) noexcept
{
    if (this != &o) {
        if (m_ptr)
            m_set->deallocate(m_ptr, m_bytes);
        m_set = std::move(o.m_set);
        m_ptr = std::exchange(o.m_ptr, nullptr);
        m_bytes = std::exchange(o.m_bytes, 0);
    }
    return *this;
}

PooledBlock::~PooledBlock()
{
    if (m_ptr)
        m_set->deallocate(m_ptr, m_bytes);
}

} // namespace archlens
