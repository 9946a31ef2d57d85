// Shared helpers for archlens-cli subcommands.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "base/error.h"
#include "tokenizer/tokenizer.h"

namespace archlens::cli {

// "1,2,3" -> ids; '' -> {}. Error(InvalidArgument) naming the bad item.
std::vector<int32_t> parseIds(const std::string& spec, const char* option);
std::string readFileBytes(const std::filesystem::path& path); // Error(Io) naming the file
// The tokenizer in a model folder, if it has tokenizer.json.
std::optional<Tokenizer> tokenizerForModel(const std::filesystem::path& modelDir);
// Display text of one token: its decoded text, or "#<id>" without a tokenizer.
std::string tokenDisplay(const std::optional<Tokenizer>& tok, int32_t id);
// The label of a model card our tools wrote (archlens_card.json), e.g. "untrained"; '' if none.
std::string modelCardLabel(const std::filesystem::path& modelDir);
std::string humanBytes(uint64_t bytes);
std::string humanCount(int64_t n);

void addInfoCommand(CLI::App& app);
void addTokenizeCommands(CLI::App& app);
void addGenerateCommand(CLI::App& app);
void addTraceCommand(CLI::App& app);
void addInitModelCommand(CLI::App& app);
void addBenchCommand(CLI::App& app);      // cmd_bench.cpp
void addBenchScanCommand(CLI::App* bench);  // cmd_bench.cpp
void addBenchModelCommand(CLI::App* bench); // cmd_bench_model.cpp
void addFigureCommand(CLI::App& app);
void addTrainCommands(CLI::App& app);    // cmd_train.cpp: train, bench train (after addBenchCommand)
void addEvalCommand(CLI::App& app);      // cmd_eval.cpp
void addFinetuneCommand(CLI::App& app);  // cmd_finetune.cpp
void addRouteCommand(CLI::App& app); // cmd_route.cpp

} // namespace archlens::cli
