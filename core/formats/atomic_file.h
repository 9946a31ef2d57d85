// Atomic file writes: write a temporary file in the same folder, flush it to disk, then
// rename it over the target, so readers never see half a file and a crash loses nothing.
#pragma once

#include <filesystem>
#include <string_view>

namespace archlens {

void writeFileAtomic(const std::filesystem::path& path, std::string_view bytes);

} // namespace archlens
