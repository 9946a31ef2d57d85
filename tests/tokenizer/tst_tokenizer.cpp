// Unit tests of the tokenizer components and of bad-input handling. Expected values follow
// the Hugging Face tokenizers library (docs/model-formats.md section 10).
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "base/error.h"
#include "tokenizer/json_cursor.h"
#include "tokenizer/normalizers.h"
#include "tokenizer/onig_regex.h"
#include "tokenizer/pre_tokenizers.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/unicode.h"

using namespace archlens;
using Json = nlohmann::json;

namespace {

std::vector<std::string> texts(const std::vector<Piece>& pieces)
{
    std::vector<std::string> out;
    for (const auto& p : pieces)
        out.push_back(p.text);
    return out;
}

std::vector<std::string> preTokenize(const Json& config, const std::string& text, bool atStart = true)
{
    const std::string source = "test.json";
    const auto pre = PreTokenizer::fromJson(JsonCursor(config, "pre_tokenizer", source));
    std::vector<Piece> pieces{Piece{text, -1, atStart}};
    pre->preTokenize(pieces);
    return texts(pieces);
}

std::string normalizeWith(const Json& config, std::string text)
{
    const std::string source = "test.json";
    Normalizer::fromJson(JsonCursor(config, "normalizer", source))->normalize(text);
    return text;
}

Json split(const std::string& pattern, const std::string& behavior, bool invert = false, const char* kind = "String")
{
    return Json{{"type", "Split"}, {"pattern", {{kind, pattern}}}, {"behavior", behavior}, {"invert", invert}};
}

// A tiny BPE tokenizer: characters a..e, merges ab, bc, abc (via ab+c), de.
Json tinyTokenizer()
{
    Json vocab = {{"<unk>", 0}, {"a", 1}, {"b", 2}, {"c", 3}, {"d", 4}, {"e", 5}, {"ab", 6}, {"bc", 7}, {"abc", 8}, {"de", 9}, {" ", 10}};
    for (int b = 0; b < 256; ++b)
        vocab[fmt::format("<0x{:02X}>", b)] = 11 + b;
    return Json{{"version", "1.0"},
                {"added_tokens", Json::array()},
                {"normalizer", nullptr},
                {"pre_tokenizer", nullptr},
                {"post_processor", nullptr},
                {"decoder", nullptr},
                {"model", {{"type", "BPE"}, {"unk_token", "<unk>"}, {"fuse_unk", false}, {"byte_fallback", false},
                           {"vocab", vocab}, {"merges", Json::array({"b c", "a b", "ab c", "d e"})}}}};
}

std::vector<int32_t> encodeWith(const Json& j, const std::string& text, bool special = false)
{
    return Tokenizer::fromJson(j.dump(), "test.json").encode(text, special);
}

template <typename Fn>
Error expectError(Fn fn)
{
    try {
        fn();
    } catch (const Error& e) {
        return e;
    } catch (const std::exception& e) {
        ADD_FAILURE() << "threw a non-archlens exception: " << e.what();
        return Error(ErrorCode::Internal, "wrong exception");
    }
    ADD_FAILURE() << "no exception thrown";
    return Error(ErrorCode::Internal, "no exception");
}

Error loadError(const Json& j)
{
    return expectError([&] { Tokenizer::fromJson(j.dump(), "bad.json"); });
}

} // namespace

TEST(TokenizerUnicode, ByteLevelAlphabet)
{
    const auto& map = unicode::byteToChar();
    EXPECT_EQ(map[' '], 0x120u);
    EXPECT_EQ(map['\n'], 0x10Au);
    EXPECT_EQ(map[0x7F], 0x121u);
    EXPECT_EQ(map[0xAD], 0x143u);
    EXPECT_EQ(map['A'], static_cast<char32_t>('A'));
    for (int b = 0; b < 256; ++b)
        EXPECT_EQ(unicode::charToByte(map[static_cast<size_t>(b)]), b);
    EXPECT_EQ(unicode::charToByte(U' '), -1);
}

TEST(TokenizerUnicode, LossyDecodingReplacesMaximalSubparts)
{
    EXPECT_EQ(unicode::decodeLossy("ok"), "ok");
    EXPECT_EQ(unicode::decodeLossy("\xF0\x9F"), "\xEF\xBF\xBD");                    // truncated 4-byte
    EXPECT_EQ(unicode::decodeLossy("\xC0\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD");         // overlong
    EXPECT_EQ(unicode::decodeLossy("a\xE2\x82" "b"), "a\xEF\xBF\xBD" "b");
    EXPECT_EQ(unicode::decodeLossy("\xED\xA0\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD"); // surrogate
    EXPECT_EQ(unicode::findInvalidUtf8("h\xC3\xA9llo"), std::string::npos);
    EXPECT_EQ(unicode::findInvalidUtf8("ab\xFF"), 2u);
}

TEST(TokenizerUnicode, Normalization)
{
    EXPECT_EQ(unicode::normalize("e\xCC\x81", unicode::NormalForm::NFC), "\xC3\xA9");
    EXPECT_EQ(unicode::normalize("\xC3\xA9", unicode::NormalForm::NFD), "e\xCC\x81");
    EXPECT_EQ(unicode::normalize("\xEF\xAC\x81", unicode::NormalForm::NFKC), "fi");
    std::string lower;
    unicode::appendLowercase(lower, 0x130); // İ
    EXPECT_EQ(lower, "i\xCC\x87");
}

TEST(TokenizerRegex, IteratesLikeRustOnig)
{
    const OnigRegex gpt2(kGpt2SplitPattern, "test");
    std::vector<std::string> parts;
    const std::string text = "a   b's 12";
    for (const auto& [s, e] : gpt2.findAll(text))
        parts.push_back(text.substr(s, e - s));
    EXPECT_EQ(parts, (std::vector<std::string>{"a", "  ", " b", "'s", " 12"}));

    const OnigRegex empty("x*", "test");
    EXPECT_EQ(empty.findAll("ab"), (std::vector<std::pair<size_t, size_t>>{{0, 0}, {1, 1}, {2, 2}}));
    EXPECT_EQ(OnigRegex::literal("a.b", "test").findAll("axb a.b"), (std::vector<std::pair<size_t, size_t>>{{4, 7}}));
}

TEST(TokenizerPreTokenizer, SplitBehaviors)
{
    const std::string t = "the-final--countdown";
    using V = std::vector<std::string>;
    EXPECT_EQ(preTokenize(split("-", "Removed"), t), (V{"the", "final", "countdown"}));
    EXPECT_EQ(preTokenize(split("-", "Isolated"), t), (V{"the", "-", "final", "-", "-", "countdown"}));
    EXPECT_EQ(preTokenize(split("-", "MergedWithPrevious"), t), (V{"the-", "final-", "-", "countdown"}));
    EXPECT_EQ(preTokenize(split("-", "MergedWithNext"), t), (V{"the", "-final", "-", "-countdown"}));
    EXPECT_EQ(preTokenize(split("-", "Contiguous"), t), (V{"the", "-", "final", "--", "countdown"}));
    EXPECT_EQ(preTokenize(split("-", "Removed", true), t), (V{"-", "-", "-"}));
    EXPECT_EQ(preTokenize(split("[a-z]+", "Isolated", false, "Regex"), "ab12cd"), (V{"ab", "12", "cd"}));
}

TEST(TokenizerPreTokenizer, QwenAndLlama3Patterns)
{
    const std::string r3 = R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
    using V = std::vector<std::string>;
    EXPECT_EQ(preTokenize(split(r3, "Isolated", false, "Regex"), "I'M HERE"), (V{"I", "'M", " HERE"}));
    EXPECT_EQ(preTokenize(split(r3, "Isolated", false, "Regex"), "foo.bar()+= 3.14"),
              (V{"foo", ".bar", "()+=", " ", "3", ".", "14"}));
    // Oniguruma reads {1,3}+ as an unbounded repeat of the group.
    EXPECT_EQ(preTokenize(split(R"(\p{N}{1,3}+)", "Isolated", false, "Regex"), "12345678"), (V{"12345678"}));
}

TEST(TokenizerPreTokenizer, ByteLevelDigitsMetaspace)
{
    using V = std::vector<std::string>;
    const Json byteLevel = {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"use_regex", true}};
    EXPECT_EQ(preTokenize(byteLevel, "a   b"), (V{"\xC4\xA0" "a", "\xC4\xA0\xC4\xA0", "\xC4\xA0" "b"}));
    const Json noRegex = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", false}};
    EXPECT_EQ(preTokenize(noRegex, "a b\n"), (V{"a\xC4\xA0" "b\xC4\x8A"}));

    EXPECT_EQ(preTokenize(Json{{"type", "Digits"}, {"individual_digits", false}}, "Hey 123 friend!"), (V{"Hey ", "123", " friend!"}));
    EXPECT_EQ(preTokenize(Json{{"type", "Digits"}, {"individual_digits", true}}, "Hey 123"), (V{"Hey ", "1", "2", "3"}));

    const std::string m = "\xE2\x96\x81"; // ▁
    Json meta = {{"type", "Metaspace"}, {"replacement", m}, {"prepend_scheme", "always"}, {"split", true}};
    EXPECT_EQ(preTokenize(meta, "Hey  you"), (V{m + "Hey", m, m + "you"}));
    meta["split"] = false;
    EXPECT_EQ(preTokenize(meta, "Hey you"), (V{m + "Hey" + m + "you"}));
    meta["prepend_scheme"] = "first";
    EXPECT_EQ(preTokenize(meta, "Hey", true), (V{m + "Hey"}));
    EXPECT_EQ(preTokenize(meta, "Hey", false), (V{"Hey"}));
    meta["prepend_scheme"] = "never";
    EXPECT_EQ(preTokenize(meta, "Hey"), (V{"Hey"}));
}

TEST(TokenizerNormalizer, Components)
{
    const std::string m = "\xE2\x96\x81";
    const Json legacy = {{"type", "Sequence"}, {"normalizers", {{{"type", "Prepend"}, {"prepend", m}},
                                                                 {{"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", m}}}}};
    EXPECT_EQ(normalizeWith(legacy, "Hi there"), m + "Hi" + m + "there");
    EXPECT_EQ(normalizeWith(legacy, ""), ""); // Prepend skips empty segments
    EXPECT_EQ(normalizeWith(Json{{"type", "Lowercase"}}, "HeLLo \xC3\x89"), "hello \xC3\xA9");
    EXPECT_EQ(normalizeWith(Json{{"type", "Strip"}, {"strip_left", true}, {"strip_right", false}}, " \t x "), "x ");
    EXPECT_EQ(normalizeWith(Json{{"type", "NFC"}}, "e\xCC\x81"), "\xC3\xA9");
    EXPECT_EQ(normalizeWith(Json{{"type", "Replace"}, {"pattern", {{"Regex", "[0-9]+"}}}, {"content", "#"}}, "a12b3"), "a#b#");
    EXPECT_EQ(normalizeWith(Json{{"type", "StripAccents"}}, "e\xCC\x81"), "e");
}

TEST(TokenizerBpe, MergesByRankLeftmostFirst)
{
    const Json j = tinyTokenizer();
    EXPECT_EQ(encodeWith(j, "abc"), (std::vector<int32_t>{1, 7})); // "b c" has rank 0: a + bc
    EXPECT_EQ(encodeWith(j, "abab"), (std::vector<int32_t>{6, 6}));
    EXPECT_EQ(encodeWith(j, "dee"), (std::vector<int32_t>{9, 5}));
    Json arrays = j;
    arrays["model"]["merges"] = Json::array({Json::array({"a", "b"}), Json::array({"ab", "c"})});
    EXPECT_EQ(encodeWith(arrays, "abc"), (std::vector<int32_t>{8}));
    Json ignore = j;
    ignore["model"]["ignore_merges"] = true;
    EXPECT_EQ(encodeWith(ignore, "abc"), (std::vector<int32_t>{8}));
}

TEST(TokenizerBpe, UnknownCharacters)
{
    Json j = tinyTokenizer();
    EXPECT_EQ(encodeWith(j, "axxb"), (std::vector<int32_t>{1, 0, 0, 2}));
    j["model"]["fuse_unk"] = true;
    EXPECT_EQ(encodeWith(j, "axxb"), (std::vector<int32_t>{1, 0, 2}));
    j["model"]["byte_fallback"] = true;
    EXPECT_EQ(encodeWith(j, "a\xC3\xA9"), (std::vector<int32_t>{1, 11 + 0xC3, 11 + 0xA9}));
    j["model"]["byte_fallback"] = false;
    j["model"]["unk_token"] = nullptr;
    EXPECT_EQ(encodeWith(j, "axb"), (std::vector<int32_t>{6})); // no unk: dropped, then a+b merge
}

TEST(TokenizerAddedTokens, MatchingRules)
{
    Json j = tinyTokenizer();
    j["added_tokens"] = Json::array({
        {{"id", 300}, {"content", "<s>"}, {"special", true}, {"normalized", false}, {"single_word", false}, {"lstrip", false}, {"rstrip", false}},
        {{"id", 301}, {"content", "<L>"}, {"special", true}, {"normalized", false}, {"single_word", false}, {"lstrip", true}, {"rstrip", false}},
        {{"id", 302}, {"content", "<R>"}, {"special", true}, {"normalized", false}, {"single_word", false}, {"lstrip", false}, {"rstrip", true}},
        {{"id", 303}, {"content", "cab"}, {"special", false}, {"normalized", true}, {"single_word", true}, {"lstrip", false}, {"rstrip", false}},
    });
    const auto tok = Tokenizer::fromJson(j.dump(), "test.json");
    // Ids follow the reference: new added tokens are numbered after the vocab (267 entries).
    EXPECT_EQ(tok.tokenToId("<s>"), 267);
    EXPECT_EQ(tok.encode("a<s>b", false), (std::vector<int32_t>{1, 267, 2}));
    EXPECT_EQ(tok.encode("a  <L>b", false), (std::vector<int32_t>{1, 268, 2}));
    EXPECT_EQ(tok.encode("a<R>  b", false), (std::vector<int32_t>{1, 269, 2}));
    EXPECT_EQ(tok.encode("a cab b", false), (std::vector<int32_t>{1, 10, 270, 10, 2}));
    EXPECT_EQ(tok.encode("acab", false), (std::vector<int32_t>{1, 3, 6})); // not a single word
    EXPECT_TRUE(tok.isSpecial(267));
    EXPECT_FALSE(tok.isSpecial(270));
    EXPECT_FALSE(tok.isSpecial(1));
    EXPECT_EQ(tok.vocabSize(), 271);
    EXPECT_EQ(tok.decode(std::vector<int32_t>{1, 267, 2}, false), "a <s> b"); // no decoder: joined by spaces
    EXPECT_EQ(tok.decode(std::vector<int32_t>{1, 267, 2}, true), "a b");
    EXPECT_EQ(tok.idToToken(270), "cab");
    EXPECT_EQ(tok.idToToken(99999), std::nullopt);
    EXPECT_EQ(tok.decode(std::vector<int32_t>{99999, 1}), "a"); // unknown ids are skipped
}

TEST(TokenizerPipeline, TemplateDecodersAndCopies)
{
    const std::string m = "\xE2\x96\x81";
    Json j = tinyTokenizer();
    j["model"]["byte_fallback"] = true;
    j["model"]["vocab"][m] = 400;
    j["model"]["vocab"][m + "a"] = 401;
    j["model"]["merges"].push_back(m + " a");
    j["added_tokens"] = Json::array({{{"id", 500}, {"content", "<s>"}, {"special", true}, {"normalized", false}}});
    j["normalizer"] = {{"type", "Sequence"}, {"normalizers", {{{"type", "Prepend"}, {"prepend", m}},
                                                              {{"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", m}}}}};
    j["post_processor"] = {{"type", "TemplateProcessing"},
                           {"single", {{{"SpecialToken", {{"id", "<s>"}, {"type_id", 0}}}}, {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}}},
                           {"special_tokens", {{"<s>", {{"id", "<s>"}, {"ids", {269}}, {"tokens", {"<s>"}}}}}}};
    j["decoder"] = {{"type", "Sequence"}, {"decoders", {{{"type", "Replace"}, {"pattern", {{"String", m}}}, {"content", " "}},
                                                        {{"type", "ByteFallback"}}, {{"type", "Fuse"}},
                                                        {{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}}}}};
    const auto original = Tokenizer::fromJson(j.dump(), "test.json");
    const Tokenizer tok = original; // copies share the compiled state
    const auto ids = tok.encode("a b\xC3\xA9", true);
    EXPECT_EQ(ids, (std::vector<int32_t>{269, 401, 400, 2, 11 + 0xC3, 11 + 0xA9}));
    EXPECT_EQ(tok.encode("a", false), (std::vector<int32_t>{401}));
    EXPECT_EQ(original.decode(ids), "<s> a b\xC3\xA9"); // Strip only touches the fused string's start
    EXPECT_EQ(tok.decode(ids, true), "a b\xC3\xA9");
    EXPECT_EQ(tok.decode(std::vector<int32_t>{11 + 0xC3}), "\xEF\xBF\xBD"); // lone byte: U+FFFD
    EXPECT_EQ(tok.tokenText(11 + 0x41), "A");
    EXPECT_EQ(tok.encode("", true), (std::vector<int32_t>{269}));
    EXPECT_EQ(tok.tokenToId("<s>"), 269); // numbered after the 269 vocab entries
    EXPECT_EQ(tok.encode("", false), (std::vector<int32_t>{}));
}

TEST(TokenizerFiles, FromDirectoryAndMissingFile)
{
    const auto dir = std::filesystem::temp_directory_path() / "archlens_tst_tokenizer_dir";
    std::filesystem::create_directories(dir);
    std::ofstream(dir / "tokenizer.json") << tinyTokenizer().dump();
    EXPECT_EQ(Tokenizer::fromFile(dir).encode("ab", false), (std::vector<int32_t>{6}));
    std::filesystem::remove_all(dir);
    const Error e = expectError([&] { Tokenizer::fromFile(dir); });
    EXPECT_EQ(e.code(), ErrorCode::Io);
    EXPECT_NE(std::string(e.what()).find("tokenizer.json"), std::string::npos);
}

TEST(TokenizerErrors, MalformedInputNamesFileAndField)
{
    auto expectFormat = [](const Error& e, ErrorCode code, const std::string& needle) {
        EXPECT_EQ(e.code(), code) << e.what();
        EXPECT_NE(std::string(e.what()).find("bad.json"), std::string::npos) << e.what();
        EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    };
    expectFormat(expectError([] { Tokenizer::fromJson("{\"model\": ", "bad.json"); }), ErrorCode::Format, "not valid JSON");
    expectFormat(expectError([] { Tokenizer::fromJson("[1, 2]", "bad.json"); }), ErrorCode::Format, "expected an object");

    Json j = tinyTokenizer();
    j.erase("model");
    expectFormat(loadError(j), ErrorCode::Format, "field 'model': missing required field");

    j = tinyTokenizer();
    j["model"]["type"] = "WordPiece";
    expectFormat(loadError(j), ErrorCode::Unsupported, "model type 'WordPiece'");

    j = tinyTokenizer();
    j["normalizer"] = {{"type", "Precompiled"}};
    expectFormat(loadError(j), ErrorCode::Unsupported, "normalizer type 'Precompiled'");

    j = tinyTokenizer();
    j["pre_tokenizer"] = {{"type", "Sequence"}, {"pretokenizers", {{{"type", "Whitespace"}}}}};
    expectFormat(loadError(j), ErrorCode::Unsupported, "pre_tokenizer.pretokenizers[0].type");

    j = tinyTokenizer();
    j["decoder"] = {{"type", "WordPiece"}};
    expectFormat(loadError(j), ErrorCode::Unsupported, "decoder type 'WordPiece'");

    j = tinyTokenizer();
    j["post_processor"] = {{"type", "Mystery"}};
    expectFormat(loadError(j), ErrorCode::Unsupported, "post_processor type 'Mystery'");

    j = tinyTokenizer();
    j["model"]["merges"].push_back("c d");
    expectFormat(loadError(j), ErrorCode::Format, "merge result 'cd'");

    j = tinyTokenizer();
    j["model"]["merges"].push_back(Json::array({"a", "zz"}));
    expectFormat(loadError(j), ErrorCode::Format, "model.merges[4]");

    j = tinyTokenizer();
    j["model"]["merges"].push_back("a b c");
    expectFormat(loadError(j), ErrorCode::Format, "exactly one space");

    j = tinyTokenizer();
    j["model"]["merges"].push_back(42);
    expectFormat(loadError(j), ErrorCode::Format, "model.merges[4]");

    j = tinyTokenizer();
    j["model"]["vocab"]["a"] = "one";
    expectFormat(loadError(j), ErrorCode::Format, "expected an integer");

    j = tinyTokenizer();
    j["pre_tokenizer"] = split("(unclosed", "Isolated", false, "Regex");
    expectFormat(loadError(j), ErrorCode::Format, "invalid regex");

    j = tinyTokenizer();
    j["pre_tokenizer"] = split("-", "Sideways");
    expectFormat(loadError(j), ErrorCode::Format, "unknown split behavior 'Sideways'");

    j = tinyTokenizer();
    j["pre_tokenizer"] = {{"type", "Split"}, {"pattern", {{"String", "-"}}}, {"behavior", "Isolated"}};
    expectFormat(loadError(j), ErrorCode::Format, "pre_tokenizer.invert");

    j = tinyTokenizer();
    j["version"] = "2.0";
    expectFormat(loadError(j), ErrorCode::Version, "version");

    j = tinyTokenizer();
    j["post_processor"] = {{"type", "TemplateProcessing"},
                           {"single", {{{"SpecialToken", {{"id", "<bos>"}, {"type_id", 0}}}}}},
                           {"special_tokens", Json::object()}};
    expectFormat(loadError(j), ErrorCode::Format, "'<bos>' is not defined");

    j = tinyTokenizer();
    j["added_tokens"] = Json::array({{{"id", 1}, {"special", true}}});
    expectFormat(loadError(j), ErrorCode::Format, "added_tokens[0].content");

    j = tinyTokenizer();
    j["pre_tokenizer"] = {{"type", "Metaspace"}, {"replacement", "ab"}};
    expectFormat(loadError(j), ErrorCode::Format, "single character");
}

TEST(TokenizerErrors, EncodeTimeErrors)
{
    Json j = tinyTokenizer();
    j["model"]["unk_token"] = "<missing>";
    const auto tok = Tokenizer::fromJson(j.dump(), "bad.json");
    EXPECT_EQ(tok.encode("ab", false), (std::vector<int32_t>{6})); // fine until unk is needed
    const Error e = expectError([&] { tok.encode("axb", false); });
    EXPECT_EQ(e.code(), ErrorCode::Format);
    EXPECT_NE(std::string(e.what()).find("model.unk_token"), std::string::npos);
    EXPECT_EQ(expectError([&] { tok.encode("a\xFF", false); }).code(), ErrorCode::InvalidArgument);
}
