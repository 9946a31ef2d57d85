// ProbeSeries: a token-major series of float rows (one row of fixed width per token) kept in
// fixed-capacity chunks that are never reallocated. A snapshot (SeriesView) copies the chunk
// pointers and the row count, so the render worker reads rows [0, count) while the UI thread
// appends rows after them: no lock, no copy of the data. Chunks before a memory cap's
// boundary can be dropped; snapshots that still hold them keep them alive.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <vector>

namespace archlens::ui {

struct SeriesChunk {
    explicit SeriesChunk(int64_t capacityFloats)
        : data(new float[size_t(capacityFloats)])
    {
    }
    std::unique_ptr<float[]> data;
};

// Running statistics over every value ever appended (dropping does not change them).
struct SeriesStats {
    float min = std::numeric_limits<float>::infinity();
    float max = -std::numeric_limits<float>::infinity();
    float maxAbs = 0.f;
    float minPositive = std::numeric_limits<float>::infinity();
    bool empty() const { return !(max >= min); }
};

class SeriesView {
public:
    static constexpr int64_t kChunkRows = 64;
    int64_t width() const { return m_width; }
    int64_t count() const { return m_count; }
    int64_t firstKept() const { return m_first; }
    bool valid() const { return m_width > 0; }
    // nullptr when t is out of range or was dropped by a memory cap
    const float* row(int64_t t) const
    {
        if (t < m_first || t >= m_count || t < 0)
            return nullptr;
        const auto& c = m_chunks[size_t(t / kChunkRows)];
        return c ? c->data.get() + (t % kChunkRows) * m_width : nullptr;
    }
    float at(int64_t t, int64_t col) const
    {
        const float* r = row(t);
        return r ? r[col] : std::numeric_limits<float>::quiet_NaN();
    }

protected:
    std::vector<std::shared_ptr<const SeriesChunk>> m_chunks;
    int64_t m_width = 0, m_count = 0, m_first = 0;
};

class ProbeSeries : public SeriesView {
public:
    ProbeSeries() = default;
    explicit ProbeSeries(int64_t width) { m_width = width; }

    // Appends `rows` rows of width() floats. Only the owning (UI) thread calls this.
    void append(const float* values, int64_t rows)
    {
        for (int64_t r = 0; r < rows; ++r) {
            const int64_t t = m_count;
            if (size_t(t / kChunkRows) >= m_chunks.size()) {
                m_writable = std::make_shared<SeriesChunk>(kChunkRows * m_width);
                m_chunks.push_back(m_writable);
            }
            float* dst = m_writable->data.get() + (t % kChunkRows) * m_width;
            std::memcpy(dst, values + r * m_width, size_t(m_width) * sizeof(float));
            for (int64_t i = 0; i < m_width; ++i) {
                const float v = dst[i];
                if (std::isnan(v))
                    continue;
                m_stats.min = std::min(m_stats.min, v);
                m_stats.max = std::max(m_stats.max, v);
                m_stats.maxAbs = std::max(m_stats.maxAbs, std::fabs(v));
                if (v > 0)
                    m_stats.minPositive = std::min(m_stats.minPositive, v);
            }
            ++m_count;
        }
        ++m_version;
    }
    // Drops whole chunks that lie entirely before token t.
    void dropBefore(int64_t t)
    {
        while ((m_first / kChunkRows + 1) * kChunkRows <= t && m_first < m_count) {
            const size_t c = size_t(m_first / kChunkRows);
            if (m_chunks[c] == m_writable)
                break;
            m_chunks[c].reset();
            m_first = int64_t(c + 1) * kChunkRows;
        }
    }
    uint64_t keptBytes() const
    {
        uint64_t n = 0;
        for (const auto& c : m_chunks)
            if (c)
                n += uint64_t(kChunkRows * m_width) * sizeof(float);
        return n;
    }
    SeriesView view() const { return *this; }
    const SeriesStats& stats() const { return m_stats; }
    uint64_t version() const { return m_version; }

private:
    std::shared_ptr<SeriesChunk> m_writable;
    SeriesStats m_stats;
    uint64_t m_version = 0;
};

} // namespace archlens::ui
