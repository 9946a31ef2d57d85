// ProbeSeries: a token-major series of float rows (one row of fixed width per token) that
// points into the FrameStore's immutable frames instead of copying them: a row is a pointer
// into a TokenFrame (light probes) or a StateFrame (h), and the series holds the frame's
// shared pointer so the memory stays valid while it is shown. Owners are kept in chunks of
// kChunkRows that are shared copy-on-write, so a snapshot (SeriesView) for the render worker
// costs one pointer per row and one per chunk: no lock, no copy of the data. Rows can be
// missing (never computed, or dropped by the store's memory cap: the TraceModel releases them
// when the store does) and refilled later (recomputed from a checkpoint).
#pragma once

#include <array>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <vector>

namespace archlens::ui {

// Running statistics over every value ever placed (dropping does not change them).
struct SeriesStats {
    float min = std::numeric_limits<float>::infinity();
    float max = -std::numeric_limits<float>::infinity();
    float maxAbs = 0.f;
    float minPositive = std::numeric_limits<float>::infinity();
    bool empty() const { return !(max >= min); }
    void add(const float* v, int64_t n)
    {
        for (int64_t i = 0; i < n; ++i) {
            const float x = v[i];
            if (std::isnan(x))
                continue;
            min = std::min(min, x);
            max = std::max(max, x);
            maxAbs = std::max(maxAbs, std::fabs(x));
            if (x > 0)
                minPositive = std::min(minPositive, x);
        }
    }
    void merge(const SeriesStats& o)
    {
        min = std::min(min, o.min);
        max = std::max(max, o.max);
        maxAbs = std::max(maxAbs, o.maxAbs);
        minPositive = std::min(minPositive, o.minPositive);
    }
};

class SeriesView {
public:
    static constexpr int64_t kChunkRows = 64; // owners are shared per chunk of rows
    using Owner = std::shared_ptr<const void>;
    using OwnerChunk = std::array<Owner, kChunkRows>;

    int64_t width() const { return m_width; }
    int64_t count() const { return int64_t(m_rows.size()); }
    bool valid() const { return m_width > 0; }
    uint64_t version() const { return m_version; } // bumped on every change of a row
    // nullptr when t is out of range, was never computed, or was dropped by the memory cap
    const float* row(int64_t t) const { return t >= 0 && t < count() ? m_rows[size_t(t)] : nullptr; }
    float at(int64_t t, int64_t col) const
    {
        const float* r = row(t);
        return r ? r[col] : std::numeric_limits<float>::quiet_NaN();
    }

protected:
    std::vector<const float*> m_rows;
    std::vector<std::shared_ptr<OwnerChunk>> m_owners; // chunk i owns rows [i·64, (i+1)·64)
    int64_t m_width = 0;
    uint64_t m_version = 0;
};

class ProbeSeries : public SeriesView {
public:
    ProbeSeries() = default;
    explicit ProbeSeries(int64_t width) { m_width = width; }

    // Row t becomes `values` (width() floats, kept alive by `owner`); grows with missing rows.
    void set(int64_t t, const float* values, Owner owner, bool addStats = true)
    {
        grow(t + 1);
        m_rows[size_t(t)] = values;
        chunk(t)[size_t(t % kChunkRows)] = std::move(owner);
        if (addStats && values)
            m_stats.add(values, m_width);
        ++m_version;
    }
    // Row t is missing (the store dropped it); its owner is released.
    void clear(int64_t t)
    {
        if (!row(t))
            return;
        m_rows[size_t(t)] = nullptr;
        chunk(t)[size_t(t % kChunkRows)].reset();
        ++m_version;
    }
    // Rows [count(), n) are added as missing.
    void grow(int64_t n)
    {
        if (n <= count())
            return;
        m_rows.resize(size_t(n), nullptr);
        m_owners.resize(size_t((n + kChunkRows - 1) / kChunkRows));
        ++m_version;
    }
    // Copies `rows` rows of width() floats at the end (tests and derived data).
    void append(const float* values, int64_t rows)
    {
        auto block = std::make_shared<std::vector<float>>(values, values + rows * m_width);
        const int64_t first = count();
        for (int64_t r = 0; r < rows; ++r)
            set(first + r, block->data() + r * m_width, block);
    }
    int64_t keptRows() const
    {
        int64_t n = 0;
        for (const float* r : m_rows)
            n += r != nullptr;
        return n;
    }
    SeriesView view() const { return *this; }
    const SeriesStats& stats() const { return m_stats; }

private:
    // The chunk holding row t, unshared first (a snapshot may still read the old one).
    OwnerChunk& chunk(int64_t t)
    {
        auto& c = m_owners[size_t(t / kChunkRows)];
        if (!c)
            c = std::make_shared<OwnerChunk>();
        else if (c.use_count() > 1)
            c = std::make_shared<OwnerChunk>(*c);
        return *c;
    }
    SeriesStats m_stats;
};

} // namespace archlens::ui
