// archlens-cli route end to end on a tiny Mixtral with a tokenizer (tests/support/tiny_moe.h):
// CSV counts equal the top-k choices of an independent chunked forward, shares sum to one per
// layer, the HDF5 report holds the same loads and balance attributes (read back with h5py),
// and clear errors for a tokenizer whose ids do not fit the model or a model without one.
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <sstream>

#include <fmt/format.h>

#include "backends/backend.h"
#include "models/model.h"
#include "cli_runner.h"
#include "test_support.h"
#include "tiny_moe.h"
#include "tokenizer/tokenizer.h"

using namespace archlens;
namespace fs = std::filesystem;

namespace {

using test::CliResult;
using test::slurp;

CliResult run(const std::string& program, const std::vector<std::string>& args, const fs::path&)
{
    return test::runProgram(program, args);
}

class Route : public ::testing::Test {
protected:
    void SetUp() override
    {
        model = tmp.path() / "tiny-moe";
        test::writeTinyMoe(model, test::referenceCase("mixtral"));
        prose = tmp.path() / "prose.txt";
        std::string p, c;
        for (int i = 0; i < 12; ++i) {
            p += "The river ran quietly past the old mill, and the miller counted the sacks. ";
            c += fmt::format("for (int i = 0; i < {}; ++i) {{ total += values[i]; }}\n", i);
        }
        std::ofstream(prose) << p;
        fs::create_directories(tmp.path() / "code");
        std::ofstream(tmp.path() / "code" / "a.c") << c;
        std::ofstream(tmp.path() / "code" / "b.c") << c;
    }
    // Picks per (layer, expert) from our own chunked forward over the corpus text.
    std::map<std::pair<int, int>, int64_t> expected(const std::string& text, int64_t chunk)
    {
        auto m = loadModel(model, std::shared_ptr<Backend>(makeCpuReferenceBackend()));
        const Tokenizer tok = Tokenizer::fromFile(model / "tokenizer.json");
        const auto ids = tok.encode(text, false);
        std::map<std::pair<int, int>, int64_t> counts;
        for (size_t b = 0; b < ids.size(); b += size_t(chunk)) {
            const auto part = std::span(ids).subspan(b, std::min(ids.size() - b, size_t(chunk)));
            ProbeSelection sel;
            sel.probes = {Probe::MoeTopkExperts};
            test::CaptureSink cap(sel);
            auto st = m->newState();
            m->forward(part, *st, &cap, ForwardMode::Chunk, false);
            for (const auto& [layer, probe] : cap.keys()) {
                const Tensor* t = cap.get(layer, probe);
                for (int64_t i = 0; i < t->numel(); ++i)
                    ++counts[{layer, t->i32()[i]}];
            }
        }
        return counts;
    }
    test::TempDir tmp;
    fs::path model, prose;
};

} // namespace

TEST_F(Route, CsvCountsAreTheTopkChoicesOfEveryChunk)
{
    const fs::path csv = tmp.path() / "stats.csv";
    const auto r = run(ARCHLENS_CLI, {"route", "--model", model.string(), "--corpus", prose.string(), "--corpus",
                                      (tmp.path() / "code").string(), "--chunk", "64", "--backend", "cpu-reference",
                                      "--out", csv.string()},
                       tmp.path());
    ASSERT_EQ(r.rc, 0) << r.err;
    EXPECT_NE(r.out.find("layer 0: cv"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("top tokens"), std::string::npos) << r.out;
    std::istringstream in(slurp(csv));
    std::string line;
    std::getline(in, line);
    EXPECT_EQ(line, "corpus,layer,expert,count,share");
    std::map<std::string, std::map<std::pair<int, int>, int64_t>> got;
    std::map<std::pair<std::string, int>, double> shareSum;
    while (std::getline(in, line)) {
        std::vector<std::string> f;
        std::stringstream ls(line);
        for (std::string x; std::getline(ls, x, ',');)
            f.push_back(x);
        ASSERT_EQ(f.size(), 5u) << line;
        got[f[0]][{std::stoi(f[1]), std::stoi(f[2])}] = std::stoll(f[3]);
        shareSum[{f[0], std::stoi(f[1])}] += std::stod(f[4]);
    }
    ASSERT_EQ(got.size(), 2u);
    EXPECT_EQ(got["prose.txt"], expected(slurp(prose), 64));
    EXPECT_EQ(got["code"], expected(slurp(tmp.path() / "code" / "a.c") + slurp(tmp.path() / "code" / "b.c"), 64));
    for (const auto& [key, s] : shareSum)
        EXPECT_NEAR(s, 1.0, 1e-4) << key.first << " layer " << key.second;
}

#ifdef ARCHLENS_HAVE_HDF5
TEST_F(Route, Hdf5ReportHoldsLoadsAndBalanceAttributes)
{
    if (!fs::exists("/usr/bin/python3") || std::system("/usr/bin/python3 -c 'import h5py' 2>/dev/null") != 0)
        GTEST_SKIP() << "h5py (Debian python3-h5py) is not installed";
    const fs::path h5 = tmp.path() / "stats.h5";
    auto r = run(ARCHLENS_CLI, {"route", "--model", model.string(), "--corpus", prose.string(), "--out", h5.string()},
                 tmp.path());
    ASSERT_EQ(r.rc, 0) << r.err;
    const fs::path py = tmp.path() / "check.py";
    std::ofstream(py) << "import h5py, sys\n"
                         "f = h5py.File(sys.argv[1])\n"
                         "g = f['route/prose.txt']\n"
                         "print(g.attrs['tokens'], g.attrs['chunks'])\n"
                         "for l in sorted(g['layers'], key=int):\n"
                         "    d = g['layers'][l]['expert_load']\n"
                         "    a = g['layers'][l].attrs\n"
                         "    print(l, ','.join(str(int(x)) for x in d[...]), '%.6f %.6f %.6f %.6f' % (a['cv'], "
                         "a['max_violation'], a['mean_router_entropy'], a['load_balancing_loss']))\n";
    r = run("/usr/bin/python3", {py.string(), h5.string()}, tmp.path());
    ASSERT_EQ(r.rc, 0) << r.err;
    const auto want = expected(slurp(prose), 512);
    std::istringstream in(r.out);
    std::string line;
    std::getline(in, line);
    int layers = 0;
    while (std::getline(in, line)) {
        std::istringstream ls(line);
        int l;
        std::string loads;
        double cv, mv, ent, lbl;
        ls >> l >> loads >> cv >> mv >> ent >> lbl;
        std::vector<int64_t> counts;
        std::stringstream cs(loads);
        for (std::string x; std::getline(cs, x, ',');)
            counts.push_back(std::stoll(x));
        for (size_t e = 0; e < counts.size(); ++e)
            EXPECT_EQ(counts[e], want.count({l, int(e)}) ? want.at({l, int(e)}) : 0) << "layer " << l << " expert " << e;
        EXPECT_GE(cv, 0.0);
        EXPECT_GT(ent, 0.0);
        EXPECT_GT(lbl, 0.0);
        ++layers;
    }
    EXPECT_EQ(layers, 2);
}
#endif

TEST_F(Route, ClearErrors)
{
    // the reference Mixtral has no tokenizer and 91 vocabulary rows
    auto r = run(ARCHLENS_CLI, {"route", "--model", test::referenceCase("mixtral").string(), "--corpus", prose.string(),
                                "--out", (tmp.path() / "x.csv").string()},
                 tmp.path());
    EXPECT_EQ(r.rc, 1);
    EXPECT_NE(r.err.find("--tokenizer"), std::string::npos) << r.err;
    r = run(ARCHLENS_CLI, {"route", "--model", test::referenceCase("mixtral").string(), "--tokenizer",
                           (model / "tokenizer.json").string(), "--corpus", prose.string(), "--out",
                           (tmp.path() / "x.csv").string()},
            tmp.path());
    EXPECT_EQ(r.rc, 1);
    EXPECT_NE(r.err.find("outside the model's vocabulary (0..90)"), std::string::npos) << r.err;
    r = run(ARCHLENS_CLI, {"route", "--model", test::referenceCase("mamba_f32_tied").string(), "--tokenizer",
                           (model / "tokenizer.json").string(), "--corpus", prose.string(), "--out",
                           (tmp.path() / "x.csv").string()},
            tmp.path());
    EXPECT_EQ(r.rc, 1);
    EXPECT_NE(r.err.find("no mixture-of-experts"), std::string::npos) << r.err;
    EXPECT_FALSE(fs::exists(tmp.path() / "x.csv"));
}
