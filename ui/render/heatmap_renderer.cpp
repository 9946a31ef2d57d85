#include "render/heatmap_renderer.h"

#include <QCoreApplication>
#include <QHash>

#include <cmath>

namespace archlens::ui {

quint64 HeatmapRequest::computeKey() const
{
    QByteArray b;
    auto add = [&b](const auto& v) { b.append(reinterpret_cast<const char*>(&v), sizeof(v)); };
    add(series.count()), add(series.version()), add(series.width()), add(tokenAxis), add(token), add(matCols);
    add(x0), add(x1), add(pixels.width()), add(pixels.height()), add(int(map)), add(scale.lo), add(scale.hi);
    add(scale.log);
    if (series.valid() && series.count() > 0)
        add(reinterpret_cast<quintptr>(series.row(tokenAxis ? series.count() - 1 : token)));
    b.append(reinterpret_cast<const char*>(rows.data()), qsizetype(rows.size() * sizeof(int64_t)));
    return qHash(b, 0x9e3779b9u) ^ (quint64(qHash(b, 7u)) << 32);
}

QImage renderHeatmap(const HeatmapRequest& r)
{
    const int64_t nx = r.columns(), ny = int64_t(r.rows.size());
    if (nx <= 0 || ny <= 0 || r.pixels.isEmpty())
        return {};
    const int64_t ow = std::min<int64_t>(nx, std::max(1, r.pixels.width()));
    const int64_t oh = std::min<int64_t>(ny, std::max(1, r.pixels.height()));
    QImage img(int(ow), int(oh), QImage::Format_RGB32);
    const auto& lut = colormapLut(r.map);
    std::vector<float> best(static_cast<size_t>(oh));
    std::vector<float> bestAbs(static_cast<size_t>(oh));
    for (int64_t i = 0; i < ow; ++i) {
        std::fill(best.begin(), best.end(), std::numeric_limits<float>::quiet_NaN());
        std::fill(bestAbs.begin(), bestAbs.end(), -1.f);
        const auto [xa, xb] = r.bucket(i, ow);
        for (int64_t x = xa; x < std::max(xb, xa + 1); ++x) {
            const float* row = r.tokenAxis ? r.series.row(x) : r.series.row(r.token);
            if (!row)
                continue;
            for (int64_t j = 0; j < oh; ++j) {
                const int64_t ya = j * ny / oh, yb = std::max((j + 1) * ny / oh, ya + 1);
                float& bv = best[size_t(j)];
                float& ba = bestAbs[size_t(j)];
                for (int64_t y = ya; y < yb; ++y) {
                    const int64_t src = r.rows[size_t(y)];
                    const float v = r.tokenAxis ? row[src] : row[src * r.matCols + x];
                    const float a = std::fabs(v);
                    if (a > ba) { // keeps the sign of the largest magnitude
                        ba = a;
                        bv = v;
                    }
                }
            }
        }
        for (int64_t j = 0; j < oh; ++j) {
            const float v = best[size_t(j)];
            QRgb c = r.missing;
            if (!std::isnan(v))
                c = lut[size_t(std::clamp(int(std::lround(r.scale.normalise(v) * 255.0)), 0, 255))];
            reinterpret_cast<QRgb*>(img.scanLine(int(j)))[i] = c;
        }
    }
    return img;
}

RenderWorker* RenderWorker::instance()
{
    static RenderWorker* w = [] {
        auto* rw = new RenderWorker;
        // joined when the application goes away
        QObject::connect(qApp, &QObject::destroyed, [rw] { delete rw; });
        return rw;
    }();
    return w;
}

RenderWorker::RenderWorker()
{
    m_thread = std::thread([this] { loop(); });
}

RenderWorker::~RenderWorker()
{
    {
        std::lock_guard lock(m_mutex);
        m_stop = true;
    }
    m_cv.notify_all();
    m_thread.join();
}

void RenderWorker::submit(const void* client, const HeatmapRequest& req)
{
    {
        std::lock_guard lock(m_mutex);
        auto [it, inserted] = m_pending.insert_or_assign(client, req);
        if (!inserted)
            ++m_dropped; // the older request had not started: it is stale now
    }
    m_cv.notify_one();
}

void RenderWorker::forget(const void* client)
{
    std::lock_guard lock(m_mutex);
    m_pending.erase(client);
}

void RenderWorker::loop()
{
    for (;;) {
        const void* client = nullptr;
        HeatmapRequest req;
        {
            std::unique_lock lock(m_mutex);
            m_cv.wait(lock, [this] { return m_stop || !m_pending.empty(); });
            if (m_stop)
                return;
            auto it = m_pending.begin();
            client = it->first;
            req = std::move(it->second);
            m_pending.erase(it);
        }
        QImage img = renderHeatmap(req);
        ++m_rendered;
        emit rendered(quintptr(client), req.key, img);
    }
}

} // namespace archlens::ui
