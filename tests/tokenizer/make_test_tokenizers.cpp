// Writes the small tokenizer.json files the golden tests use (tests/tokenizer/data/): a
// byte-level BPE trained with trainByteLevelBpe, dressed up as GPT-NeoX, Qwen2/3, Llama-3 /
// DeepSeek-style Split pipelines, a Digits pipeline, and SentencePiece-style (Metaspace and
// legacy Prepend/Replace) files derived from the same merges.
// Usage: tokenizer_make_test_files <out_dir> <training text files...>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>
#include <sstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "tokenizer/bpe_trainer.h"
#include "tokenizer/unicode.h"

using archlens::BpeTrainerOptions;
using Json = nlohmann::ordered_json;

namespace {

const char* kQwenRegex = R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
const char* kLlama3Regex = R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
const char* kDeepSeekRegex = R"([!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+| ?[\p{P}\p{S}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

Json addedToken(int id, const std::string& content, bool special, bool normalized, bool singleWord = false,
                bool lstrip = false, bool rstrip = false)
{
    return Json{{"id", id}, {"content", content}, {"single_word", singleWord}, {"lstrip", lstrip},
                {"rstrip", rstrip}, {"normalized", normalized}, {"special", special}};
}

Json split(const std::string& kind, const std::string& pattern, const std::string& behavior, bool invert)
{
    return Json{{"type", "Split"}, {"pattern", {{kind, pattern}}}, {"behavior", behavior}, {"invert", invert}};
}

Json byteLevel(bool prefix, bool regex)
{
    return Json{{"type", "ByteLevel"}, {"add_prefix_space", prefix}, {"trim_offsets", false}, {"use_regex", regex}};
}

Json templateBos(const std::string& bos, int id, bool eos = false, const std::string& eosToken = {}, int eosId = 0)
{
    Json single = Json::array({Json{{"SpecialToken", {{"id", bos}, {"type_id", 0}}}}, Json{{"Sequence", {{"id", "A"}, {"type_id", 0}}}}});
    Json specials = {{bos, {{"id", bos}, {"ids", {id}}, {"tokens", {bos}}}}};
    if (eos) {
        single.push_back(Json{{"SpecialToken", {{"id", eosToken}, {"type_id", 0}}}});
        specials[eosToken] = {{"id", eosToken}, {"ids", {eosId}}, {"tokens", {eosToken}}};
    }
    return Json{{"type", "TemplateProcessing"}, {"single", single}, {"pair", single}, {"special_tokens", specials}};
}

// Byte-level tokens back to text; nullopt when the bytes are not valid UTF-8 on their own.
std::optional<std::string> byteLevelToText(const std::string& token)
{
    std::string bytes;
    for (size_t pos = 0; pos < token.size();) {
        size_t len = 0;
        const int b = archlens::unicode::charToByte(archlens::unicode::decodeAt(token, pos, &len));
        if (b < 0)
            return std::nullopt;
        bytes.push_back(static_cast<char>(b));
        pos += len;
    }
    if (archlens::unicode::findInvalidUtf8(bytes) != std::string::npos)
        return std::nullopt;
    return bytes;
}

// A SentencePiece-style model (▁ for space, <0xHH> byte fallback) from a byte-level one.
Json sentencePieceModel(const Json& byteModel, bool byteFallback, bool fuseUnk)
{
    Json vocab = Json::object();
    int next = 0;
    for (const char* s : {"<unk>", "<s>", "</s>"})
        vocab[s] = next++;
    if (byteFallback)
        for (int b = 0; b < 256; ++b)
            vocab[fmt::format("<0x{:02X}>", b)] = next++;
    auto convert = [](const std::string& t) -> std::optional<std::string> {
        auto text = byteLevelToText(t);
        if (!text)
            return std::nullopt;
        std::string out;
        for (char c : *text) {
            if (c == ' ')
                out += "\xE2\x96\x81";
            else
                out.push_back(c);
        }
        return out;
    };
    for (const auto& [token, id] : byteModel["vocab"].items()) {
        auto t = convert(token);
        if (t && !vocab.contains(*t) && t->rfind("<|", 0) != 0)
            vocab[*t] = next++;
    }
    Json merges = Json::array();
    for (const auto& m : byteModel["merges"]) {
        auto a = convert(m[0].get<std::string>());
        auto b = convert(m[1].get<std::string>());
        if (a && b && vocab.contains(*a) && vocab.contains(*b) && vocab.contains(*a + *b))
            merges.push_back(*a + " " + *b); // legacy "a b" form on purpose: tokens have no spaces
    }
    return Json{{"type", "BPE"}, {"dropout", nullptr}, {"unk_token", "<unk>"}, {"continuing_subword_prefix", nullptr},
                {"end_of_word_suffix", nullptr}, {"fuse_unk", fuseUnk}, {"byte_fallback", byteFallback},
                {"ignore_merges", false}, {"vocab", vocab}, {"merges", merges}};
}

void write(const std::filesystem::path& dir, const std::string& name, const Json& j)
{
    std::ofstream out(dir / name, std::ios::binary);
    out << j.dump(1, ' ', false) << "\n";
    std::cout << "wrote " << (dir / name).string() << "\n";
}

} // namespace

int main(int argc, char** argv)
{
    if (argc < 3) {
        std::cerr << "usage: tokenizer_make_test_files <out_dir> <training text files...>\n";
        return 2;
    }
    const std::filesystem::path outDir = argv[1];
    std::vector<std::string> texts;
    for (int i = 2; i < argc; ++i) {
        std::ifstream in(argv[i], std::ios::binary);
        std::stringstream ss;
        ss << in.rdbuf();
        texts.push_back(ss.str());
    }

    BpeTrainerOptions opts;
    opts.vocabSize = 1500;
    opts.minFrequency = 2;
    opts.specialTokens = {"<|endoftext|>", "<|padding|>"};
    const Json base = Json::parse(archlens::trainByteLevelBpe(texts, opts));
    write(outDir, "trained_bpe.json", base);

    // GPT-NeoX: NFC, ByteLevel, and 23 added non-special runs of spaces (24 down to 2).
    {
        Json j = base;
        int id = static_cast<int>(j["model"]["vocab"].size());
        for (int n = 24; n >= 2; --n)
            j["added_tokens"].push_back(addedToken(id++, std::string(static_cast<size_t>(n), ' '), false, true));
        write(outDir, "neox_style.json", j);
    }
    // Qwen2/3: NFC, Split(RQ) + ByteLevel(use_regex false); a non-special <think>.
    {
        Json j = base;
        j["pre_tokenizer"] = Json{{"type", "Sequence"}, {"pretokenizers", {split("Regex", kQwenRegex, "Isolated", false), byteLevel(false, false)}}};
        j["post_processor"] = byteLevel(false, false);
        j["decoder"] = byteLevel(false, false);
        int id = static_cast<int>(j["model"]["vocab"].size());
        j["added_tokens"].push_back(addedToken(id++, "<|im_start|>", true, false));
        j["added_tokens"].push_back(addedToken(id++, "<|im_end|>", true, false));
        j["added_tokens"].push_back(addedToken(id++, "<think>", false, false));
        j["added_tokens"].push_back(addedToken(id++, "</think>", false, false));
        write(outDir, "qwen_style.json", j);
    }
    // Llama-3: no normalizer, Split(R3) + ByteLevel, ignore_merges, BOS template in a Sequence.
    {
        Json j = base;
        j["normalizer"] = nullptr;
        j["model"]["ignore_merges"] = true;
        j["pre_tokenizer"] = Json{{"type", "Sequence"}, {"pretokenizers", {split("Regex", kLlama3Regex, "Isolated", false), byteLevel(false, false)}}};
        j["post_processor"] = Json{{"type", "Sequence"}, {"processors", {byteLevel(false, true), templateBos("<|endoftext|>", 0)}}};
        write(outDir, "llama3_style.json", j);
    }
    // DeepSeek-V3: digits in groups of three, CJK runs, then RD; lstrip/rstrip/single_word tokens.
    {
        Json j = base;
        j["pre_tokenizer"] = Json{{"type", "Sequence"}, {"pretokenizers", {
            split("Regex", R"(\p{N}{1,3})", "Isolated", false),
            split("Regex", "[一-龥぀-ゟ゠-ヿ]+", "Isolated", false),
            split("Regex", kDeepSeekRegex, "Isolated", false),
            byteLevel(false, false)}}};
        int id = static_cast<int>(j["model"]["vocab"].size());
        j["added_tokens"].push_back(addedToken(id++, "<mask>", true, false, false, true, false));
        j["added_tokens"].push_back(addedToken(id++, "<sep>", true, false, false, false, true));
        j["added_tokens"].push_back(addedToken(id++, "word", false, false, true));
        j["added_tokens"].push_back(addedToken(id++, "Hello", false, true, false));
        write(outDir, "deepseek_style.json", j);
    }
    // Digits + every Split behavior, invert, a Lowercase/NFKC/Strip/Replace normalizer chain and
    // a TemplateProcessing with BOS and EOS.
    {
        Json j = base;
        j["normalizer"] = Json{{"type", "Sequence"}, {"normalizers", {
            Json{{"type", "NFKC"}}, Json{{"type", "Lowercase"}},
            Json{{"type", "Replace"}, {"pattern", {{"Regex", "[0-9]{4,}"}}}, {"content", "####"}},
            Json{{"type", "Strip"}, {"strip_left", false}, {"strip_right", true}}}}};
        j["pre_tokenizer"] = Json{{"type", "Sequence"}, {"pretokenizers", {
            Json{{"type", "Digits"}, {"individual_digits", true}},
            split("String", "-", "MergedWithPrevious", false),
            split("String", "::", "MergedWithNext", false),
            split("Regex", R"(\s+)", "Contiguous", false),
            split("Regex", R"([\p{L}\p{N}]+)", "Isolated", true),
            split("String", "~", "Removed", false),
            byteLevel(true, false)}}};
        j["post_processor"] = templateBos("<|endoftext|>", 0, true, "<|padding|>", 1);
        write(outDir, "digits_splits.json", j);
    }
    // Split variants on their own: Removed with invert, Contiguous digits, MergedWithNext regex.
    {
        Json j = base;
        j["normalizer"] = nullptr;
        j["pre_tokenizer"] = Json{{"type", "Sequence"}, {"pretokenizers", {
            Json{{"type", "Digits"}, {"individual_digits", false}},
            split("Regex", R"(\s)", "MergedWithNext", false),
            split("Regex", R"([.,;:!?])", "MergedWithPrevious", true),
            split("Regex", "[^x]+", "Removed", true),
            byteLevel(true, true)}}};
        write(outDir, "split_invert.json", j);
    }
    // SentencePiece-style, legacy form: Prepend + Replace normalizer, no pre-tokenizer.
    const Json spAdded = Json::array({addedToken(0, "<unk>", true, false), addedToken(1, "<s>", true, false),
                                      addedToken(2, "</s>", true, false)});
    const Json spDecoderLegacy = Json{{"type", "Sequence"}, {"decoders", {
        Json{{"type", "Replace"}, {"pattern", {{"String", "▁"}}}, {"content", " "}},
        Json{{"type", "ByteFallback"}}, Json{{"type", "Fuse"}},
        Json{{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}}}}};
    {
        Json j = Json{{"version", "1.0"}, {"truncation", nullptr}, {"padding", nullptr}, {"added_tokens", spAdded}};
        j["normalizer"] = Json{{"type", "Sequence"}, {"normalizers", {
            Json{{"type", "Prepend"}, {"prepend", "▁"}},
            Json{{"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", "▁"}}}}};
        j["pre_tokenizer"] = nullptr;
        j["post_processor"] = templateBos("<s>", 1);
        j["decoder"] = spDecoderLegacy;
        j["model"] = sentencePieceModel(base["model"], true, true);
        write(outDir, "sp_legacy.json", j);
    }
    // SentencePiece-style, Metaspace form (prepend_scheme first, split true) plus a
    // non-byte-fallback variant with unk (fuse_unk false) and prepend_scheme always, no split.
    {
        Json j = Json{{"version", "1.0"}, {"truncation", nullptr}, {"padding", nullptr}, {"added_tokens", spAdded}};
        j["normalizer"] = nullptr;
        j["pre_tokenizer"] = Json{{"type", "Metaspace"}, {"replacement", "▁"}, {"prepend_scheme", "first"}, {"split", true}};
        j["post_processor"] = templateBos("<s>", 1);
        j["decoder"] = Json{{"type", "Sequence"}, {"decoders", {
            Json{{"type", "ByteFallback"}},
            Json{{"type", "Metaspace"}, {"replacement", "▁"}, {"prepend_scheme", "first"}, {"split", true}}}}};
        j["model"] = sentencePieceModel(base["model"], true, true);
        write(outDir, "sp_metaspace.json", j);

        j["pre_tokenizer"] = Json{{"type", "Metaspace"}, {"replacement", "▁"}, {"prepend_scheme", "always"}, {"split", false}};
        j["decoder"] = Json{{"type", "Metaspace"}, {"replacement", "▁"}, {"prepend_scheme", "always"}, {"split", false}};
        j["model"] = sentencePieceModel(base["model"], false, false);
        write(outDir, "sp_metaspace_unk.json", j);
    }
    return 0;
}
