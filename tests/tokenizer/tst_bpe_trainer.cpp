// Unit tests of the byte-level BPE trainer: output structure, determinism, round trips,
// options, and training speed on about 1 MB of text.
#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "base/error.h"
#include "tokenizer/bpe_trainer.h"
#include "tokenizer/tokenizer.h"

using namespace archlens;

namespace {

std::string trainingCorpus()
{
    const auto path = std::filesystem::path(ARCHLENS_SOURCE_DIR) / "tests" / "tokenizer" / "data" / "train_corpus.txt";
    std::ifstream in(path, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

std::vector<std::string> lines(const std::string& text)
{
    std::vector<std::string> out;
    std::stringstream ss(text);
    for (std::string line; std::getline(ss, line);)
        out.push_back(line + "\n");
    return out;
}

} // namespace

TEST(BpeTrainer, WritesNeoXStyleTokenizer)
{
    BpeTrainerOptions opts;
    opts.vocabSize = 600;
    const std::string json = trainByteLevelBpe(lines(trainingCorpus()), opts);
    const auto j = nlohmann::json::parse(json);
    EXPECT_EQ(j["model"]["vocab"]["<|endoftext|>"], 0);
    EXPECT_EQ(j["model"]["vocab"].size(), 600u);
    EXPECT_EQ(j["added_tokens"][0]["content"], "<|endoftext|>");
    EXPECT_EQ(j["added_tokens"][0]["special"], true);
    EXPECT_EQ(j["pre_tokenizer"]["type"], "ByteLevel");
    EXPECT_EQ(j["pre_tokenizer"]["add_prefix_space"], false);
    EXPECT_EQ(j["decoder"]["type"], "ByteLevel");
    EXPECT_EQ(j["normalizer"]["type"], "NFC");
    ASSERT_FALSE(j["model"]["merges"].empty());
    EXPECT_TRUE(j["model"]["merges"][0].is_array());
    // After the special token, the alphabet in code point order: 188 chars map to themselves,
    // then U+0100.. for the other bytes, so U+0120 (space) is 1 + 188 + 0x20.
    EXPECT_EQ(j["model"]["vocab"]["\xC4\xA0"], 1 + 188 + 0x20);
    EXPECT_EQ(json, trainByteLevelBpe(lines(trainingCorpus()), opts)); // deterministic

    const auto tok = Tokenizer::fromJson(json, "trained");
    EXPECT_EQ(tok.vocabSize(), 600);
    EXPECT_TRUE(tok.isSpecial(0));
    for (const std::string text : {"Hello world, caf\xC3\xA9!\n\tx  y", "\xF0\x9F\x98\x80 \xE6\x97\xA5\xE6\x9C\xAC", "<|endoftext|>a", ""}) {
        const auto ids = tok.encode(text, false);
        EXPECT_EQ(tok.decode(ids), text);
    }
    EXPECT_EQ(tok.encode("<|endoftext|>", false), (std::vector<int32_t>{0}));
    EXPECT_LT(tok.encode("return out;", false).size(), std::string("return out;").size()); // merges apply
}

TEST(BpeTrainer, OptionsAreHonoured)
{
    BpeTrainerOptions opts;
    opts.vocabSize = 5000;
    opts.minFrequency = 1000000; // nothing is that frequent: alphabet only
    opts.specialTokens = {"<pad>", "<eos>"};
    const auto j = nlohmann::json::parse(trainByteLevelBpe({"aaaa bbbb aaaa"}, opts));
    EXPECT_EQ(j["model"]["vocab"].size(), 258u);
    EXPECT_TRUE(j["model"]["merges"].empty());
    EXPECT_EQ(j["model"]["vocab"]["<eos>"], 1);

    opts.vocabSize = 100;
    EXPECT_THROW(trainByteLevelBpe({"x"}, opts), Error);
    opts.vocabSize = 300;
    opts.specialTokens = {"a", "a"};
    EXPECT_THROW(trainByteLevelBpe({"x"}, opts), Error);
    opts.specialTokens = {};
    opts.minFrequency = 0;
    EXPECT_THROW(trainByteLevelBpe({"x"}, opts), Error);
    opts.minFrequency = 1;
    EXPECT_THROW(trainByteLevelBpe({"bad \xFF"}, opts), Error);
}

TEST(BpeTrainer, TrainsFourThousandTokensOnOneMegabyteQuickly)
{
    // About 1 MB of pseudo-words built from syllables (many distinct words, Zipf-like reuse),
    // mixed with lines of the real corpus.
    const std::vector<std::string> syllables = {"ka", "lo", "mi", "ne", "ru", "sa", "te", "vo", "zi", "pa", "qu", "ex",
                                                "on", "ar", "in", "st", "th", "ch", "ou", "ly", "ing", "ed", "er", "es"};
    const auto corpusLines = lines(trainingCorpus());
    std::vector<std::string> texts;
    uint32_t state = 12345;
    auto next = [&] {
        state = state * 1664525u + 1013904223u;
        return state >> 8;
    };
    size_t total = 0;
    while (total < 1'000'000) {
        std::string text;
        if (next() % 4 == 0) {
            text = corpusLines[next() % corpusLines.size()];
        } else {
            for (int w = 0; w < 12; ++w) {
                const uint32_t parts = 1 + next() % 4;
                for (uint32_t p = 0; p < parts; ++p)
                    text += syllables[((next() % syllables.size()) * (next() % 2) + next() % 3) % syllables.size()];
                text += (next() % 9 == 0) ? ", " : " ";
            }
            text += ".\n";
        }
        total += text.size();
        texts.push_back(std::move(text));
    }
    BpeTrainerOptions opts;
    opts.vocabSize = 4096;
    const auto start = std::chrono::steady_clock::now();
    const std::string json = trainByteLevelBpe(texts, opts);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    RecordProperty("train_seconds", std::to_string(seconds));
    std::printf("trained %zu bytes to 4096 tokens in %.2f s\n", total, seconds);
    EXPECT_LT(seconds, 20.0);
    const auto tok = Tokenizer::fromJson(json, "trained");
    EXPECT_EQ(tok.vocabSize(), 4096);
    EXPECT_EQ(tok.decode(tok.encode(texts[5], false)), texts[5]);
}
