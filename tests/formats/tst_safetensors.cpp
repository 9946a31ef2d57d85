// Tests for the safetensors reader, sharded Checkpoint and writer: round trips, files laid
// out by hand the way foreign writers do (unpadded, unaligned), one case per validation rule
// of model-formats.md §2.3, sharded index errors, and lazy loading of a sparse multi-GB file.
#include "formats/safetensors.h"

#include <chrono>
#include <cstring>
#include <fstream>
#include <optional>
#include <random>

#include <unistd.h>

#include <gtest/gtest.h>

namespace archlens {
namespace {

namespace fs = std::filesystem;

class SafetensorsTest : public ::testing::Test {
protected:
    void SetUp() override
    {
        const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
        m_dir = fs::temp_directory_path()
            / fmt::format("archlens-tst-st-{}-{}-{}", ::getpid(), info->test_suite_name(), info->name());
        fs::remove_all(m_dir);
        fs::create_directories(m_dir);
    }
    void TearDown() override { fs::remove_all(m_dir); }

    fs::path dir() const { return m_dir; }

    // A file as a foreign writer would lay it out: `headerLen` defaults to the header's size.
    fs::path writeRaw(const std::string& name, const std::string& header, const std::string& data = {},
        std::optional<uint64_t> headerLen = std::nullopt) const
    {
        const fs::path p = m_dir / name;
        std::ofstream out(p, std::ios::binary);
        const uint64_t n = headerLen.value_or(header.size());
        out.write(reinterpret_cast<const char*>(&n), 8);
        out.write(header.data(), std::streamsize(header.size()));
        out.write(data.data(), std::streamsize(data.size()));
        return p;
    }

    fs::path writeBytes(const std::string& name, const std::string& bytes) const
    {
        const fs::path p = m_dir / name;
        std::ofstream out(p, std::ios::binary);
        out.write(bytes.data(), std::streamsize(bytes.size()));
        return p;
    }

    // Expects SafetensorsFile::open(p) to throw Error(code) whose what() names the file and
    // contains `expect`.
    static void expectOpenError(const fs::path& p, const std::string& expect, ErrorCode code = ErrorCode::Format)
    {
        try {
            SafetensorsFile::open(p);
            ADD_FAILURE() << "no error for " << p << ", expected '" << expect << "'";
        } catch (const Error& e) {
            EXPECT_EQ(e.code(), code) << e.what();
            EXPECT_NE(std::string(e.what()).find(p.string()), std::string::npos) << e.what();
            EXPECT_NE(std::string(e.what()).find(expect), std::string::npos) << e.what();
        }
    }

    static std::string tensorEntry(
        const std::string& name, const std::string& dtype, const std::string& shape, uint64_t begin, uint64_t end)
    {
        return fmt::format(
            R"("{}":{{"dtype":"{}","shape":{},"data_offsets":[{},{}]}})", name, dtype, shape, begin, end);
    }

private:
    fs::path m_dir;
};

template <typename T> std::string bytesOf(const std::vector<T>& v)
{
    return std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(T));
}

Tensor makeTensor(const Shape& shape, DType dtype, uint32_t seed)
{
    std::mt19937 rng(seed);
    std::uniform_real_distribution<float> dist(-4.f, 4.f);
    std::vector<float> values(size_t(shapeNumel(shape)));
    for (float& v : values)
        v = dist(rng);
    return Tensor::fromVector(shape, values).toDType(dtype);
}

bool sameBytes(const Tensor& a, const Tensor& b)
{
    return a.dtype() == b.dtype() && a.shape() == b.shape()
        && (a.nbytes() == 0 || std::memcmp(a.raw(), b.raw(), a.nbytes()) == 0);
}

// ---- valid files -----------------------------------------------------------------------

TEST_F(SafetensorsTest, RoundTripAllDTypesAndShapes)
{
    std::vector<std::pair<std::string, Tensor>> tensors = {
        {"f32.matrix", makeTensor({3, 5}, DType::F32, 1)},
        {"f16.odd", makeTensor({7}, DType::F16, 2)}, // odd byte count: would misalign what follows by name
        {"bf16.cube", makeTensor({2, 3, 4}, DType::BF16, 3)},
        {"i32.ids", Tensor::fromVectorI32({4}, {1, -2, 3, 2147483647})},
        {"i64.counts", makeTensor({3}, DType::I64, 4)},
        {"scalar.f32", Tensor::fromVector({}, {42.5f})},
        {"scalar.bf16", Tensor::fromVector({}, {-1.5f}).toDType(DType::BF16)},
        {"empty.f32", Tensor::zeros({0, 4}, DType::F32)},
        {"empty.i64", Tensor::zeros({2, 0}, DType::I64)},
        {"a.f16", makeTensor({1}, DType::F16, 5)},
    };
    const fs::path p = dir() / "model.safetensors";
    writeSafetensors(p, tensors);

    const auto file = SafetensorsFile::open(p);
    EXPECT_EQ(file->metadata(), (std::map<std::string, std::string> {{"format", "pt"}}));
    ASSERT_EQ(file->tensors().size(), tensors.size());

    // Reference layout: header padded to 8, every tensor naturally aligned, so all are views.
    uint64_t headerLen = 0;
    {
        std::ifstream in(p, std::ios::binary);
        in.read(reinterpret_cast<char*>(&headerLen), 8);
        std::string header(headerLen, '\0');
        in.read(header.data(), std::streamsize(headerLen));
        EXPECT_EQ(header.front(), '{');
        EXPECT_EQ(header.find_last_not_of(' '), header.rfind('}'));
    }
    EXPECT_EQ(headerLen % 8, 0u);
    for (const auto& [name, expected] : tensors) {
        SCOPED_TRACE(name);
        const SafetensorInfo& info = file->info(name);
        EXPECT_EQ(stDTypeName(info.dtype), dtypeName(expected.dtype()));
        EXPECT_EQ((8 + headerLen + info.begin) % dtypeSize(expected.dtype()), 0u);
        const Tensor got = file->tensor(name);
        EXPECT_TRUE(got.isMapped());
        EXPECT_TRUE(sameBytes(got, expected));
    }
    EXPECT_EQ(file->tensor("scalar.f32").rank(), 0);
    EXPECT_FLOAT_EQ(file->tensor("scalar.f32").f32()[0], 42.5f);
}

TEST_F(SafetensorsTest, ViewsKeepTheMappingAlive)
{
    const fs::path p = dir() / "w.safetensors";
    const Tensor expected = makeTensor({64}, DType::F32, 9);
    writeSafetensors(p, {{"w", expected}});
    Tensor view;
    {
        auto file = SafetensorsFile::open(p);
        view = file->tensor("w");
    }
    EXPECT_TRUE(view.isMapped());
    EXPECT_TRUE(sameBytes(view, expected));
}

TEST_F(SafetensorsTest, ForeignWriterUnpaddedUnalignedOffsets)
{
    // An odd header length and an F16 first: F32 and I64 data land on odd addresses.
    const std::vector<uint16_t> half = {0x3c00}; // 1.0 in F16
    const std::vector<float> floats = {1.5f, -2.25f};
    const std::vector<int64_t> longs = {-7};
    const std::string header = "{" + tensorEntry("h", "F16", "[1]", 0, 2) + "," + tensorEntry("f", "F32", "[2]", 2, 10)
        + "," + tensorEntry("l", "I64", "[]", 10, 18) + R"(,"__metadata__":{"source":"hand"}})";
    const std::string headerOdd = header.size() % 2 ? header : header + " ";
    const fs::path p = writeRaw("foreign.safetensors", headerOdd, bytesOf(half) + bytesOf(floats) + bytesOf(longs));

    const auto file = SafetensorsFile::open(p);
    EXPECT_EQ(file->metadata().at("source"), "hand");
    const Tensor f = file->tensor("f");
    EXPECT_FALSE(f.isMapped()); // misaligned in the file, so an owned copy
    EXPECT_EQ(reinterpret_cast<uintptr_t>(f.raw()) % alignof(float), 0u);
    EXPECT_EQ(f.shape(), (Shape {2}));
    EXPECT_EQ(f.f32()[0], 1.5f);
    EXPECT_EQ(f.f32()[1], -2.25f);
    const Tensor l = file->tensor("l");
    EXPECT_EQ(l.rank(), 0);
    EXPECT_EQ(l.i64()[0], -7);
    EXPECT_FLOAT_EQ(file->tensor("h").toF32().f32()[0], 1.0f);
}

TEST_F(SafetensorsTest, EmptyHeaderAndWhitespacePaddingAreValid)
{
    const auto empty = SafetensorsFile::open(writeRaw("empty.safetensors", "{}"));
    EXPECT_TRUE(empty->tensors().empty());
    const auto padded = SafetensorsFile::open(writeRaw("padded.safetensors", "  {}      "));
    EXPECT_TRUE(padded->tensors().empty());
}

TEST_F(SafetensorsTest, UnsupportedDTypesOpenButCannotBeLoaded)
{
    const std::string header = "{" + tensorEntry("mask", "BOOL", "[2, 3]", 0, 6) + ","
        + tensorEntry("fp8", "F8_E4M3", "[2]", 6, 8) + "," + tensorEntry("f4", "F4", "[4]", 8, 10) + ","
        + tensorEntry("w", "F32", "[1]", 10, 14) + "}";
    const fs::path p = writeRaw("bool.safetensors", header, std::string(14, '\x01'));
    const auto file = SafetensorsFile::open(p);
    EXPECT_EQ(file->info("mask").dtype, StDType::BOOL);
    EXPECT_EQ(stDTypeBits(StDType::F4), 4);
    EXPECT_EQ(stDTypeBits(StDType::F6_E3M2), 6);
    EXPECT_EQ(stDTypeName(StDType::F8_E4M3), "F8_E4M3");
    for (const std::string name : {"mask", "fp8", "f4"}) {
        try {
            file->tensor(name);
            ADD_FAILURE() << "no error for " << name;
        } catch (const Error& e) {
            EXPECT_EQ(e.code(), ErrorCode::Unsupported);
            EXPECT_NE(std::string(e.what()).find(p.string()), std::string::npos) << e.what();
            EXPECT_NE(std::string(e.what()).find("'" + name + "'"), std::string::npos) << e.what();
        }
    }
    EXPECT_NO_THROW(file->tensor("w"));
    try {
        file->info("nope");
        ADD_FAILURE();
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("nope"), std::string::npos);
    }
}

// ---- invalid files: one case per rule --------------------------------------------------

TEST_F(SafetensorsTest, RejectsTooSmallFiles)
{
    expectOpenError(writeBytes("empty.safetensors", ""), "header too small");
    expectOpenError(writeBytes("four.safetensors", "abcd"), "header too small");
}

TEST_F(SafetensorsTest, RejectsBadHeaderLength)
{
    expectOpenError(writeRaw("huge.safetensors", "{}", {}, uint64_t(100'000'001)), "header too large");
    expectOpenError(writeRaw("max.safetensors", "{}", {}, UINT64_MAX), "header too large");
    expectOpenError(writeRaw("beyond.safetensors", "{}", {}, 64), "invalid header length");
}

TEST_F(SafetensorsTest, RejectsNonJsonAndNonObjectHeaders)
{
    expectOpenError(writeRaw("text.safetensors", "not json at all"), "not valid UTF-8 JSON");
    expectOpenError(writeRaw("cut.safetensors", R"({"a":{"dtype":)"), "not valid UTF-8 JSON");
    expectOpenError(writeRaw("utf8.safetensors", "{\"bad\xff\xfe\":1}"), "not valid UTF-8 JSON");
    expectOpenError(writeRaw("nul.safetensors", std::string("{}\0\0", 4)), "NUL byte at offset 2");
    expectOpenError(writeRaw("nulmid.safetensors", std::string("{\0}", 3)), "NUL byte at offset 1");
    expectOpenError(writeRaw("array.safetensors", "[1, 2, 3]"), "must be a JSON object");
    expectOpenError(writeRaw("entry.safetensors", R"({"a": 5})"), "tensor 'a'");
}

TEST_F(SafetensorsTest, RejectsBadEntries)
{
    const std::string four(4, '\0');
    expectOpenError(writeRaw("nodtype.safetensors", R"({"w":{"shape":[1],"data_offsets":[0,4]}})", four),
        "tensor 'w': missing 'dtype'");
    expectOpenError(
        writeRaw("unknown.safetensors", "{" + tensorEntry("w", "F17", "[1]", 0, 4) + "}", four), "unknown dtype 'F17'");
    expectOpenError(
        writeRaw("lower.safetensors", "{" + tensorEntry("w", "f32", "[1]", 0, 4) + "}", four), "unknown dtype 'f32'");
    expectOpenError(
        writeRaw("noshape.safetensors", R"({"w":{"dtype":"F32","data_offsets":[0,4]}})", four), "missing 'shape'");
    expectOpenError(writeRaw("negative.safetensors", "{" + tensorEntry("w", "F32", "[-1]", 0, 4) + "}", four),
        "non-negative integers");
    expectOpenError(writeRaw("fraction.safetensors", "{" + tensorEntry("w", "F32", "[1.5]", 0, 4) + "}", four),
        "non-negative integers");
    expectOpenError(
        writeRaw("nooffsets.safetensors", R"({"w":{"dtype":"F32","shape":[1]}})", four), "missing 'data_offsets'");
    expectOpenError(
        writeRaw("threeoffsets.safetensors", R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4,8]}})", four),
        "data_offsets must be [begin, end]");
}

TEST_F(SafetensorsTest, RejectsBadOffsets)
{
    expectOpenError(writeRaw("gap.safetensors",
                        "{" + tensorEntry("a", "F32", "[1]", 0, 4) + "," + tensorEntry("b", "F32", "[1]", 8, 12) + "}",
                        std::string(12, '\0')),
        "tensor 'b': invalid offset: begins at 8, expected 4");
    expectOpenError(writeRaw("overlap.safetensors",
                        "{" + tensorEntry("a", "F32", "[2]", 0, 8) + "," + tensorEntry("b", "F32", "[1]", 4, 8) + "}",
                        std::string(8, '\0')),
        "overlap");
    expectOpenError(
        writeRaw("start.safetensors", "{" + tensorEntry("a", "F32", "[1]", 4, 8) + "}", std::string(8, '\0')),
        "must begin at 0, found 4");
    expectOpenError(
        writeRaw("reversed.safetensors", "{" + tensorEntry("a", "F32", "[1]", 8, 4) + "}", std::string(8, '\0')),
        "end 4 is before begin 8");
}

TEST_F(SafetensorsTest, RejectsSizeMismatches)
{
    expectOpenError(
        writeRaw("mismatch.safetensors", "{" + tensorEntry("w", "F32", "[3]", 0, 8) + "}", std::string(8, '\0')),
        "needs 12 bytes");
    expectOpenError(
        writeRaw("subbyte.safetensors", "{" + tensorEntry("w", "F4", "[3]", 0, 2) + "}", std::string(2, '\0')),
        "misaligned slice");
    expectOpenError(
        writeRaw("overflow.safetensors", "{" + tensorEntry("w", "F32", "[1099511627776, 1099511627776]", 0, 4) + "}",
            std::string(4, '\0')),
        "validation overflow");
    expectOpenError(
        writeRaw("trailing.safetensors", "{" + tensorEntry("w", "F32", "[1]", 0, 4) + "}", std::string(5, '\0')),
        "not fully covered");
    expectOpenError(writeRaw("nodata.safetensors", "{}", std::string(3, '\0')), "not fully covered");
}

TEST_F(SafetensorsTest, RejectsDuplicateNames)
{
    const std::string header
        = "{" + tensorEntry("w", "F32", "[1]", 0, 4) + "," + tensorEntry("w", "F32", "[1]", 4, 8) + "}";
    expectOpenError(writeRaw("dup.safetensors", header, std::string(8, '\0')), "'w' more than once");
    expectOpenError(
        writeRaw("dupkey.safetensors", R"({"w":{"dtype":"F32","dtype":"F16","shape":[1],"data_offsets":[0,4]}})",
            std::string(4, '\0')),
        "'dtype' more than once");
}

TEST_F(SafetensorsTest, RejectsBadMetadata)
{
    expectOpenError(writeRaw("metaint.safetensors", R"({"__metadata__":{"format":1}})"),
        "__metadata__ value of 'format' must be a string");
    expectOpenError(writeRaw("metaarray.safetensors", R"({"__metadata__":["pt"]})"), "__metadata__ must be an object");
}

TEST_F(SafetensorsTest, RejectsTruncatedFile)
{
    const fs::path p = dir() / "model.safetensors";
    writeSafetensors(p, {{"a", makeTensor({16}, DType::F32, 1)}, {"b", makeTensor({16}, DType::F32, 2)}});
    fs::resize_file(p, fs::file_size(p) - 10);
    expectOpenError(p, "not fully covered");
    fs::resize_file(p, 20); // cut inside the header
    expectOpenError(p, "invalid header length");
}

// Every truncation and a few hundred random byte edits: each either opens (and its tensors
// load) or throws Error; never a crash (the ASan build checks reads stay in bounds).
TEST_F(SafetensorsTest, CorruptionsNeverCrash)
{
    const fs::path good = dir() / "good.safetensors";
    writeSafetensors(good,
        {{"a", makeTensor({3}, DType::F16, 1)}, {"b", makeTensor({2, 2}, DType::F32, 2)},
            {"c", Tensor::fromVectorI32({}, {5})}});
    std::string bytes;
    {
        std::ifstream in(good, std::ios::binary);
        bytes.assign(std::istreambuf_iterator<char>(in), {});
    }
    auto tryOpen = [](const fs::path& p) {
        try {
            const auto f = SafetensorsFile::open(p);
            for (const auto& [name, info] : f->tensors()) {
                try {
                    const Tensor t = f->tensor(name);
                    volatile uint8_t sink = 0;
                    for (size_t i = 0; i < t.nbytes(); ++i)
                        sink = sink ^ static_cast<const uint8_t*>(t.raw())[i];
                } catch (const Error& e) {
                    EXPECT_EQ(e.code(), ErrorCode::Unsupported) << e.what();
                }
            }
        } catch (const Error& e) {
            EXPECT_NE(std::string(e.what()).find(p.string()), std::string::npos) << e.what();
        }
    };
    for (size_t n = 0; n < bytes.size(); ++n)
        tryOpen(writeBytes("corrupt.safetensors", bytes.substr(0, n)));
    std::mt19937 rng(1234);
    for (int i = 0; i < 400; ++i) {
        std::string mutated = bytes;
        const int edits = 1 + int(rng() % 3);
        for (int e = 0; e < edits; ++e) {
            const size_t at = rng() % (bytes.size() - 24); // mostly the length field and header
            mutated[at] = static_cast<char>(rng() % 4 == 0 ? "0123456789[]{},-\""[rng() % 17] : char(rng()));
        }
        tryOpen(writeBytes("corrupt.safetensors", mutated));
    }
}

TEST_F(SafetensorsTest, MissingFileAndDirectoryAreIoErrors)
{
    expectOpenError(dir() / "absent.safetensors", "cannot open", ErrorCode::Io);
    expectOpenError(dir(), "not a regular file", ErrorCode::Io);
}

// ---- writer ----------------------------------------------------------------------------

TEST_F(SafetensorsTest, WriterReplacesAtomicallyAndLeavesNoTempFiles)
{
    const fs::path p = dir() / "out.safetensors";
    writeSafetensors(p, {{"old", makeTensor({4}, DType::F32, 1)}});
    const Tensor next = makeTensor({2, 2}, DType::BF16, 2);
    writeSafetensors(p, {{"new", next}}, {{"format", "pt"}, {"note", "second"}});
    const auto file = SafetensorsFile::open(p);
    EXPECT_FALSE(file->contains("old"));
    EXPECT_TRUE(sameBytes(file->tensor("new"), next));
    EXPECT_EQ(file->metadata().at("note"), "second");
    EXPECT_EQ(std::distance(fs::directory_iterator(dir()), fs::directory_iterator()), 1);
}

TEST_F(SafetensorsTest, WriterFailuresAreIoErrorsAndCleanUp)
{
    const fs::path intoMissing = dir() / "no-such-dir" / "out.safetensors";
    try {
        writeSafetensors(intoMissing, {{"w", makeTensor({4}, DType::F32, 1)}});
        ADD_FAILURE();
    } catch (const Error& e) {
        EXPECT_EQ(e.code(), ErrorCode::Io);
        EXPECT_NE(std::string(e.what()).find(intoMissing.string()), std::string::npos) << e.what();
    }
    // Renaming a file over a non-empty folder fails after the data was written.
    const fs::path folder = dir() / "taken";
    fs::create_directories(folder / "inside");
    try {
        writeSafetensors(folder, {{"w", makeTensor({4}, DType::F32, 1)}});
        ADD_FAILURE();
    } catch (const Error& e) {
        EXPECT_EQ(e.code(), ErrorCode::Io);
        EXPECT_NE(std::string(e.what()).find(folder.string()), std::string::npos) << e.what();
    }
    EXPECT_EQ(std::distance(fs::directory_iterator(dir()), fs::directory_iterator()), 1); // only "taken"
}

TEST_F(SafetensorsTest, WriterRejectsBadInput)
{
    const fs::path p = dir() / "bad.safetensors";
    const Tensor t = makeTensor({1}, DType::F32, 1);
    EXPECT_THROW(writeSafetensors(p, {{"w", t}, {"w", t}}), Error);
    EXPECT_THROW(writeSafetensors(p, {{"__metadata__", t}}), Error);
    EXPECT_THROW(writeSafetensors(p, {{"w", Tensor()}}), Error);
    EXPECT_FALSE(fs::exists(p));
}

// ---- Checkpoint ------------------------------------------------------------------------

class CheckpointTest : public SafetensorsTest {
protected:
    void writeIndex(const std::string& text) const { writeBytes("model.safetensors.index.json", text); }

    // Two shards: embed + layer 0 in the first, layer 1 + head in the second.
    void writeTwoShards() const
    {
        writeSafetensors(dir() / "model-00001-of-00002.safetensors",
            {{"embed", makeTensor({8, 4}, DType::BF16, 1)}, {"layers.0.w", makeTensor({4, 4}, DType::BF16, 2)}});
        writeSafetensors(dir() / "model-00002-of-00002.safetensors",
            {{"layers.1.w", makeTensor({4, 4}, DType::BF16, 3)}, {"norm", makeTensor({4}, DType::F32, 4)}});
        writeIndex(R"({"metadata":{"total_size":144},"weight_map":{
            "embed":"model-00001-of-00002.safetensors","layers.0.w":"model-00001-of-00002.safetensors",
            "layers.1.w":"model-00002-of-00002.safetensors","norm":"model-00002-of-00002.safetensors"}})");
    }

    static void expectCheckpointError(const fs::path& d, ErrorCode code, const std::vector<std::string>& expect)
    {
        try {
            Checkpoint::open(d);
            ADD_FAILURE() << "no error for " << d;
        } catch (const Error& e) {
            EXPECT_EQ(e.code(), code) << e.what();
            for (const std::string& s : expect)
                EXPECT_NE(std::string(e.what()).find(s), std::string::npos) << "'" << s << "' not in: " << e.what();
        }
    }
};

TEST_F(CheckpointTest, SingleFile)
{
    const Tensor w = makeTensor({3, 2}, DType::BF16, 7);
    writeSafetensors(dir() / "model.safetensors",
        {{"backbone.layers.0.mixer.A_log", w}, {"lm_head.weight", makeTensor({5, 2}, DType::F32, 8)}});
    const Checkpoint ck = Checkpoint::open(dir());
    EXPECT_EQ(ck.names(), (std::vector<std::string> {"backbone.layers.0.mixer.A_log", "lm_head.weight"}));
    EXPECT_EQ(ck.totalBytes(), 3u * 2 * 2 + 5 * 2 * 4);
    EXPECT_EQ(ck.dominantFloatDType(), "F32");
    EXPECT_TRUE(sameBytes(ck.get("backbone.layers.0.mixer.A_log"), w));

    const Tensor widened = ck.getF32("backbone.layers.0.mixer.A_log", {3, 2});
    EXPECT_EQ(widened.dtype(), DType::F32);
    EXPECT_TRUE(sameBytes(widened, w.toF32()));
    EXPECT_TRUE(ck.getF32("lm_head.weight", {5, 2}).isMapped());

    try {
        ck.getF32("lm_head.weight", {2, 5});
        ADD_FAILURE();
    } catch (const Error& e) {
        EXPECT_EQ(e.code(), ErrorCode::Shape);
        const std::string what = e.what();
        for (const std::string s : {"model.safetensors", "'lm_head.weight'", "[5, 2]", "[2, 5]"})
            EXPECT_NE(what.find(s), std::string::npos) << s << " not in: " << what;
    }
    try {
        ck.getF32("model.layers.0.mixer.A_log", {3, 2});
        ADD_FAILURE();
    } catch (const Error& e) {
        EXPECT_EQ(e.code(), ErrorCode::Format);
        const std::string what = e.what();
        EXPECT_NE(what.find("missing tensor 'model.layers.0.mixer.A_log' in " + dir().string()), std::string::npos)
            << what;
        EXPECT_NE(what.find("'backbone.layers.0.mixer.A_log'"), std::string::npos) << what;
    }
}

TEST_F(CheckpointTest, TwoShards)
{
    writeTwoShards();
    const Checkpoint ck = Checkpoint::open(dir());
    EXPECT_EQ(ck.names().size(), 4u);
    EXPECT_EQ(ck.fileOf("norm").filename(), "model-00002-of-00002.safetensors");
    EXPECT_EQ(ck.fileOf("embed").filename(), "model-00001-of-00002.safetensors");
    EXPECT_EQ(ck.totalBytes(), 144u);
    EXPECT_EQ(ck.dominantFloatDType(), "BF16");
    EXPECT_TRUE(sameBytes(ck.get("layers.1.w"), makeTensor({4, 4}, DType::BF16, 3)));
    EXPECT_EQ(ck.getF32("norm", {4}).dtype(), DType::F32);
}

TEST_F(CheckpointTest, MissingShard)
{
    writeTwoShards();
    fs::remove(dir() / "model-00002-of-00002.safetensors");
    expectCheckpointError(dir(), ErrorCode::Io, {"model.safetensors.index.json", "model-00002-of-00002.safetensors"});
}

TEST_F(CheckpointTest, TensorMissingFromItsShard)
{
    writeTwoShards();
    writeIndex(
        R"({"weight_map":{"embed":"model-00001-of-00002.safetensors","norm":"model-00001-of-00002.safetensors"}})");
    expectCheckpointError(
        dir(), ErrorCode::Format, {"model.safetensors.index.json", "'norm'", "model-00001-of-00002.safetensors"});
}

TEST_F(CheckpointTest, TensorInTwoShards)
{
    writeTwoShards();
    writeSafetensors(dir() / "model-00002-of-00002.safetensors",
        {{"layers.1.w", makeTensor({4, 4}, DType::BF16, 3)}, {"norm", makeTensor({4}, DType::F32, 4)},
            {"embed", makeTensor({8, 4}, DType::BF16, 1)}});
    expectCheckpointError(dir(), ErrorCode::Format, {"model.safetensors.index.json", "'embed'", "two shards"});
}

TEST_F(CheckpointTest, MalformedIndex)
{
    writeTwoShards();
    const fs::path index = dir() / "model.safetensors.index.json";
    writeIndex(R"({"weight_map":{"embed":"model-00001-of-00002.safetensors",)");
    expectCheckpointError(dir(), ErrorCode::Format, {index.string(), "not valid UTF-8 JSON"});
    writeIndex(R"([1, 2])");
    expectCheckpointError(dir(), ErrorCode::Format, {index.string(), "JSON object"});
    writeIndex(R"({"metadata":{}})");
    expectCheckpointError(dir(), ErrorCode::Format, {index.string(), "missing 'weight_map'"});
    writeIndex(R"({"weight_map":["model-00001-of-00002.safetensors"]})");
    expectCheckpointError(dir(), ErrorCode::Format, {index.string(), "'weight_map' must be an object"});
    writeIndex(R"({"weight_map":{"embed":3}})");
    expectCheckpointError(dir(), ErrorCode::Format, {index.string(), "'embed'"});
    writeIndex(
        R"({"weight_map":{"embed":"model-00001-of-00002.safetensors","embed":"model-00002-of-00002.safetensors"}})");
    expectCheckpointError(dir(), ErrorCode::Format, {index.string(), "'embed' more than once"});
    writeIndex(R"({"weight_map":{"embed":"../model-00001-of-00002.safetensors"}})");
    expectCheckpointError(dir(), ErrorCode::Format, {index.string(), "inside the checkpoint folder"});
}

TEST_F(CheckpointTest, BadShardIsNamed)
{
    writeTwoShards();
    fs::resize_file(dir() / "model-00002-of-00002.safetensors", 4);
    expectCheckpointError(dir(), ErrorCode::Format, {"model-00002-of-00002.safetensors", "header too small"});
}

TEST_F(CheckpointTest, PytorchOnlyIsUnsupported)
{
    writeBytes("pytorch_model.bin", "PK\x03\x04");
    expectCheckpointError(
        dir(), ErrorCode::Unsupported, {dir().string(), "convert to safetensors", "safe_serialization=True"});
    fs::remove(dir() / "pytorch_model.bin");
    writeBytes("pytorch_model.bin.index.json", R"({"weight_map":{}})");
    expectCheckpointError(dir(), ErrorCode::Unsupported, {"pytorch_model.bin.index.json", "convert to safetensors"});
}

TEST_F(CheckpointTest, EmptyFolderAndMissingFolder)
{
    expectCheckpointError(dir(), ErrorCode::Io, {dir().string(), "model.safetensors", "model.safetensors.index.json"});
    expectCheckpointError(dir() / "absent", ErrorCode::Io, {(dir() / "absent").string()});
}

// ---- lazy loading ----------------------------------------------------------------------

size_t residentBytes()
{
    std::ifstream statm("/proc/self/statm");
    size_t pages = 0, resident = 0;
    statm >> pages >> resident;
    return resident * size_t(::sysconf(_SC_PAGESIZE));
}

TEST_F(CheckpointTest, SparseMultiGigabyteFileOpensWithoutReadingData)
{
    constexpr uint64_t kElements = uint64_t(1) << 30; // 4 GiB of F32
    const std::string header = "{"
        + tensorEntry("huge", "F32", fmt::format("[{}, 1024]", kElements / 1024), 0, kElements * 4) + ","
        + tensorEntry("tiny", "F32", "[2]", kElements * 4, kElements * 4 + 8) + "}";
    const std::string padded = header + std::string((8 - header.size() % 8) % 8, ' ');
    const fs::path p = writeRaw("model.safetensors", padded);
    ASSERT_EQ(::truncate(p.c_str(), off_t(8 + padded.size() + kElements * 4 + 8)), 0);

    const size_t before = residentBytes();
    const auto start = std::chrono::steady_clock::now();
    const Checkpoint ck = Checkpoint::open(dir());
    const Tensor huge = ck.get("huge");
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    const size_t grown = residentBytes() - std::min(before, residentBytes());

    EXPECT_TRUE(huge.isMapped());
    EXPECT_EQ(huge.nbytes(), kElements * 4);
    EXPECT_EQ(ck.totalBytes(), kElements * 4 + 8);
    EXPECT_LT(grown, size_t(16) << 20) << "opening touched " << grown << " bytes";
    EXPECT_LT(seconds, 2.0);
    EXPECT_EQ(ck.get("tiny").f32()[1], 0.f); // the hole reads as zeros
}

} // namespace
} // namespace archlens
