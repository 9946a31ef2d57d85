// Options shared by generate and trace: model, prompt or ids, backend.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "backends/backend_factory.h"
#include "common.h"
#include "models/model.h"

namespace archlens::cli {

struct RunOptions {
    std::string model, prompt, tokens, backend = "auto";
    int threads = 0;
    CLI::Option* promptOpt = nullptr;
    CLI::Option* tokensOpt = nullptr;

    void add(CLI::App* cmd, const std::string& backendDefault);
};

// What a run needs, resolved: model loaded on the chosen backend, tokenizer if any, ids.
struct PreparedRun {
    std::filesystem::path modelDir;
    std::string revision;
    std::unique_ptr<Model> model;
    std::string backendName;
    std::optional<Tokenizer> tokenizer;
    std::vector<int32_t> ids;
    std::string prompt; // '' when ids were given
};

PreparedRun prepareRun(const RunOptions& o);

} // namespace archlens::cli
