#include "bench_ui.h"

#include <QApplication>
#include <QElapsedTimer>
#include <QEventLoop>
#include <QTimer>

#include <algorithm>
#include <cstdio>
#include <vector>

#include "controls/playback_controller.h"
#include "main_window.h"
#include "render/heatmap_renderer.h"
#include "views/figure_widget.h"

namespace archlens::ui {

namespace {
bool waitFor(MainWindow* sender, auto signal, int timeoutMs)
{
    QEventLoop loop;
    bool fired = false;
    auto c = QObject::connect(sender, signal, &loop, [&] {
        fired = true;
        loop.quit();
    });
    QTimer::singleShot(timeoutMs, &loop, &QEventLoop::quit);
    loop.exec();
    QObject::disconnect(c);
    return fired;
}
double percentile(std::vector<double> v, double p)
{
    if (v.empty())
        return 0;
    std::sort(v.begin(), v.end());
    return v[std::min(v.size() - 1, size_t(p * double(v.size() - 1) + 0.5))];
}
} // namespace

int runUiBenchmark(MainWindow& w, const QString& modelDir)
{
    w.resize(1400, 900);
    w.openModel(modelDir);
    if (!waitFor(&w, &MainWindow::modelReady, 60000)) {
        std::fprintf(stderr, "archlens: --bench-ui: the model did not load: %s\n", qPrintable(w.lastError()));
        return 1;
    }
    w.setPrompt(QStringLiteral(
        "The selective scan lets a state space model decide, token by token, what to keep and what to forget. "
        "A large step size lets the current token in and resets the memory; a small one keeps the past. "
        "Students watch the state evolve while the model reads this sentence and the next."));
    w.runPrompt();
    if (!waitFor(&w, &MainWindow::runFinished, 60000))
        return 1;
    const int T = w.session()->model()->tokenCount();

    // 1. playback at 60 steps/s inside the computed range: cursor move + full repaint per frame
    std::vector<double> frames;
    {
        QEventLoop loop;
        QTimer tick;
        tick.setTimerType(Qt::PreciseTimer);
        tick.setInterval(16);
        int t = 0;
        QObject::connect(&tick, &QTimer::timeout, &loop, [&] {
            QElapsedTimer e;
            e.start();
            w.selection()->setToken(t++ % T);
            w.repaint();
            frames.push_back(double(e.nsecsElapsed()) / 1e6);
            if (frames.size() >= 600)
                loop.quit();
        });
        tick.start();
        loop.exec();
    }

    // 2. a long generation with every view live; a 1 ms timer measures event-loop gaps
    const int genTokens = 2000;
    w.setMaxNewTokens(genTokens);
    std::vector<double> gaps;
    QElapsedTimer clock;
    QElapsedTimer genTime;
    quint64 paintsBefore = 0;
    for (FigureWidget* v : w.views())
        paintsBefore += v->paints();
    {
        QTimer probe;
        probe.setTimerType(Qt::PreciseTimer);
        probe.setInterval(1);
        clock.start();
        qint64 last = 0;
        QObject::connect(&probe, &QTimer::timeout, [&] {
            const qint64 now = clock.nsecsElapsed();
            gaps.push_back(double(now - last) / 1e6);
            last = now;
        });
        probe.start();
        genTime.start();
        w.generate();
        waitFor(&w, &MainWindow::workFinished, 600000);
        probe.stop();
    }
    const double genSeconds = double(genTime.nsecsElapsed()) / 1e9;
    quint64 paints = 0;
    for (FigureWidget* v : w.views())
        paints += v->paints();
    paints -= paintsBefore;
    const int total = w.session()->model()->tokenCount();

    std::printf("archlens --bench-ui on %s (window 1400x900, %d prompt tokens)\n", qPrintable(w.summary().name), T);
    std::printf("playback, 600 frames at 60 steps/s (cursor move + full window repaint): frame time p50 %.2f ms, "
                "p99 %.2f ms, max %.2f ms (target p99 < 16.7 ms)\n",
                percentile(frames, 0.5), percentile(frames, 0.99), percentile(frames, 1.0));
    std::printf("generation of %d tokens with every view live (%d tokens in the session at the end): %.2f s, %.0f "
                "tokens/s; view repaints %llu (coalesced); longest event-loop stall %.2f ms, p99 gap %.2f ms "
                "(target < 50 ms)\n",
                total - T, total, genSeconds, double(total - T) / genSeconds, static_cast<unsigned long long>(paints),
                percentile(gaps, 1.0), percentile(gaps, 0.99));
    std::printf("render worker: %llu images rendered, %llu stale requests dropped\n",
                static_cast<unsigned long long>(RenderWorker::instance()->renderedCount()),
                static_cast<unsigned long long>(RenderWorker::instance()->droppedCount()));
    std::fflush(stdout);
    return 0;
}

} // namespace archlens::ui
