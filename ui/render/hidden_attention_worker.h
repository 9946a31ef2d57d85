// HiddenAttentionWorker: Mamba's hidden attention (core/analysis/hidden_attention.h) for the
// GUI's figures, off the UI thread. A figure copies the window's Δ, B, C rows and A into a job
// and submits it; the worker keeps only the newest job per client (a job that has not started
// when a newer one arrives is dropped, and a running one is cancelled between channels), and
// the figure picks the finished matrix up on a later paint (take). The CLI computes in place.
#pragma once

#include <QByteArray>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

namespace archlens::ui {

struct HiddenAttentionJob {
    QByteArray key;            // identifies the inputs (layer, window, channels, data version)
    int64_t W = 0, E = 0, N = 0;
    std::vector<float> delta;  // (W, E)
    std::vector<float> B, C;   // (W, N)
    std::vector<float> A;      // (E, N)
    std::vector<int64_t> channels; // one: that channel's α; else the mean over these (empty: all)
    bool single = false;
};

class HiddenAttentionWorker {
public:
    static HiddenAttentionWorker& instance();
    HiddenAttentionWorker();
    ~HiddenAttentionWorker();
    HiddenAttentionWorker(const HiddenAttentionWorker&) = delete;
    HiddenAttentionWorker& operator=(const HiddenAttentionWorker&) = delete;

    void submit(const void* client, HiddenAttentionJob job);
    // The client's result for `key` (rows normalised by Σ|α|) once computed, handed over once.
    std::optional<std::vector<double>> take(const void* client, const QByteArray& key);
    void forget(const void* client); // a client going away: its pending job and result go too
    bool idle() const;               // nothing pending or running (tests)
    uint64_t computedCount() const { return m_computed; }
    uint64_t droppedCount() const { return m_dropped; } // stale jobs skipped or cancelled

private:
    struct Result {
        QByteArray key;
        std::vector<double> matrix;
    };
    void loop();
    mutable std::mutex m_mutex;
    std::condition_variable m_cv;
    std::map<const void*, HiddenAttentionJob> m_pending;
    std::map<const void*, Result> m_done;
    const void* m_running = nullptr;
    std::atomic<bool> m_cancelRunning{false};
    bool m_stop = false;
    std::atomic<uint64_t> m_computed{0}, m_dropped{0};
    std::thread m_thread;
};

} // namespace archlens::ui
