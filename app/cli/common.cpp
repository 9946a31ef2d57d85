#include "common.h"

#include <charconv>
#include <fstream>
#include <sstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "base/error.h"
#include "base/strings.h"

namespace archlens::cli {

namespace fs = std::filesystem;

std::vector<int32_t> parseIds(const std::string& spec, const char* option)
{
    std::vector<int32_t> ids;
    if (spec.empty())
        return ids;
    for (std::string_view item : splitCommaList(spec)) {
        int64_t v = 0;
        auto [ptr, ec] = std::from_chars(item.data(), item.data() + item.size(), v);
        if (item.empty() || ec != std::errc() || ptr != item.data() + item.size() || v < 0 || v > INT32_MAX)
            throw makeError(ErrorCode::InvalidArgument, "{}: '{}' is not a token id (expected e.g. 1,2,3)", option, item);
        ids.push_back(int32_t(v));
    }
    return ids;
}

std::string readFileBytes(const fs::path& path)
{
    std::ifstream in(path, std::ios::binary);
    if (!in)
        throw Error(ErrorCode::Io, "cannot open file", path.string());
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

std::optional<Tokenizer> tokenizerForModel(const fs::path& modelDir)
{
    std::error_code ec;
    if (fs::exists(modelDir / "tokenizer.json", ec))
        return Tokenizer::fromFile(modelDir / "tokenizer.json");
    return std::nullopt;
}

std::string tokenDisplay(const std::optional<Tokenizer>& tok, int32_t id)
{
    if (tok && id < tok->vocabSize())
        return tok->tokenText(id);
    return fmt::format("#{}", id);
}

std::string modelCardLabel(const fs::path& modelDir)
{
    std::error_code ec;
    if (!fs::exists(modelDir / "archlens_card.json", ec))
        return {};
    try {
        const auto card = nlohmann::json::parse(readFileBytes(modelDir / "archlens_card.json"));
        if (card.value("trained", true) == false)
            return card.value("label", std::string("untrained"));
    } catch (const nlohmann::json::exception&) {
        // a damaged card only loses its label; the model itself is validated elsewhere
    }
    return {};
}

std::string humanBytes(uint64_t bytes)
{
    const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double v = double(bytes);
    int u = 0;
    while (v >= 1024.0 && u < 4) {
        v /= 1024.0;
        ++u;
    }
    return u == 0 ? fmt::format("{} B", bytes) : fmt::format("{:.2f} {}", v, units[u]);
}

std::string humanCount(int64_t n)
{
    if (n >= 1'000'000'000)
        return fmt::format("{:.2f}B", double(n) / 1e9);
    if (n >= 1'000'000)
        return fmt::format("{:.2f}M", double(n) / 1e6);
    if (n >= 1'000)
        return fmt::format("{:.1f}K", double(n) / 1e3);
    return std::to_string(n);
}

} // namespace archlens::cli
