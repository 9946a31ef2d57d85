// Small helpers shared by the bench subcommands.
#pragma once

#include <algorithm>
#include <vector>

#include "base/log.h"
#include "base/sysinfo.h"

namespace archlens::cli {

struct Stats {
    double min = 0, median = 0;
    static Stats of(std::vector<double> v)
    {
        Stats s;
        if (v.empty())
            return s;
        std::sort(v.begin(), v.end());
        s.min = v.front();
        const size_t n = v.size();
        s.median = n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
        return s;
    }
};

} // namespace archlens::cli
