// Synthetic tasks and text data for training and evaluating small models, generated from a
// seed so `eval` can draw fresh held-out data of the same kind from any seed. A task's
// parameters are what archlens_task.json stores next to a trained model.
//
//  selective-copy  `length` positions of noise (id 0) with `data_tokens` symbols scattered
//                  among them, then the marker (id 1), then the symbols again in order; the
//                  loss counts only the copied symbols (Gu & Dao 2023, §4.1.1). Symbols are
//                  ids 2 .. 2+symbols−1.
//  induction       `length` random symbols with one trigger (id 1) followed by a value
//                  somewhere inside, then the trigger again: the model must recall the value
//                  (one counted position per sequence). Symbols are ids 2 .. 2+symbols−1.
//  text            windows of `context` tokens of a tokenized text file; the last 10% of the
//                  tokens are held out for `eval`. Or, from a corpus folder (one subfolder per
//                  domain holding train.txt and heldout.txt, as resources/corpora/), windows of
//                  one domain at a time: domain d is drawn with probability proportional to the
//                  square root of its training tokens (small domains are seen more often than
//                  their share without being repeated to memorisation); held-out windows come
//                  from heldout.txt, and `domainTask(d)` evaluates one domain alone.
// Accuracy for the synthetic tasks is the fraction of sequences whose counted positions are
// all predicted exactly (teacher-forced argmax, which equals greedy generation being exact).
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace archlens {
class Tokenizer;
}

namespace archlens::train {

struct Batch {
    int64_t B = 0, T = 0;
    std::vector<int32_t> ids, targets; // (B, T); target < 0 = not counted
};

class Task {
public:
    virtual ~Task() = default;
    virtual std::string name() const = 0;
    virtual int64_t vocabSize() const = 0;   // embedding rows the model needs (at least)
    virtual int64_t sequenceLength() const = 0; // T of every batch
    virtual bool reportsAccuracy() const { return true; } // text reports loss / perplexity
    // B sequences drawn from a stream seeded by `seed` (heldOut: the evaluation split).
    virtual Batch batch(uint64_t seed, int64_t B, bool heldOut) const = 0;
    virtual nlohmann::ordered_json toJson() const = 0;
    // Corpus text tasks: the domain names, and a task drawing from domain d alone.
    virtual std::vector<std::string> domains() const { return {}; }
    virtual std::unique_ptr<Task> domainTask(size_t d) const;
};

struct SelectiveCopyParams {
    int64_t length = 64, dataTokens = 8, symbols = 8;
};
struct InductionParams {
    int64_t length = 64, symbols = 8;
};

std::unique_ptr<Task> makeSelectiveCopyTask(const SelectiveCopyParams& p);
std::unique_ptr<Task> makeInductionTask(const InductionParams& p);
// tokens: the whole tokenized file; `dataPath` is recorded only.
std::unique_ptr<Task> makeTextTask(std::vector<int32_t> tokens, int64_t vocab, int64_t context,
                                   const std::string& dataPath);
// A corpus folder's text: one entry per subfolder holding train.txt (heldout.txt optional but
// needed for evaluation), in name order. Error(InvalidArgument) naming the folder when none has.
struct CorpusDomainText {
    std::string name, train, heldOut;
};
bool isCorpusFolder(const std::filesystem::path& dir);
std::vector<CorpusDomainText> readCorpusFolder(const std::filesystem::path& dir);
struct CorpusDomainTokens {
    std::string name;
    std::vector<int32_t> train, heldOut;
};
// Every domain's text through the model's tokenizer (no special tokens added).
std::vector<CorpusDomainTokens> tokenizeCorpus(const std::vector<CorpusDomainText>& texts, const Tokenizer& tok);
// `dataPath` is recorded in toJson (as given: the CLI records it relative to the model folder).
std::unique_ptr<Task> makeCorpusTask(std::vector<CorpusDomainTokens> domains, int64_t vocab, int64_t context,
                                     const std::string& dataPath);

// Prompt/completion pairs (already tokenized): each sequence is prompt + completion, the loss
// counts only completion tokens; a batch is right-padded with id `pad` to its longest
// sequence (padding after the end cannot change earlier positions of a causal model). The
// last tenth of the examples (when there are at least 10) is held out for evaluation.
struct PromptCompletion {
    std::vector<int32_t> prompt, completion;
};
std::unique_ptr<Task> makePromptCompletionTask(std::vector<PromptCompletion> examples, int64_t vocab, int32_t pad,
                                               const std::string& dataPath);
// From archlens_task.json's content; text tasks re-tokenize `data` with the model's tokenizer
// (dataOverride replaces the recorded path when given; a relative recorded path is relative to
// the model folder, so bundled models find resources/corpora wherever the tree lives).
std::unique_ptr<Task> taskFromJson(const nlohmann::json& j, const std::filesystem::path& modelDir,
                                   const std::string& dataOverride = {});
std::unique_ptr<Task> loadTask(const std::filesystem::path& modelDir, const std::string& dataOverride = {});

// A tokenizer.json for a synthetic task's ids, one character per id ('.' noise or unused, '|'
// marker / trigger, then a-z, A-Z, 0-9 for the symbols), so the app and `generate` show and
// accept text such as "..a...b.|ab". Empty when the task has more symbols than characters.
std::string symbolicTokenizerJson(int64_t vocab);

// Seed of training step `step` of a run seeded with `seed` (disjoint from eval seeds by a tag).
uint64_t stepSeed(uint64_t seed, int64_t step);
uint64_t evalSeed(uint64_t seed, int64_t batchIndex);

} // namespace archlens::train
