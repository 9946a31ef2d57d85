#include "training/finetune.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <sstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "base/error.h"

namespace archlens::train {

namespace fs = std::filesystem;

bool isJsonlData(const fs::path& path, const std::string& bytes)
{
    if (path.extension() == ".jsonl")
        return true;
    const auto i = bytes.find_first_not_of(" \t\r\n");
    return i != std::string::npos && bytes[i] == '{';
}

std::unique_ptr<Task> loadFinetuneData(const fs::path& path, const Tokenizer& tok, int64_t vocab, int64_t context)
{
    std::ifstream f(path, std::ios::binary);
    if (!f)
        throw Error(ErrorCode::Io, "cannot open the data file", path.string());
    const std::string bytes((std::istreambuf_iterator<char>(f)), {});
    if (bytes.find_first_not_of(" \t\r\n") == std::string::npos)
        throw Error(ErrorCode::Format, "the data file is empty", path.string());
    const std::string abs = fs::absolute(path).string();
    if (!isJsonlData(path, bytes))
        return makeTextTask(tok.encode(bytes, false), vocab, context, abs);
    std::vector<PromptCompletion> ex;
    std::stringstream ss(bytes);
    std::string line;
    int64_t lineNo = 0;
    while (std::getline(ss, line)) {
        ++lineNo;
        if (line.find_first_not_of(" \t\r") == std::string::npos)
            continue;
        nlohmann::json j;
        try {
            j = nlohmann::json::parse(line);
        } catch (const nlohmann::json::exception& e) {
            throw Error(ErrorCode::Format, fmt::format("line {}: invalid JSON: {}", lineNo, e.what()), path.string());
        }
        if (!j.is_object() || !j.contains("prompt") || !j.contains("completion") || !j["prompt"].is_string()
            || !j["completion"].is_string())
            throw Error(ErrorCode::Format,
                        fmt::format("line {}: expected string fields \"prompt\" and \"completion\"", lineNo),
                        path.string());
        ex.push_back({tok.encode(j["prompt"].get<std::string>(), false),
                      tok.encode(j["completion"].get<std::string>(), false)});
    }
    return makePromptCompletionTask(std::move(ex), vocab, 0, abs);
}

std::vector<int32_t> greedyGenerate(const MambaTrainModel& model, const std::vector<int32_t>& prompt,
                                    int64_t newTokens)
{
    if (prompt.empty())
        throw Error(ErrorCode::InvalidArgument, "greedy generation needs at least one prompt token");
    std::vector<int32_t> seq = prompt;
    const int64_t V = model.config().V;
    for (int64_t i = 0; i < newTokens; ++i) {
        const std::vector<float> lg = model.logits(seq.data(), int64_t(seq.size()));
        const float* last = lg.data() + (int64_t(seq.size()) - 1) * V;
        seq.push_back(int32_t(std::max_element(last, last + V) - last));
    }
    return {seq.begin() + int64_t(prompt.size()), seq.end()};
}

namespace {

struct Moments {
    double sum = 0, sq = 0;
    int64_t n = 0;
    void add(double v)
    {
        sum += v;
        sq += v * v;
        ++n;
    }
    double mean() const { return n ? sum / double(n) : 0; }
    double std() const { return n ? std::sqrt(std::max(0.0, sq / double(n) - mean() * mean())) : 0; }
};

} // namespace

std::vector<ScanLayerStats> scanStatistics(const MambaTrainModel& model, const std::vector<int32_t>& ids)
{
    if (ids.empty())
        throw Error(ErrorCode::InvalidArgument, "scan statistics need at least one token");
    const int64_t E = model.config().E, N = model.config().N;
    std::vector<ScanLayerStats> out;
    model.logits(ids.data(), int64_t(ids.size()),
                 [&](int64_t layer, int64_t T, const float* delta, const float* B, const float* C, int64_t ld) {
                     Moments d, b, c;
                     for (int64_t i = 0; i < T * E; ++i)
                         d.add(delta[i]);
                     for (int64_t t = 0; t < T; ++t)
                         for (int64_t n = 0; n < N; ++n) {
                             b.add(B[t * ld + n]);
                             c.add(C[t * ld + n]);
                         }
                     out.push_back({layer, d.mean(), d.std(), b.mean(), b.std(), c.mean(), c.std()});
                 });
    return out;
}

} // namespace archlens::train
