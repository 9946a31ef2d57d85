// archlens-cli: the headless side of ArchLens (model facts, tokenizer, generation,
// HDF5 traces). Exit 0 on success; otherwise one line on stderr and a non-zero code.
#include <cstdio>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "base/error.h"
#include "base/log.h"
#include "common.h"

int main(int argc, char** argv)
{
    CLI::App app{"ArchLens command-line tool: inspect, run and trace Hugging Face models"};
    app.set_version_flag("--version", std::string("archlens-cli ") + ARCHLENS_VERSION);
    app.require_subcommand(1);
    app.fallthrough(false);
    archlens::cli::addInfoCommand(app);
    archlens::cli::addTokenizeCommands(app);
    archlens::cli::addGenerateCommand(app);
    archlens::cli::addTraceCommand(app);
    archlens::cli::addInitModelCommand(app);
    archlens::cli::addBenchCommand(app);
    archlens::cli::addFigureCommand(app);
    archlens::cli::addTrainCommands(app);
    archlens::cli::addEvalCommand(app);
    archlens::cli::addFinetuneCommand(app);
    archlens::cli::addRouteCommand(app);

    // Notices (such as the backend fallback) are printed once the command has succeeded,
    // so a failure always ends with exactly one line on stderr: the reason.
    std::vector<std::string> notices;
    archlens::setLogSink([&notices](archlens::LogLevel level, const std::string& msg) {
        if (level >= archlens::LogLevel::Info)
            notices.push_back(msg);
    });

    if (argc > 1 && argv[1][0] != '-') {
        std::string known;
        bool found = false;
        for (const CLI::App* sub : app.get_subcommands({})) {
            known += (known.empty() ? "" : ", ") + sub->get_name();
            found = found || sub->get_name() == argv[1];
        }
        if (!found) {
            std::fprintf(stderr, "archlens-cli: unknown command '%s' (expected one of: %s)\n", argv[1], known.c_str());
            return 2;
        }
    }

    try {
        app.parse(argc, argv);
    } catch (const CLI::CallForHelp& e) {
        return app.exit(e);
    } catch (const CLI::CallForAllHelp& e) {
        return app.exit(e);
    } catch (const CLI::CallForVersion& e) {
        return app.exit(e);
    } catch (const CLI::ParseError& e) {
        std::fprintf(stderr, "archlens-cli: %s (see --help)\n", e.what());
        return 2;
    } catch (const archlens::Error& e) {
        std::fflush(stdout);
        std::fprintf(stderr, "archlens-cli: %s\n", e.what());
        return 1;
    } catch (const std::exception& e) {
        std::fflush(stdout);
        std::fprintf(stderr, "archlens-cli: unexpected error: %s\n", e.what());
        return 1;
    }
    std::fflush(stdout);
    for (const auto& n : notices)
        std::fprintf(stderr, "archlens-cli: %s\n", n.c_str());
    return 0;
}
