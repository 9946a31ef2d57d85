// Runs a program (usually archlens-cli) the way a user's shell would, capturing its exit
// status, stdout and stderr separately.
#pragma once

#include <sys/wait.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "test_support.h"

namespace archlens::test {

struct CliResult {
    int rc = -1;
    std::string out, err;
};

inline std::string slurp(const std::filesystem::path& p)
{
    std::ifstream in(p, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

inline std::string shellQuote(const std::string& s)
{
    std::string q = "'";
    for (char c : s)
        q += c == '\'' ? std::string("'\\''") : std::string(1, c);
    return q + "'";
}

inline CliResult runProgram(const std::string& program, const std::vector<std::string>& args)
{
    static TempDir tmp;
    std::string cmd = shellQuote(program);
    for (const auto& a : args)
        cmd += " " + shellQuote(a);
    const std::filesystem::path out = tmp.path() / "out.txt", err = tmp.path() / "err.txt";
    cmd += " >" + shellQuote(out.string()) + " 2>" + shellQuote(err.string()) + " </dev/null";
    const int status = std::system(cmd.c_str());
    return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, slurp(out), slurp(err)};
}

// archlens-cli of this build
inline CliResult cli(const std::vector<std::string>& args) { return runProgram(ARCHLENS_CLI, args); }

} // namespace archlens::test
