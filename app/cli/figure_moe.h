// archlens-cli figure for the MoE and attention views (router, router-overview, expert-load,
// expert-path, coactivation, attention, attention-overview, hidden-attention, layer-map), and
// the side-by-side comparison (--compare-model). Kept apart from cmd_figure.cpp (the scan
// views), which hands these view names over.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

namespace archlens::cli {

struct MoeFigureOptions {
    int head = 0;
    std::string compareModel, compareTokens, corpora2;
    int compareLayer = -1;
    std::vector<std::string> corpora;
    std::string tokenizer;
    int64_t cap = 0, corpusTokens = 0;
};
// Registers --head, --compare-model, --compare-layer, --compare-tokens, --corpus, --tokenizer,
// --cap on the figure command.
std::shared_ptr<MoeFigureOptions> addMoeFigureOptions(CLI::App* figure);
bool isMoeFigureView(const std::string& view);
const char* moeFigureViews();

struct FigureRequest {
    std::string model, prompt, tokens, trace, view, channels, out, backend;
    int layer = 0, token = -1, dpi = 150, width = 1600, height = 900;
    bool hasPrompt = false, hasTokens = false, hasTrace = false, hasLayer = false;
};
void runMoeFigure(const FigureRequest& req, const MoeFigureOptions& opts);

} // namespace archlens::cli
