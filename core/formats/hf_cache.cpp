#include "formats/hf_cache.h"

#include <algorithm>
#include <cstdlib>
#include <fstream>

#include "base/error.h"

namespace archlens {

namespace fs = std::filesystem;

fs::path hfHubCacheDir()
{
    if (const char* v = std::getenv("HF_HUB_CACHE"); v && *v)
        return v;
    if (const char* v = std::getenv("HF_HOME"); v && *v)
        return fs::path(v) / "hub";
    if (const char* v = std::getenv("XDG_CACHE_HOME"); v && *v)
        return fs::path(v) / "huggingface" / "hub";
    const char* home = std::getenv("HOME");
    return fs::path(home ? home : ".") / ".cache" / "huggingface" / "hub";
}

static std::string repoIdFromFolder(const std::string& folder)
{
    // models--org--name -> org/name (names cannot contain "--" at the org boundary twice)
    std::string rest = folder.substr(8);
    const size_t sep = rest.find("--");
    if (sep == std::string::npos)
        return rest;
    return rest.substr(0, sep) + "/" + rest.substr(sep + 2);
}

std::vector<CachedModel> listCachedModels(const fs::path& cacheDir)
{
    std::vector<CachedModel> out;
    std::error_code ec;
    if (!fs::is_directory(cacheDir, ec))
        return out;
    for (const auto& repo : fs::directory_iterator(cacheDir, ec)) {
        const std::string name = repo.path().filename().string();
        if (name.rfind("models--", 0) != 0)
            continue;
        const fs::path snaps = repo.path() / "snapshots";
        if (!fs::is_directory(snaps, ec))
            continue;
        for (const auto& snap : fs::directory_iterator(snaps, ec))
            if (fs::exists(snap.path() / "config.json", ec))
                out.push_back({repoIdFromFolder(name), snap.path().filename().string(), snap.path()});
    }
    std::sort(out.begin(), out.end(), [](const CachedModel& a, const CachedModel& b) {
        return a.repoId != b.repoId ? a.repoId < b.repoId : a.revision < b.revision;
    });
    return out;
}

fs::path resolveModelPath(const std::string& spec)
{
    std::error_code ec;
    if (fs::is_directory(spec, ec))
        return fs::path(spec);
    const size_t slash = spec.find('/');
    if (slash != std::string::npos && spec.find('/', slash + 1) == std::string::npos && spec[0] != '.') {
        std::string folder = "models--" + spec.substr(0, slash) + "--" + spec.substr(slash + 1);
        const fs::path repo = hfHubCacheDir() / folder;
        std::ifstream ref(repo / "refs" / "main");
        std::string rev;
        if (ref && std::getline(ref, rev) && fs::is_directory(repo / "snapshots" / rev, ec))
            return repo / "snapshots" / rev;
        std::vector<fs::path> snaps;
        for (const auto& e : fs::directory_iterator(repo / "snapshots", ec))
            snaps.push_back(e.path());
        if (snaps.size() == 1)
            return snaps.front();
    }
    throw Error(ErrorCode::Io, "no such model folder, and not found in the Hugging Face cache", spec,
                "give a folder with config.json, or an org/name that is in " + hfHubCacheDir().string());
}

std::string cacheRevisionOf(const fs::path& path)
{
    std::error_code ec;
    fs::path p = fs::weakly_canonical(path, ec);
    if (ec)
        p = path;
    if (p.filename().empty())
        p = p.parent_path();
    if (p.parent_path().filename() == "snapshots" && p.parent_path().parent_path().filename().string().rfind("models--", 0) == 0)
        return p.filename().string();
    return {};
}

} // namespace archlens
