// HDF5 traces: round trips through TraceWriter/TraceReader, atomic writing, typed errors on bad
// files (with nothing printed to stderr) and the size estimate against what was written.
#include <gtest/gtest.h>

#include <hdf5.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <functional>
#include <thread>

#include "formats/trace.h"
#include "trace_fixture.h"

namespace archlens {
namespace {

namespace fs = std::filesystem;
namespace fx = fixture;

class TraceTest : public ::testing::Test {
protected:
    void SetUp() override
    {
        const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
        m_dir = fs::temp_directory_path() /
                fmt::format("archlens_tst_trace_{}_{}_{}", getpid(), info->test_suite_name(), info->name());
        fs::remove_all(m_dir);
        fs::create_directories(m_dir);
    }
    void TearDown() override
    {
        std::error_code ec;
        fs::remove_all(m_dir, ec);
    }

    fs::path path(const std::string& name) const { return m_dir / name; }

    std::vector<std::string> filesInDir() const
    {
        std::vector<std::string> out;
        for (const auto& e : fs::directory_iterator(m_dir))
            out.push_back(e.path().filename().string());
        std::sort(out.begin(), out.end());
        return out;
    }

    fs::path writeFixture(const std::string& name = "trace.h5") const
    {
        const fs::path p = path(name);
        fx::write(p);
        return p;
    }

    // Runs `f` on a new thread with stderr captured and expects nothing printed. HDF5 is built
    // thread-safe here, so its error-printing switch is per thread: a fresh thread starts with
    // printing on, as the writer thread of a session would.
    static void expectSilentOnFreshThread(const std::function<void()>& f)
    {
        ::testing::internal::CaptureStderr();
        std::thread(f).join();
        EXPECT_EQ(::testing::internal::GetCapturedStderr(), "");
    }

    // Opens `p` expecting an Error of `code` whose message contains `needle`; nothing on stderr.
    static void expectOpenError(const fs::path& p, ErrorCode code, const std::string& needle)
    {
        expectSilentOnFreshThread([&] {
            bool threw = false;
            try {
                TraceReader::open(p);
            } catch (const Error& e) {
                threw = true;
                EXPECT_EQ(e.code(), code) << e.what();
                EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
                EXPECT_NE(std::string(e.what()).find(p.filename().string()), std::string::npos) << e.what();
            }
            EXPECT_TRUE(threw) << "no error opening " << p;
        });
    }

    // Edits a finished trace with the HDF5 C API (the damage a reader must detect).
    static void edit(const fs::path& p, const std::function<void(hid_t)>& f)
    {
        H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr); // the test's own edits stay quiet too
        const hid_t file = H5Fopen(p.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
        ASSERT_GE(file, 0);
        f(file);
        ASSERT_GE(H5Fclose(file), 0);
    }

    static void replaceWithFloats(hid_t file, const char* dsPath, const std::vector<hsize_t>& dims)
    {
        ASSERT_GE(H5Ldelete(file, dsPath, H5P_DEFAULT), 0);
        const hid_t space = H5Screate_simple(int(dims.size()), dims.data(), nullptr);
        const hid_t ds = H5Dcreate2(file, dsPath, H5T_IEEE_F32LE, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        ASSERT_GE(ds, 0);
        H5Dclose(ds);
        H5Sclose(space);
    }

    fs::path m_dir;
};

void expectTensorEq(const Tensor& got, const Tensor& want, const std::string& what)
{
    ASSERT_EQ(got.shape(), want.shape()) << what;
    ASSERT_EQ(got.dtype(), want.dtype()) << what;
    ASSERT_EQ(std::memcmp(got.raw(), want.raw(), want.nbytes()), 0) << what;
}

// ---- round trips ------------------------------------------------------------------------------

TEST_F(TraceTest, AppendsAcrossRecordCallsAndReadsBackEqual)
{
    const TraceReader r = TraceReader::open(writeFixture());
    ASSERT_EQ(r.tokens().size(), size_t(fx::kT));
    for (int64_t t = 0; t < fx::kT; ++t)
        EXPECT_EQ(r.tokens()[size_t(t)], fx::tokenId(t));
    ASSERT_EQ(r.tokenText().size(), size_t(fx::kT));
    EXPECT_EQ(r.tokenText()[0], "tok0");
    EXPECT_EQ(r.tokenText()[1], "caf\xC3\xA9");
    EXPECT_EQ(r.tokenText()[2], "\xEF\xBF\xBD"); // invalid UTF-8 became U+FFFD

    Tensor logits = Tensor::empty({fx::kT, fx::kV});
    for (int64_t t = 0; t < fx::kT; ++t)
        for (int64_t v = 0; v < fx::kV; ++v)
            logits.f32()[t * fx::kV + v] = fx::logit(t, v);
    expectTensorEq(r.read("/logits"), logits, "/logits");

    EXPECT_EQ(r.layers(), (std::vector<int>{0, 2}));
    for (int layer : fx::kLayers) {
        for (Probe p : allProbes()) {
            const std::string ds = fmt::format("/layers/{}/{}/{}", layer, probeGroup(p), probeLeaf(p));
            ASSERT_TRUE(r.has(ds)) << ds;
            expectTensorEq(r.read(ds), fx::probeTensor(layer, p, 0, fx::kT), ds);
        }
        expectTensorEq(r.read(fmt::format("/layers/{}/ssm/A", layer)), fx::aTensor(), "A");
        expectTensorEq(r.read(fmt::format("/layers/{}/ssm/D", layer)), fx::dTensor(), "D");
        const auto names = r.datasets(layer);
        EXPECT_EQ(names.size(), size_t(kProbeCount + 2));
        EXPECT_NE(std::find(names.begin(), names.end(), "ssm/state"), names.end());
        EXPECT_NE(std::find(names.begin(), names.end(), "ssm/A"), names.end());
    }
    EXPECT_FALSE(r.has("/layers/1/ssm/x"));
    EXPECT_TRUE(r.datasets(1).empty());

    // A slice of rows without reading the rest.
    const Tensor rows = r.readRows("/layers/2/ssm/state", 4, 6);
    expectTensorEq(rows, fx::probeTensor(2, Probe::SsmState, 4, 6), "state rows 4..6");
    EXPECT_EQ(r.shape("/layers/2/ssm/state"), (Shape{fx::kT, fx::kE, fx::kN}));
}

TEST_F(TraceTest, AttributesRoundTrip)
{
    const TraceReader r = TraceReader::open(writeFixture());
    const TraceMeta want = fx::meta();
    const TraceMeta& got = r.meta();
    EXPECT_EQ(got.schemaVersion, kTraceSchemaVersion);
    EXPECT_EQ(got.modelType, want.modelType);
    EXPECT_EQ(got.architecture, want.architecture);
    EXPECT_EQ(got.backend, want.backend);
    EXPECT_EQ(got.weightDType, want.weightDType);
    EXPECT_EQ(got.computeDType, want.computeDType);
    EXPECT_EQ(got.prompt, want.prompt);
    EXPECT_EQ(got.promptLength, want.promptLength);
    EXPECT_EQ(got.seed, want.seed);
    EXPECT_EQ(got.modelPath, want.modelPath);
    EXPECT_EQ(got.revision, want.revision);
    EXPECT_EQ(got.created, want.created);

    EXPECT_EQ(r.attribute("model_type"), "mamba");
    EXPECT_EQ(r.attribute("seed"), "1234");
    EXPECT_EQ(r.attribute("kv_cache_bytes_per_token"), "0");
    EXPECT_EQ(r.attribute("temperature"), "0.5");
    EXPECT_EQ(r.attribute("no_such_attribute"), "");
    EXPECT_EQ(r.attributeStrings("layer_mixer"), (std::vector<std::string>{"mamba", "mamba", "mamba"}));
    EXPECT_TRUE(r.attributeStrings("no_such_attribute").empty());
}

TEST_F(TraceTest, CreatedIsFilledInAndGreedySeedAndIdsPromptKept)
{
    TraceMeta m = fx::meta();
    m.created.clear();
    m.prompt.clear();
    m.seed = -1;
    const fs::path p = path("t.h5");
    {
        TraceWriter w(p, m, {});
        w.setAttribute("layer_mixer", std::vector<std::string>{});
        w.setAttribute("backend_note", "first");
        w.setAttribute("backend_note", "second"); // replaces
        w.finish();
    }
    const TraceReader r = TraceReader::open(p);
    EXPECT_EQ(r.meta().prompt, "");
    EXPECT_EQ(r.meta().seed, -1);
    const std::string& c = r.meta().created;
    ASSERT_EQ(c.size(), 20u) << c; // 2024-05-01T12:00:00Z
    EXPECT_EQ(c[4], '-');
    EXPECT_EQ(c[10], 'T');
    EXPECT_EQ(c.back(), 'Z');
    EXPECT_TRUE(r.tokens().empty());
    EXPECT_TRUE(r.layers().empty());
    EXPECT_EQ(r.attribute("backend_note"), "second");
    EXPECT_TRUE(r.attributeStrings("layer_mixer").empty());
}

TEST_F(TraceTest, HalfPrecisionIsWidenedToFloat32)
{
    ProbeSelection sel;
    sel.probes = {Probe::SsmDelta, Probe::SsmB};
    const fs::path p = path("half.h5");
    const Tensor delta = fx::probeTensor(0, Probe::SsmDelta, 0, 3);
    const Tensor b = fx::probeTensor(0, Probe::SsmB, 0, 3);
    {
        TraceWriter w(p, fx::meta(), sel);
        w.record(0, Probe::SsmDelta, 0, delta.toDType(DType::F16));
        w.record(0, Probe::SsmB, 0, b.toDType(DType::BF16));
        w.appendTokens({1, 2, 3}, {});
        w.finish();
    }
    const TraceReader r = TraceReader::open(p);
    expectTensorEq(r.read("/layers/0/ssm/delta"), delta.toDType(DType::F16).toF32(), "delta");
    expectTensorEq(r.read("/layers/0/ssm/B"), b.toDType(DType::BF16).toF32(), "B");
    EXPECT_EQ(r.tokenText(), (std::vector<std::string>{"#1", "#2", "#3"}));
    EXPECT_FALSE(r.has("/logits"));
}

TEST_F(TraceTest, WholeProbesAreOverwrittenAndResized)
{
    ProbeSelection sel;
    sel.probes = {Probe::MoeExpertLoad, Probe::AttnWeights};
    const fs::path p = path("whole.h5");
    {
        TraceWriter w(p, fx::meta(), sel);
        w.record(1, Probe::MoeExpertLoad, 0, Tensor::zeros({5}, DType::I64));
        w.record(1, Probe::MoeExpertLoad, 0, fx::probeTensor(1, Probe::MoeExpertLoad, 0, 1)); // [X=3]
        w.record(1, Probe::AttnWeights, 0, fx::probeTensor(1, Probe::AttnWeights, 0, 4));
        w.record(1, Probe::AttnWeights, 4, fx::probeTensor(1, Probe::AttnWeights, 0, 5));
        w.record(1, Probe::AttnWeights, 5, fx::probeTensor(1, Probe::AttnWeights, 0, 2)); // shrinks too
        EXPECT_THROW(w.record(1, Probe::MoeExpertLoad, 0, Tensor::zeros({3}, DType::I32)), Error); // dtype
        w.appendTokens({7, 8}, {"a", "b"});
        w.finish();
    }
    const TraceReader r = TraceReader::open(p);
    expectTensorEq(r.read("/layers/1/moe/expert_load"), fx::probeTensor(1, Probe::MoeExpertLoad, 0, 1), "load");
    EXPECT_EQ(r.read("/layers/1/moe/expert_load").dtype(), DType::I64);
    expectTensorEq(r.read("/layers/1/attn/weights"), fx::probeTensor(1, Probe::AttnWeights, 0, 2), "attn");
}

TEST_F(TraceTest, AttentionRowsOfDecodingStepsExtendTheMatrix)
{
    ProbeSelection sel;
    sel.probes = {Probe::AttnWeights};
    const fs::path p = path("attn_steps.h5");
    const int64_t H = 2, T = 5, prefill = 3;
    // the full causal matrix, then recorded as a prefill block and single-row steps
    Tensor full = Tensor::zeros({H, T, T});
    for (int64_t h = 0; h < H; ++h)
        for (int64_t i = 0; i < T; ++i)
            for (int64_t j = 0; j <= i; ++j)
                full.f32()[(h * T + i) * T + j] = float(h * 100 + i * 10 + j + 1);
    auto block = [&](int64_t begin, int64_t end) {
        Tensor b = Tensor::empty({H, end - begin, end});
        for (int64_t h = 0; h < H; ++h)
            for (int64_t i = begin; i < end; ++i)
                for (int64_t j = 0; j < end; ++j)
                    b.f32()[(h * (end - begin) + (i - begin)) * end + j] = full.f32()[(h * T + i) * T + j];
        return b;
    };
    {
        TraceWriter w(p, fx::meta(), sel);
        w.record(0, Probe::AttnWeights, 0, block(0, prefill));
        for (int64_t t = prefill; t < T; ++t)
            w.record(0, Probe::AttnWeights, t, block(t, t + 1));
        w.appendTokens({1, 2, 3, 4, 5}, {});
        w.finish();
    }
    const TraceReader r = TraceReader::open(p);
    expectTensorEq(r.read("/layers/0/attn/weights"), full, "attn");
}

TEST_F(TraceTest, ConstantsOnlyWithTheirGroupAndOnce)
{
    ProbeSelection sel;
    sel.layers = {0, 1};
    sel.probes = {Probe::SsmY};
    const fs::path p = path("const.h5");
    {
        TraceWriter w(p, fx::meta(), sel);
        w.recordConstant(0, "ssm", "A", fx::aTensor()); // held until an ssm probe of layer 0 is written
        w.recordConstant(1, "ssm", "A", fx::aTensor()); // layer 1 never records ssm.y: dropped
        w.recordConstant(3, "ssm", "A", fx::aTensor()); // layer 3 not selected: ignored
        w.record(0, Probe::SsmY, 0, fx::probeTensor(0, Probe::SsmY, 0, 2));
        w.record(0, Probe::SsmX, 0, fx::probeTensor(0, Probe::SsmX, 0, 2)); // not selected: ignored
        w.recordConstant(0, "ssm", "A", Tensor::zeros({fx::kE, fx::kN})); // already written: ignored
        w.recordConstant(0, "ssm", "D", fx::dTensor());                    // written now
        w.appendTokens({1, 2}, {});
        w.finish();
    }
    const TraceReader r = TraceReader::open(p);
    expectTensorEq(r.read("/layers/0/ssm/A"), fx::aTensor(), "A");
    expectTensorEq(r.read("/layers/0/ssm/D"), fx::dTensor(), "D");
    EXPECT_FALSE(r.has("/layers/0/ssm/x"));
    EXPECT_FALSE(r.has("/layers/1/ssm/A"));
    EXPECT_FALSE(r.has("/layers/3/ssm/A"));
    EXPECT_EQ(r.layers(), (std::vector<int>{0}));
}

TEST_F(TraceTest, LargeStateChunksStayNearOneMegabyte)
{
    // mamba-2.8b: E = 5120, N = 16, so one token of ssm.state is 320 KiB.
    ProbeSelection sel;
    sel.probes = {Probe::SsmState, Probe::SsmDelta};
    const int64_t E = 5120, N = 16;
    const fs::path p = path("big.h5");
    {
        TraceWriter w(p, fx::meta(), sel);
        for (int64_t t = 0; t < 4; ++t) {
            Tensor s = Tensor::empty({1, E, N});
            for (int64_t i = 0; i < E * N; ++i)
                s.f32()[i] = float(t * 7 + i % 13);
            w.record(0, Probe::SsmState, t, s);
            w.record(0, Probe::SsmDelta, t, Tensor::zeros({1, E}));
            w.appendTokens({int32_t(t)}, {});
        }
        w.finish();
    }
    const hid_t file = H5Fopen(p.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
    ASSERT_GE(file, 0);
    for (const char* ds : {"/layers/0/ssm/state", "/layers/0/ssm/delta"}) {
        const hid_t d = H5Dopen2(file, ds, H5P_DEFAULT);
        const hid_t dcpl = H5Dget_create_plist(d);
        hsize_t chunk[3] = {0, 0, 0};
        const int rank = H5Pget_chunk(dcpl, 3, chunk);
        size_t bytes = 4;
        for (int i = 0; i < rank; ++i)
            bytes *= chunk[i];
        EXPECT_LE(bytes, size_t(1) << 20) << ds;
        EXPECT_GE(bytes, size_t(1) << 19) << ds;
        EXPECT_LE(chunk[0], 64u) << ds;
        EXPECT_GT(H5Pget_nfilters(dcpl), 0) << ds;
        hsize_t maxDims[3] = {0, 0, 0};
        const hid_t space = H5Dget_space(d);
        H5Sget_simple_extent_dims(space, nullptr, maxDims);
        EXPECT_EQ(maxDims[0], H5S_UNLIMITED) << ds;
        H5Sclose(space);
        H5Pclose(dcpl);
        H5Dclose(d);
    }
    H5Fclose(file);
    const TraceReader r = TraceReader::open(p);
    const Tensor row = r.readRows("/layers/0/ssm/state", 3, 4);
    EXPECT_EQ(row.shape(), (Shape{1, E, N}));
    EXPECT_EQ(row.f32()[0], 21.f);
    EXPECT_EQ(row.f32()[E * N - 1], float(21 + (E * N - 1) % 13));
}

TEST_F(TraceTest, ShapeChangesBetweenRecordsAreErrors)
{
    ProbeSelection sel;
    sel.probes = {Probe::SsmDelta};
    TraceWriter w(path("x.h5"), fx::meta(), sel);
    w.record(0, Probe::SsmDelta, 0, Tensor::zeros({2, fx::kE}));
    try {
        w.record(0, Probe::SsmDelta, 2, Tensor::zeros({1, fx::kE + 1}));
        FAIL() << "no error";
    } catch (const Error& e) {
        EXPECT_EQ(e.code(), ErrorCode::Shape);
        EXPECT_NE(std::string(e.what()).find("ssm.delta"), std::string::npos) << e.what();
    }
    EXPECT_THROW(w.record(0, Probe::SsmDelta, 2, Tensor::zeros({1, fx::kE}, DType::I32)), Error);
    EXPECT_THROW(w.appendTokens({1, 2}, {"only one"}), Error);
    EXPECT_THROW(w.appendLogits(0, Tensor::zeros({fx::kV})), Error);
}

// ---- atomic writing ---------------------------------------------------------------------------

TEST_F(TraceTest, NothingAtPathBeforeFinishAndNoTempAfter)
{
    const fs::path p = path("atomic.h5");
    TraceWriter w(p, fx::meta(), fx::selection());
    fx::recordChunk(w, 0, 3);
    EXPECT_FALSE(fs::exists(p));
    const auto during = filesInDir();
    ASSERT_EQ(during.size(), 1u);
    EXPECT_EQ(during[0].rfind("atomic.h5.tmp-", 0), 0u) << during[0];
    w.finish();
    EXPECT_EQ(filesInDir(), (std::vector<std::string>{"atomic.h5"}));
    EXPECT_EQ(TraceReader::open(p).tokens().size(), 3u);
}

TEST_F(TraceTest, FinishReplacesAnExistingFile)
{
    const fs::path p = path("again.h5");
    std::ofstream(p) << "old contents";
    {
        TraceWriter w(p, fx::meta(), {});
        EXPECT_TRUE(fs::exists(p));
        w.appendTokens({5}, {"x"});
        w.finish();
    }
    EXPECT_EQ(TraceReader::open(p).tokens(), (std::vector<int32_t>{5}));
    EXPECT_EQ(filesInDir().size(), 1u);
}

TEST_F(TraceTest, DestroyedWithoutFinishLeavesNothing)
{
    {
        TraceWriter w(path("cancel.h5"), fx::meta(), fx::selection());
        fx::recordChunk(w, 0, fx::kPrefill);
        EXPECT_EQ(filesInDir().size(), 1u);
    }
    EXPECT_TRUE(filesInDir().empty());
}

TEST_F(TraceTest, ExceptionMidwayLeavesNothing)
{
    try {
        TraceWriter w(path("throw.h5"), fx::meta(), fx::selection());
        fx::recordChunk(w, 0, 2);
        w.record(0, Probe::SsmState, 2, Tensor::zeros({1, fx::kE, fx::kN + 1})); // throws Error(Shape)
        w.finish();
        FAIL() << "no error";
    } catch (const Error& e) {
        EXPECT_EQ(e.code(), ErrorCode::Shape);
    }
    EXPECT_TRUE(filesInDir().empty());
}

TEST_F(TraceTest, RaggedTokenRowsFailFinishAndLeaveNothing)
{
    ProbeSelection sel;
    sel.probes = {Probe::SsmY};
    try {
        TraceWriter w(path("ragged.h5"), fx::meta(), sel);
        w.record(0, Probe::SsmY, 0, Tensor::zeros({3, fx::kE}));
        w.appendTokens({1, 2}, {});
        w.finish();
        FAIL() << "no error";
    } catch (const Error& e) {
        EXPECT_EQ(e.code(), ErrorCode::InvalidArgument);
        EXPECT_NE(std::string(e.what()).find("/layers/0/ssm/y"), std::string::npos) << e.what();
    }
    EXPECT_TRUE(filesInDir().empty());
}

TEST_F(TraceTest, UnwritableFolderIsIoError)
{
    expectSilentOnFreshThread([&] {
        try {
            TraceWriter w(path("no/such/folder/t.h5"), fx::meta(), {});
            FAIL() << "no error";
        } catch (const Error& e) {
            EXPECT_EQ(e.code(), ErrorCode::Io);
            EXPECT_NE(std::string(e.what()).find("t.h5"), std::string::npos) << e.what();
        }
    });
}

// ---- bad inputs -------------------------------------------------------------------------------

TEST_F(TraceTest, NonexistentFileIsIo) { expectOpenError(path("missing.h5"), ErrorCode::Io, "no such file"); }

TEST_F(TraceTest, FolderIsIo)
{
    fs::create_directories(path("folder.h5"));
    expectOpenError(path("folder.h5"), ErrorCode::Io, "folder");
}

TEST_F(TraceTest, TextFileIsFormat)
{
    std::ofstream(path("notes.h5")) << "these are not the bytes you are looking for\n";
    expectOpenError(path("notes.h5"), ErrorCode::Format, "not an HDF5 file");
}

TEST_F(TraceTest, EmptyFileIsFormat)
{
    std::ofstream(path("empty.h5")).flush();
    expectOpenError(path("empty.h5"), ErrorCode::Format, "not an HDF5 file");
}

TEST_F(TraceTest, TruncatedFileIsFormat)
{
    const fs::path good = writeFixture();
    std::ifstream in(good, std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    ASSERT_GT(bytes.size(), 1000u);
    std::ofstream(path("half.h5"), std::ios::binary) << bytes.substr(0, bytes.size() / 2);
    expectOpenError(path("half.h5"), ErrorCode::Format, "truncated");
}

TEST_F(TraceTest, WrongSchemaVersionIsVersion)
{
    TraceMeta m = fx::meta();
    m.schemaVersion = 99;
    const fs::path p = path("future.h5");
    {
        TraceWriter w(p, m, {});
        w.finish();
    }
    expectOpenError(p, ErrorCode::Version, fmt::format("schema_version 99, this build reads schema_version {}",
                                                       kTraceSchemaVersion));
}

TEST_F(TraceTest, MissingRootAttributeIsFormat)
{
    const fs::path p = writeFixture();
    edit(p, [](hid_t f) { ASSERT_GE(H5Adelete(f, "backend"), 0); });
    expectOpenError(p, ErrorCode::Format, "'backend'");
}

TEST_F(TraceTest, MissingSchemaVersionIsFormat)
{
    const fs::path p = writeFixture();
    edit(p, [](hid_t f) { ASSERT_GE(H5Adelete(f, "schema_version"), 0); });
    expectOpenError(p, ErrorCode::Format, "schema_version");
}

TEST_F(TraceTest, MissingTokensIsFormat)
{
    const fs::path p = writeFixture();
    edit(p, [](hid_t f) { ASSERT_GE(H5Ldelete(f, "/tokens", H5P_DEFAULT), 0); });
    expectOpenError(p, ErrorCode::Format, "/tokens");
}

TEST_F(TraceTest, MisShapedLogitsIsFormat)
{
    const fs::path p = writeFixture();
    edit(p, [](hid_t f) { replaceWithFloats(f, "/logits", {fx::kT * fx::kV}); });
    expectOpenError(p, ErrorCode::Format, "/logits");

    const fs::path q = writeFixture("rows.h5");
    edit(q, [](hid_t f) { replaceWithFloats(f, "/logits", {fx::kT + 1, fx::kV}); });
    expectOpenError(q, ErrorCode::Format, "/logits");
}

TEST_F(TraceTest, LayerProbeWithWrongTokenRowsIsFormat)
{
    const fs::path p = writeFixture();
    edit(p, [](hid_t f) { replaceWithFloats(f, "/layers/2/ssm/delta", {fx::kT - 1, fx::kE}); });
    expectOpenError(p, ErrorCode::Format, "/layers/2/ssm/delta has 6 token rows but /tokens has 7");
}

TEST_F(TraceTest, LayerProbeDisagreeingWithAIsFormat)
{
    const fs::path p = writeFixture();
    edit(p, [](hid_t f) { replaceWithFloats(f, "/layers/0/ssm/state", {fx::kT, fx::kE, fx::kN + 1}); });
    expectOpenError(p, ErrorCode::Format, "/layers/0/ssm/state has N=5 but /layers/0/ssm/A has N=4");

    const fs::path q = writeFixture("rank.h5");
    edit(q, [](hid_t f) { replaceWithFloats(f, "/layers/0/ssm/B", {fx::kT}); });
    expectOpenError(q, ErrorCode::Format, "/layers/0/ssm/B");
}

TEST_F(TraceTest, UnknownDatasetsAreIgnored)
{
    const fs::path p = writeFixture();
    edit(p, [](hid_t f) {
        const hsize_t n = 3;
        const hid_t space = H5Screate_simple(1, &n, nullptr);
        for (const char* name : {"/extra", "/layers/0/ssm/notes"})
            H5Dclose(H5Dcreate2(f, name, H5T_IEEE_F32LE, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
        H5Gclose(H5Gcreate2(f, "/layers/scratch", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
        H5Sclose(space);
    });
    const TraceReader r = TraceReader::open(p);
    EXPECT_EQ(r.layers(), (std::vector<int>{0, 2}));
    EXPECT_TRUE(r.has("/extra"));
    EXPECT_EQ(r.read("/extra").shape(), (Shape{3}));
}

TEST_F(TraceTest, ReadingAMissingDatasetIsFormatNamingFileAndPath)
{
    const TraceReader r = TraceReader::open(writeFixture());
    expectSilentOnFreshThread([&] {
        try {
            r.read("/layers/9/ssm/delta");
            FAIL() << "no error";
        } catch (const Error& e) {
            EXPECT_EQ(e.code(), ErrorCode::Format);
            EXPECT_NE(std::string(e.what()).find("/layers/9/ssm/delta"), std::string::npos) << e.what();
            EXPECT_NE(std::string(e.what()).find("trace.h5"), std::string::npos) << e.what();
        }
        EXPECT_THROW(r.read("/token_text"), Error); // strings are not tensors
        EXPECT_THROW(r.readRows("/logits", 3, 99), Error);
        EXPECT_FALSE(r.has("/layers/9/ssm/delta"));
    });
}

// ---- size estimate ----------------------------------------------------------------------------

TEST_F(TraceTest, EstimateMatchesWrittenElementCounts)
{
    const TraceReader r = TraceReader::open(writeFixture());
    uint64_t written = r.tokens().size() * (4 + kTraceTokenTextBytes);
    auto add = [&](const std::string& ds) {
        const Tensor t = r.read(ds);
        written += t.nbytes();
    };
    add("/logits");
    for (int layer : r.layers())
        for (const std::string& rel : r.datasets(layer))
            add(fmt::format("/layers/{}/{}", layer, rel));
    EXPECT_EQ(estimateTraceBytes(fx::dims(), fx::selection(), fx::kLayerCount), written);
}

TEST(TraceEstimate, CountsEachPart)
{
    TraceDims d;
    d.tokens = 100;
    d.vocab = 50280;
    d.dInner = 5120;
    d.dState = 16;
    const uint64_t base = 100 * (4 + kTraceTokenTextBytes) + 100ull * 50280 * 4;
    EXPECT_EQ(estimateTraceBytes(d, {}, 64), base);

    ProbeSelection state;
    state.probes = {Probe::SsmState};
    state.layers = {3};
    const uint64_t ad = 5120ull * 16 * 4 + 5120 * 4;
    EXPECT_EQ(estimateTraceBytes(d, state, 64), base + 100ull * 5120 * 16 * 4 + ad);
    state.layers.clear(); // every layer
    EXPECT_EQ(estimateTraceBytes(d, state, 64), base + 64 * (100ull * 5120 * 16 * 4 + ad));

    // moe and attn probes of a model without experts or heads cost nothing.
    ProbeSelection moe;
    moe.probes = {Probe::MoeRouterEntropy, Probe::AttnWeights};
    EXPECT_EQ(estimateTraceBytes(d, moe, 4), base);
    d.experts = 8;
    d.heads = 2;
    EXPECT_EQ(estimateTraceBytes(d, moe, 4), base + 4 * (100 * 4 + 2ull * 100 * 100 * 4));
}

} // namespace
} // namespace archlens
