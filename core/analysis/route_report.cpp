#include "analysis/route_report.h"

#include <algorithm>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

#include "base/error.h"
#include "models/model.h"

namespace archlens::analysis {

std::vector<std::pair<std::filesystem::path, std::string>> readCorpus(const std::filesystem::path& path)
{
    namespace fs = std::filesystem;
    std::error_code ec;
    std::vector<fs::path> files;
    if (fs::is_directory(path, ec)) {
        for (auto it = fs::recursive_directory_iterator(path, ec); !ec && it != fs::recursive_directory_iterator();
             it.increment(ec)) {
            const std::string name = it->path().filename().string();
            if (!name.empty() && name[0] == '.') {
                if (it->is_directory())
                    it.disable_recursion_pending();
                continue;
            }
            if (it->is_regular_file())
                files.push_back(it->path());
        }
        std::sort(files.begin(), files.end());
    } else if (fs::is_regular_file(path, ec)) {
        files.push_back(path);
    } else {
        throw Error(ErrorCode::Io, "corpus not found (give a text file or a folder of text files)", path.string());
    }
    std::vector<std::pair<fs::path, std::string>> out;
    for (const auto& f : files) {
        std::ifstream in(f, std::ios::binary);
        if (!in)
            throw Error(ErrorCode::Io, "cannot read corpus file", f.string());
        std::ostringstream ss;
        ss << in.rdbuf();
        if (!ss.str().empty())
            out.emplace_back(f, ss.str());
    }
    if (out.empty())
        throw Error(ErrorCode::InvalidArgument, "the corpus holds no text", path.string());
    return out;
}

bool routeTokens(Model& model, std::span<const int32_t> ids, RouteAccumulator& acc, int64_t chunk,
                 const std::function<bool(int64_t, int64_t)>& progress)
{
    const ModelInfo& info = model.info();
    for (int32_t id : ids)
        if (id < 0 || id >= info.vocabRows)
            throw makeError(ErrorCode::InvalidArgument,
                            "token id {} is outside the model's vocabulary (0..{}): the tokenizer does not belong to "
                            "this model",
                            id, info.vocabRows - 1);
    if (chunk <= 0)
        chunk = kDefaultRouteChunk;
    const int64_t total = int64_t(ids.size());
    for (int64_t begin = 0; begin < total; begin += chunk) {
        const auto part = ids.subspan(size_t(begin), size_t(std::min(chunk, total - begin)));
        RoutingRecorder rec(false);
        auto state = model.newState();
        model.forward(part, *state, &rec, ForwardMode::Chunk, false);
        acc.add(rec.snapshot(), part);
        if (progress && !progress(begin + int64_t(part.size()), total))
            return false;
    }
    return true;
}

std::string routeCsv(const std::vector<NamedRoute>& corpora)
{
    std::string out = "corpus,layer,expert,count,share\n";
    for (const NamedRoute& c : corpora) {
        std::string name = c.name;
        if (name.find_first_of(",\"\n") != std::string::npos) {
            std::string q = "\"";
            for (char ch : name)
                q += ch == '"' ? std::string("\"\"") : std::string(1, ch);
            name = q + "\"";
        }
        for (const auto& [l, L] : c.route->layers()) {
            int64_t picks = 0;
            for (int64_t n : L.counts)
                picks += n;
            for (int64_t e = 0; e < L.experts; ++e)
                out += fmt::format("{},{},{},{},{:.6f}\n", name, l, e, L.counts[size_t(e)],
                                   picks > 0 ? double(L.counts[size_t(e)]) / double(picks) : 0.0);
        }
    }
    return out;
}

#ifndef ARCHLENS_HAVE_HDF5
void writeRouteH5(const std::filesystem::path& path, const std::vector<NamedRoute>&)
{
    throw Error(ErrorCode::Unsupported, "HDF5 output is unavailable in this build (configure with ARCHLENS_HDF5=ON)",
                path.string(), "write .csv instead");
}
RoutingData readRoutingTrace(const std::filesystem::path& path)
{
    throw Error(ErrorCode::Unsupported, "traces are unavailable in this build (configure with ARCHLENS_HDF5=ON)",
                path.string());
}
#endif

} // namespace archlens::analysis
