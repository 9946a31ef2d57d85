// Heatmap rendering: values -> colours -> QImage, off the UI thread. renderHeatmap() is the
// one colour-mapping routine (the screen, exports and the CLI all use it). When a view holds
// more cells than pixels, each pixel keeps the value of largest magnitude in its bucket, sign
// included, so a single spike or a sign change survives downsampling. RenderWorker runs
// requests on its own thread and keeps only the newest request per client: a request that
// has not started when a newer one arrives is dropped.
#pragma once

#include <QImage>
#include <QObject>

#include <atomic>
#include <condition_variable>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

#include "render/colormap.h"
#include "session/probe_series.h"

namespace archlens::ui {

struct HeatmapRequest {
    SeriesView series;
    // true: x = token (a series row), y = a column of that row.
    // false: one series row (at `token`) seen as a matrix of `matCols` columns: y = matrix
    // row (channel), x = matrix column (state dimension).
    bool tokenAxis = true;
    int64_t token = 0;
    int64_t matCols = 1;
    int64_t x0 = 0, x1 = 0;     // visible x range [x0, x1)
    std::vector<int64_t> rows;  // source rows shown top to bottom
    QSize pixels;               // the most cells the output needs (device pixels of the plot)
    Colormap map = Colormap::Viridis;
    ValueScale scale;
    QRgb missing = 0xff808080;  // dropped by a memory cap, or not computed
    quint64 key = 0;            // identifies the request for caching

    int64_t columns() const { return x1 - x0; }
    quint64 computeKey() const;
    // The exact value at (x, row index i), NaN when missing.
    float value(int64_t x, size_t i) const
    {
        return tokenAxis ? series.at(x, rows[i]) : series.at(token, rows[i] * matCols + x);
    }
    // Bucket [begin, end) of source columns that output column `i` of `outW` covers.
    std::pair<int64_t, int64_t> bucket(int64_t i, int64_t outW) const
    {
        const int64_t n = columns();
        return {x0 + i * n / outW, x0 + (i + 1) * n / outW};
    }
};

// Output size is (min(columns, pixels.width), min(rows, pixels.height)); the caller draws
// it scaled into the plot without smoothing.
QImage renderHeatmap(const HeatmapRequest& req);

class RenderWorker : public QObject {
    Q_OBJECT
public:
    static RenderWorker* instance();
    ~RenderWorker() override;
    void submit(const void* client, const HeatmapRequest& req);
    void forget(const void* client);
    // Requests rendered and dropped since start (for tests and the benchmark).
    quint64 renderedCount() const { return m_rendered; }
    quint64 droppedCount() const { return m_dropped; }

signals:
    void rendered(quintptr client, quint64 key, const QImage& image);

private:
    RenderWorker();
    void loop();
    std::mutex m_mutex;
    std::condition_variable m_cv;
    std::map<const void*, HeatmapRequest> m_pending;
    bool m_stop = false;
    std::atomic<quint64> m_rendered{0}, m_dropped{0};
    std::thread m_thread;
};

} // namespace archlens::ui
