#include "render/hidden_attention_worker.h"

#include "analysis/hidden_attention.h"

namespace archlens::ui {

HiddenAttentionWorker& HiddenAttentionWorker::instance()
{
    static HiddenAttentionWorker w; // joined at exit
    return w;
}

HiddenAttentionWorker::HiddenAttentionWorker() { m_thread = std::thread([this] { loop(); }); }

HiddenAttentionWorker::~HiddenAttentionWorker()
{
    {
        std::lock_guard lock(m_mutex);
        m_stop = true;
    }
    m_cancelRunning = true;
    m_cv.notify_all();
    m_thread.join();
}

void HiddenAttentionWorker::submit(const void* client, HiddenAttentionJob job)
{
    {
        std::lock_guard lock(m_mutex);
        auto [it, inserted] = m_pending.insert_or_assign(client, std::move(job));
        if (!inserted)
            ++m_dropped; // the older job had not started: it is stale now
        if (m_running == client)
            m_cancelRunning = true; // so is the one being computed
        m_done.erase(client);
    }
    m_cv.notify_one();
}

std::optional<std::vector<double>> HiddenAttentionWorker::take(const void* client, const QByteArray& key)
{
    std::lock_guard lock(m_mutex);
    auto it = m_done.find(client);
    if (it == m_done.end() || it->second.key != key)
        return std::nullopt;
    std::vector<double> m = std::move(it->second.matrix);
    m_done.erase(it);
    return m;
}

void HiddenAttentionWorker::forget(const void* client)
{
    std::lock_guard lock(m_mutex);
    m_pending.erase(client);
    m_done.erase(client);
    if (m_running == client)
        m_cancelRunning = true;
}

bool HiddenAttentionWorker::idle() const
{
    std::lock_guard lock(m_mutex);
    return m_pending.empty() && !m_running;
}

void HiddenAttentionWorker::loop()
{
    for (;;) {
        const void* client = nullptr;
        HiddenAttentionJob job;
        {
            std::unique_lock lock(m_mutex);
            m_running = nullptr;
            m_cv.wait(lock, [this] { return m_stop || !m_pending.empty(); });
            if (m_stop)
                return;
            auto it = m_pending.begin();
            client = it->first;
            job = std::move(it->second);
            m_pending.erase(it);
            m_running = client;
            m_cancelRunning = false;
        }
        std::vector<double> m;
        try {
            const analysis::ScanInputs in{job.W, job.E, job.N, job.delta.data(), job.B.data(), job.C.data(), job.A.data()};
            const analysis::AttentionWindow local{0, job.W, false};
            m = job.single ? analysis::hiddenAttention(in, job.channels.front(), local)
                           : analysis::hiddenAttentionMean(in, job.channels, local, &m_cancelRunning);
            if (!m.empty())
                analysis::normaliseRowsByAbsSum(m, job.W);
        } catch (const std::exception&) {
            m.clear(); // the figure checked the inputs; an empty result draws as unavailable
        }
        std::lock_guard lock(m_mutex);
        if (m_cancelRunning) {
            ++m_dropped;
            continue;
        }
        ++m_computed;
        m_done[client] = Result{std::move(job.key), std::move(m)};
    }
}

} // namespace archlens::ui
