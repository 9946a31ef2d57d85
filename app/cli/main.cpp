// archlens-cli: the headless side of ArchLens (model facts, tokenizer, generation,
// HDF5 traces). Exit 0 on success; otherwise one line on stderr and a non-zero code.
#include <cstdio>

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

    archlens::setLogSink([](archlens::LogLevel level, const std::string& msg) {
        if (level >= archlens::LogLevel::Info)
            std::fprintf(stderr, "archlens-cli: %s\n", msg.c_str());
    });

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
    return 0;
}
