// archlens-cli: the headless recorder. Subcommands are added as the core grows.
#include <cstdio>
#include <cstring>

int main(int argc, char** argv)
{
    if (argc < 2 || std::strcmp(argv[1], "--help") == 0) {
        std::printf("usage: archlens-cli <command> [options]\n");
        return argc < 2 ? 2 : 0;
    }
    std::fprintf(stderr, "archlens-cli: unknown command '%s'\n", argv[1]);
    return 2;
}
