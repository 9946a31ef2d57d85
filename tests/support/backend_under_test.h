// The backends the cross-backend tests run, as factories: every CPU instruction-set level
// of the fast backend (forced, with one thread and with an odd thread count so partitions
// are uneven), and CUDA. A factory that cannot make its backend here says why, and the
// test is skipped with that reason ("not supported" and "no device" are never passes).
// A new backend adds a row to backendsUnderTest().
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "backends/backend.h"
#include "backends/backend_factory.h"
#include "base/error.h"

namespace archlens::test {

struct BackendUnderTest {
    std::string label; // gtest-safe: letters, digits, underscores
    std::string kind; // createBackend kind
    BackendOptions options;

    // The backend, or null with `why` set when it cannot run on this machine.
    std::shared_ptr<Backend> make(std::string& why) const
    {
        try {
            BackendChoice c = createBackend(kind, options);
            if (!c.notice.empty()) { // an "auto" that fell back is not the backend asked for
                why = c.notice;
                return nullptr;
            }
            return c.backend;
        } catch (const Error& e) {
            why = e.what();
            return nullptr;
        }
    }
};

inline std::vector<BackendUnderTest> backendsUnderTest()
{
    std::vector<BackendUnderTest> out;
    for (const char* isa : { "scalar", "avx2", "avx512" })
        for (int threads : { 1, 3 })
            out.push_back(
                { std::string("cpu_") + isa + "_t" + std::to_string(threads), "cpu", { threads, false, isa } });
    out.push_back({ "cuda", "cuda", {} });
    return out;
}

} // namespace archlens::test
