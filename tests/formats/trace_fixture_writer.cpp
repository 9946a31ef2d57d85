// Writes the deterministic fixture trace (trace_fixture.h) to argv[1], for check_trace_h5py.py.
#include <cstdio>

#include "trace_fixture.h"

int main(int argc, char** argv)
{
    if (argc != 2) {
        std::fprintf(stderr, "usage: %s OUT.h5\n", argv[0]);
        return 2;
    }
    try {
        archlens::fixture::write(argv[1]);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "trace_fixture_writer: %s\n", e.what());
        return 1;
    }
    return 0;
}
