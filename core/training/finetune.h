// What a LoRA fine-tune needs besides the trainer, shared by `archlens-cli finetune` and the
// GUI's Fine-tune page: the dataset (a text file, or JSONL of {"prompt", "completion"}
// objects) as a Task, greedy generation with the training model, and per-layer statistics of
// the selective scan's inputs (Δ, B, C) on a prompt, for comparing a base model with its
// adapted version.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "tokenizer/tokenizer.h"
#include "training/mamba_train_model.h"
#include "training/tasks.h"

namespace archlens::train {

// JSONL when the file ends in .jsonl or its first non-blank byte is '{' (Error(Format) naming
// the file and line for a bad line); otherwise text windows of `context` tokens.
std::unique_ptr<Task> loadFinetuneData(const std::filesystem::path& path, const Tokenizer& tok, int64_t vocab,
                                       int64_t context);
bool isJsonlData(const std::filesystem::path& path, const std::string& bytes);

// `newTokens` greedy (argmax) tokens after `prompt` (the whole sequence is recomputed per
// token: meant for the small models one fine-tunes on a CPU).
std::vector<int32_t> greedyGenerate(const MambaTrainModel& model, const std::vector<int32_t>& prompt,
                                    int64_t newTokens);

// Mean and standard deviation over every (token, channel) of one layer's Δ, B and C.
struct ScanLayerStats {
    int64_t layer = 0;
    double deltaMean = 0, deltaStd = 0, bMean = 0, bStd = 0, cMean = 0, cStd = 0;
};
std::vector<ScanLayerStats> scanStatistics(const MambaTrainModel& model, const std::vector<int32_t>& ids);

} // namespace archlens::train
