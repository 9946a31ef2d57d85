// The Hugging Face hub cache: models--{org}--{name}/snapshots/{revision}/ under
// $HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

namespace archlens {

std::filesystem::path hfHubCacheDir();

struct CachedModel {
    std::string repoId;    // "state-spaces/mamba-130m-hf"
    std::string revision;  // snapshot hash
    std::filesystem::path path;
};

// Every snapshot in the cache (newest first per repo is not guaranteed; sorted by repo id).
std::vector<CachedModel> listCachedModels(const std::filesystem::path& cacheDir = hfHubCacheDir());

// A folder as given, or "org/name" resolved through the cache (refs/main, else the only
// snapshot). Error(Io) when neither exists.
std::filesystem::path resolveModelPath(const std::string& spec);

// The snapshot hash when `path` lies in a cache's snapshots/ folder, else ''.
std::string cacheRevisionOf(const std::filesystem::path& path);

} // namespace archlens
