// ProbeSeries: a token-major series of float rows (one row of fixed width per token). It
// adopts the frames the worker recorded (Tensors share their storage, like torch) instead of
// copying them, so moving a burst of tokens into the UI costs a few pointers per frame; the
// row statistics colour ranges need were computed on the worker too. A snapshot (SeriesView)
// copies the row pointers and frame handles, so the render worker reads rows [0, count) while
// the UI thread appends: no lock, no copy of the data. Frames before a memory cap's boundary
// can be dropped; snapshots that still hold them keep them alive.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <vector>

#include "tensor/tensor.h"

namespace archlens::ui {

// Running statistics over every value ever appended (dropping does not change them).
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
    static constexpr int64_t kChunkRows = 64; // the memory cap drops whole multiples of this
    int64_t width() const { return m_width; }
    int64_t count() const { return int64_t(m_rows.size()); }
    int64_t firstKept() const { return m_first; }
    bool valid() const { return m_width > 0; }
    // nullptr when t is out of range or was dropped by a memory cap
    const float* row(int64_t t) const { return t >= m_first && t < count() ? m_rows[size_t(t)] : nullptr; }
    float at(int64_t t, int64_t col) const
    {
        const float* r = row(t);
        return r ? r[col] : std::numeric_limits<float>::quiet_NaN();
    }

protected:
    std::vector<const float*> m_rows;
    std::vector<Tensor> m_frames; // owners of the rows (empty Tensor once dropped)
    std::vector<int64_t> m_frameEnd;
    int64_t m_width = 0, m_first = 0;
};

class ProbeSeries : public SeriesView {
public:
    ProbeSeries() = default;
    explicit ProbeSeries(int64_t width) { m_width = width; }

    // Adopts rows [skip, rows) of an F32 frame (rows, width...) without copying.
    void adopt(const Tensor& frame, int64_t skip, const SeriesStats* stats = nullptr)
    {
        const int64_t rows = frame.dim(0);
        const float* base = frame.f32();
        for (int64_t r = skip; r < rows; ++r)
            m_rows.push_back(base + r * m_width);
        m_frames.push_back(frame);
        m_frameEnd.push_back(count());
        if (stats) {
            m_stats.merge(*stats);
        } else {
            m_stats.add(base + skip * m_width, (rows - skip) * m_width);
        }
        ++m_version;
    }
    // Copies `rows` rows of width() floats (tests and synthetic data).
    void append(const float* values, int64_t rows)
    {
        Tensor t = Tensor::empty({rows, m_width});
        std::memcpy(t.f32(), values, size_t(rows * m_width) * sizeof(float));
        adopt(t, 0);
    }
    // Drops the frames that end at or before the last multiple of kChunkRows <= t.
    void dropBefore(int64_t t)
    {
        const int64_t limit = t / kChunkRows * kChunkRows;
        for (size_t i = 0; i < m_frames.size(); ++i) {
            if (m_frameEnd[i] > limit)
                break;
            if (m_frames[i].numel() == 0)
                continue;
            m_frames[i] = Tensor();
            const int64_t begin = i == 0 ? 0 : m_frameEnd[i - 1];
            for (int64_t r = begin; r < m_frameEnd[i]; ++r)
                m_rows[size_t(r)] = nullptr;
            m_first = m_frameEnd[i];
        }
    }
    uint64_t keptBytes() const
    {
        uint64_t n = 0;
        for (const Tensor& f : m_frames)
            n += f.numel() > 0 ? f.nbytes() : 0;
        return n;
    }
    SeriesView view() const { return *this; }
    const SeriesStats& stats() const { return m_stats; }
    uint64_t version() const { return m_version; }

private:
    SeriesStats m_stats;
    uint64_t m_version = 0;
};

} // namespace archlens::ui
