// archlens --bench-ui: a benchmark, not a test. Plays the bundled model's tokens at 60 steps
// per second and reports frame times (cursor move + a full synchronous repaint of the
// window), then streams a long generation with every view live and reports the longest
// event-loop stall. Numbers go to stdout; docs/performance.md records them.
#pragma once

#include <QString>

namespace archlens::ui {
class MainWindow;
int runUiBenchmark(MainWindow& window, const QString& modelDir);
} // namespace archlens::ui
