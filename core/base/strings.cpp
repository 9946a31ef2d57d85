#include "base/strings.h"

namespace archlens {

std::vector<std::string_view> splitCommaList(std::string_view s)
{
    std::vector<std::string_view> out;
    size_t start = 0;
    while (start <= s.size()) {
        size_t end = s.find(',', start);
        if (end == std::string_view::npos)
            end = s.size();
        std::string_view item = s.substr(start, end - start);
        while (!item.empty() && item.front() == ' ')
            item.remove_prefix(1);
        while (!item.empty() && item.back() == ' ')
            item.remove_suffix(1);
        out.push_back(item);
        start = end + 1;
    }
    return out;
}

} // namespace archlens
