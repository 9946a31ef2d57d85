// Small string helpers shared by option parsers.
#pragma once

#include <string_view>
#include <vector>

namespace archlens {

// "a, b,c" -> {"a", "b", "c"}: split on commas, spaces around items trimmed. "" -> {""}.
std::vector<std::string_view> splitCommaList(std::string_view s);

} // namespace archlens
