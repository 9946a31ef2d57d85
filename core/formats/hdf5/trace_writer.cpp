// TraceWriter: tokens, logits and probes into an HDF5 file (schema in formats/trace.h).
// The file is created as <path>.tmp-<random> beside `path` and renamed into place by finish();
// the destructor removes it when finish() was never reached (error, cancel, exception).
//
// Token-major datasets grow along axis 0 (maxdims UNLIMITED) and are written straight into
// HDF5 on each record call. Chunks cover up to 64 tokens and about 1 MiB; each dataset's chunk
// cache holds exactly one chunk, so a run of one-token appends fills the cached chunk in memory
// and the library compresses it once, when the next chunk starts (instead of a
// read-decompress-compress-write per token). Memory stays bounded: one chunk per open dataset.
#include <algorithm>
#include <chrono>
#include <ctime>
#include <random>
#include <set>
#include <system_error>

#include "formats/hdf5/h5_util.h"
#include "formats/trace.h"

namespace archlens {

namespace fs = std::filesystem;

namespace {

constexpr hsize_t kChunkMaxRows = 64;
constexpr size_t kChunkTargetBytes = size_t(1) << 20;
constexpr hsize_t kTextChunkRows = 1024; // /tokens and /token_text rows are small
constexpr int kGzipLevel = 4;
constexpr size_t kVlenStoredBytes = 16; // a vlen string's global-heap reference in the file

// How a tensor dtype is stored: floats of any width as float32, integers as they are.
struct StoredType {
    DType dtype;
    hid_t fileType;
    hid_t memType;
};

StoredType storedType(DType t)
{
    switch (t) {
    case DType::I32: return {DType::I32, H5T_STD_I32LE, H5T_NATIVE_INT32};
    case DType::I64: return {DType::I64, H5T_STD_I64LE, H5T_NATIVE_INT64};
    case DType::F32:
    case DType::F16:
    case DType::BF16: break;
    }
    return {DType::F32, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT};
}

// Chunk shape: for token-major data up to kChunkMaxRows rows, everything capped to about
// kChunkTargetBytes by shrinking the leading axes first (a ssm.state row with E=5120, N=16
// is 320 KiB, so its chunks hold 3 tokens; a (T, E) row of 20 KiB gives 51-token chunks).
std::vector<hsize_t> chooseChunk(const std::vector<hsize_t>& dims, size_t elemBytes, bool tokenMajor,
                                 hsize_t maxRows)
{
    std::vector<hsize_t> chunk(dims.size());
    for (size_t i = 0; i < dims.size(); ++i)
        chunk[i] = std::max<hsize_t>(1, dims[i]);
    if (tokenMajor)
        chunk[0] = maxRows;
    for (size_t i = 0; i < chunk.size(); ++i) {
        hsize_t inner = elemBytes;
        for (size_t j = i + 1; j < chunk.size(); ++j)
            inner *= chunk[j];
        chunk[i] = std::clamp<hsize_t>(kChunkTargetBytes / inner, 1, chunk[i]);
    }
    return chunk;
}

// Replaces invalid UTF-8 (a byte-level BPE token can be half a character) and NUL, which would
// cut a C string short, by U+FFFD, so h5py decodes every entry.
std::string sanitizeUtf8(std::string_view s)
{
    static constexpr std::string_view kReplacement = "\xEF\xBF\xBD";
    std::string out;
    out.reserve(s.size());
    size_t i = 0;
    while (i < s.size()) {
        const auto c = uint8_t(s[i]);
        size_t len = 0;
        uint32_t cp = 0;
        if (c >= 0x01 && c < 0x80)
            len = 1, cp = c;
        else if ((c & 0xE0) == 0xC0)
            len = 2, cp = c & 0x1Fu;
        else if ((c & 0xF0) == 0xE0)
            len = 3, cp = c & 0x0Fu;
        else if ((c & 0xF8) == 0xF0)
            len = 4, cp = c & 0x07u;
        bool ok = len > 0 && i + len <= s.size();
        for (size_t k = 1; ok && k < len; ++k) {
            const auto cc = uint8_t(s[i + k]);
            ok = (cc & 0xC0) == 0x80;
            cp = (cp << 6) | (cc & 0x3Fu);
        }
        // reject overlong forms, surrogates and values past U+10FFFF
        if (ok && ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
                   (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF))
            ok = false;
        if (ok) {
            out.append(s.substr(i, len));
            i += len;
        } else {
            out.append(kReplacement);
            i += 1;
        }
    }
    return out;
}

std::string isoTimeNow()
{
    const std::time_t now = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
    std::tm tm{};
    gmtime_r(&now, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
}

std::string randomSuffix()
{
    std::random_device rd;
    return fmt::format("{:08x}", uint32_t(rd()));
}

std::vector<hsize_t> toDims(const Shape& s)
{
    std::vector<hsize_t> d;
    for (int64_t v : s)
        d.push_back(hsize_t(v));
    return d;
}

// One open dataset being written.
struct Series {
    h5::Dataset ds;
    std::vector<hsize_t> dims;
    DType dtype = DType::F32;
    bool tokenMajor = false;
};

} // namespace

struct TraceWriter::Impl {
    fs::path path;
    fs::path tmpPath;
    TraceMeta meta;
    ProbeSelection selection;
    h5::File file;
    std::map<std::string, Series> series;
    // ssm/A, ssm/D ... held until the first probe of their (layer, group) is written.
    std::map<std::pair<int, std::string>, std::map<std::string, Tensor>> pendingConstants;
    std::set<std::pair<int, std::string>> groupsWritten;
    std::set<std::string> constantsWritten;
    int64_t tokenCount = 0;
    bool finished = false;

    [[noreturn]] void fail(const std::string& what) const
    {
        h5::clearErrors();
        throw Error(ErrorCode::Io, fmt::format("trace {}: {} failed", path.string(), what), tmpPath.string(),
                    "check free disk space and that the folder is writable");
    }

    void writeStringAttr(const std::string& name, const std::string& value)
    {
        removeAttr(name);
        const h5::Datatype type = h5::utf8StringType();
        const h5::Dataspace space(H5Screate(H5S_SCALAR));
        const h5::Attribute attr(H5Acreate2(file.get(), name.c_str(), type.get(), space.get(), H5P_DEFAULT, H5P_DEFAULT));
        const std::string clean = sanitizeUtf8(value);
        const char* p = clean.c_str();
        if (!attr || H5Awrite(attr.get(), type.get(), &p) < 0)
            fail(fmt::format("writing attribute '{}'", name));
    }

    void writeNumberAttr(const std::string& name, hid_t fileType, hid_t memType, const void* value)
    {
        removeAttr(name);
        const h5::Dataspace space(H5Screate(H5S_SCALAR));
        const h5::Attribute attr(H5Acreate2(file.get(), name.c_str(), fileType, space.get(), H5P_DEFAULT, H5P_DEFAULT));
        if (!attr || H5Awrite(attr.get(), memType, value) < 0)
            fail(fmt::format("writing attribute '{}'", name));
    }

    void writeStringListAttr(const std::string& name, const std::vector<std::string>& values)
    {
        removeAttr(name);
        std::vector<std::string> clean;
        for (const auto& v : values)
            clean.push_back(sanitizeUtf8(v));
        std::vector<const char*> ptrs;
        for (const auto& v : clean)
            ptrs.push_back(v.c_str());
        const hsize_t n = ptrs.size();
        const h5::Datatype type = h5::utf8StringType();
        const h5::Dataspace space(H5Screate_simple(1, &n, nullptr));
        const h5::Attribute attr(H5Acreate2(file.get(), name.c_str(), type.get(), space.get(), H5P_DEFAULT, H5P_DEFAULT));
        if (!attr || (n > 0 && H5Awrite(attr.get(), type.get(), ptrs.data()) < 0))
            fail(fmt::format("writing attribute '{}'", name));
    }

    void removeAttr(const std::string& name)
    {
        if (H5Aexists(file.get(), name.c_str()) > 0 && H5Adelete(file.get(), name.c_str()) < 0)
            fail(fmt::format("replacing attribute '{}'", name));
    }

    // Creates a chunked, compressed dataset (and its parent groups). Token-major ones start with
    // 0 rows and grow along axis 0; the others may be resized along every axis.
    Series& create(const std::string& dsPath, hid_t fileType, DType dtype, size_t elemBytes,
                   std::vector<hsize_t> dims, bool tokenMajor, bool numeric, hsize_t maxRows = kChunkMaxRows)
    {
        std::vector<hsize_t> maxDims(dims.size(), H5S_UNLIMITED);
        if (tokenMajor) {
            dims[0] = 0;
            for (size_t i = 1; i < dims.size(); ++i)
                maxDims[i] = dims[i];
        }
        const std::vector<hsize_t> chunk = chooseChunk(dims, elemBytes, tokenMajor, maxRows);
        size_t chunkBytes = elemBytes;
        for (hsize_t c : chunk)
            chunkBytes *= c;

        const h5::PropList dcpl(H5Pcreate(H5P_DATASET_CREATE));
        H5Pset_chunk(dcpl.get(), int(chunk.size()), chunk.data());
        if (numeric)
            H5Pset_shuffle(dcpl.get());
        H5Pset_deflate(dcpl.get(), kGzipLevel);
        const h5::PropList dapl(H5Pcreate(H5P_DATASET_ACCESS));
        H5Pset_chunk_cache(dapl.get(), 521, std::max(chunkBytes, size_t(1) << 16), 1.0);
        const h5::PropList lcpl(H5Pcreate(H5P_LINK_CREATE));
        H5Pset_create_intermediate_group(lcpl.get(), 1);
        const h5::Dataspace space(H5Screate_simple(int(dims.size()), dims.data(), maxDims.data()));

        Series s;
        s.ds = h5::Dataset(
            H5Dcreate2(file.get(), dsPath.c_str(), fileType, space.get(), lcpl.get(), dcpl.get(), dapl.get()));
        if (!s.ds)
            fail(fmt::format("creating dataset {}", dsPath));
        s.dims = dims;
        s.dtype = dtype;
        s.tokenMajor = tokenMajor;
        return series.emplace(dsPath, std::move(s)).first->second;
    }

    // Writes a block of `count` at row `begin`, growing axis 0 when the block ends past it.
    void writeBlock(const std::string& dsPath, Series& s, hsize_t begin, const std::vector<hsize_t>& count,
                    hid_t memType, const void* data)
    {
        if (count.empty() || count[0] == 0)
            return;
        if (begin + count[0] > s.dims[0]) {
            std::vector<hsize_t> grown = s.dims;
            grown[0] = begin + count[0];
            if (H5Dset_extent(s.ds.get(), grown.data()) < 0)
                fail(fmt::format("extending {}", dsPath));
            s.dims = grown;
        }
        std::vector<hsize_t> start(count.size(), 0);
        start[0] = begin;
        const h5::Dataspace fileSpace(H5Dget_space(s.ds.get()));
        const h5::Dataspace memSpace(H5Screate_simple(int(count.size()), count.data(), nullptr));
        if (!fileSpace || !memSpace ||
            H5Sselect_hyperslab(fileSpace.get(), H5S_SELECT_SET, start.data(), nullptr, count.data(), nullptr) < 0 ||
            H5Dwrite(s.ds.get(), memType, memSpace.get(), fileSpace.get(), H5P_DEFAULT, data) < 0)
            fail(fmt::format("writing {}", dsPath));
    }

    // Appends (or rewrites) rows [tokenBegin, tokenBegin + T) of a token-major tensor (T, ...).
    void writeRows(const std::string& dsPath, std::string_view what, int64_t tokenBegin, const Tensor& value)
    {
        if (value.rank() < 1)
            throw makeError(ErrorCode::Shape, "trace: {} must have a token axis, got shape {}", what,
                            shapeToString(value.shape()));
        if (tokenBegin < 0)
            throw makeError(ErrorCode::InvalidArgument, "trace: {} recorded at negative token {}", what, tokenBegin);
        const Tensor v = (value.dtype() == DType::F16 || value.dtype() == DType::BF16) ? value.toF32() : value;
        const StoredType st = storedType(v.dtype());
        const std::vector<hsize_t> dims = toDims(v.shape());
        auto it = series.find(dsPath);
        Series& s = it != series.end() ? it->second
                                       : create(dsPath, st.fileType, st.dtype, dtypeSize(st.dtype), dims, true, true);
        if (s.dtype != st.dtype || s.dims.size() != dims.size() || !std::equal(dims.begin() + 1, dims.end(), s.dims.begin() + 1)) {
            Shape had(s.dims.begin(), s.dims.end());
            throw makeError(ErrorCode::Shape, "trace: {} was recorded as {} {} (T first), now as {} {}", what,
                            dtypeName(s.dtype), shapeToString(had), dtypeName(v.dtype()), shapeToString(v.shape()));
        }
        writeBlock(dsPath, s, hsize_t(tokenBegin), dims, st.memType, v.raw());
    }

    // Writes a tensor whole, replacing (and resizing) what an earlier call wrote.
    void writeWhole(const std::string& dsPath, std::string_view what, const Tensor& value)
    {
        Tensor v = (value.dtype() == DType::F16 || value.dtype() == DType::BF16) ? value.toF32() : value;
        if (v.rank() == 0)
            v = v.reshaped({1});
        const StoredType st = storedType(v.dtype());
        const std::vector<hsize_t> dims = toDims(v.shape());
        auto it = series.find(dsPath);
        Series& s = it != series.end() ? it->second
                                       : create(dsPath, st.fileType, st.dtype, dtypeSize(st.dtype), dims, false, true);
        if (s.dtype != st.dtype || s.dims.size() != dims.size()) {
            Shape had(s.dims.begin(), s.dims.end());
            throw makeError(ErrorCode::Shape, "trace: {} was recorded as {} {}, now as {} {}", what, dtypeName(s.dtype),
                            shapeToString(had), dtypeName(v.dtype()), shapeToString(v.shape()));
        }
        if (s.dims != dims) {
            if (H5Dset_extent(s.ds.get(), dims.data()) < 0)
                fail(fmt::format("resizing {}", dsPath));
            s.dims = dims;
        }
        if (v.numel() > 0)
            writeBlock(dsPath, s, 0, dims, st.memType, v.raw());
    }

    // Attention weights of a decoding step, (H, t, S) for queries [tokenBegin, S) over keys
    // [0, S), continue the (H, tokenBegin, tokenBegin) matrix already written: it grows to
    // (H, S, S) and the new rows are written; the new columns of old rows read as the fill value 0,
    // which is what the causal mask gives them. Returns false when the value does not continue it.
    bool appendAttentionRows(const std::string& dsPath, int64_t tokenBegin, const Tensor& value)
    {
        auto it = series.find(dsPath);
        if (it == series.end() || tokenBegin <= 0 || value.rank() != 3 || value.dtype() != DType::F32)
            return false;
        Series& s = it->second;
        const auto H = hsize_t(value.dim(0)), t = hsize_t(value.dim(1)), S = hsize_t(value.dim(2));
        const auto past = hsize_t(tokenBegin);
        if (S != past + t || s.dims != std::vector<hsize_t>{H, past, past})
            return false;
        const std::vector<hsize_t> grown{H, S, S};
        if (H5Dset_extent(s.ds.get(), grown.data()) < 0)
            fail(fmt::format("extending {}", dsPath));
        s.dims = grown;
        const std::vector<hsize_t> start{0, past, 0}, count{H, t, S};
        const h5::Dataspace fileSpace(H5Dget_space(s.ds.get()));
        const h5::Dataspace memSpace(H5Screate_simple(3, count.data(), nullptr));
        if (!fileSpace || !memSpace ||
            H5Sselect_hyperslab(fileSpace.get(), H5S_SELECT_SET, start.data(), nullptr, count.data(), nullptr) < 0 ||
            H5Dwrite(s.ds.get(), H5T_NATIVE_FLOAT, memSpace.get(), fileSpace.get(), H5P_DEFAULT, value.raw()) < 0)
            fail(fmt::format("writing {}", dsPath));
        return true;
    }

    void writeConstant(int layer, const std::string& group, const std::string& name, const Tensor& value)
    {
        const std::string dsPath = fmt::format("/layers/{}/{}/{}", layer, group, name);
        if (constantsWritten.insert(dsPath).second)
            writeWhole(dsPath, dsPath, value);
    }

    Series& textSeries()
    {
        auto it = series.find("/token_text");
        if (it != series.end())
            return it->second;
        const h5::Datatype type = h5::utf8StringType();
        // dtype is unused for text: writeRows never sees this series
        return create("/token_text", type.get(), DType::I32, kVlenStoredBytes, {0}, true, false, kTextChunkRows);
    }

    Series& tokenSeries()
    {
        auto it = series.find("/tokens");
        if (it != series.end())
            return it->second;
        return create("/tokens", H5T_STD_I32LE, DType::I32, 4, {0}, true, true, kTextChunkRows);
    }

    void closeAll()
    {
        series.clear();
        file.close();
    }
};

TraceWriter::TraceWriter(const fs::path& path, TraceMeta meta, ProbeSelection selection)
    : m_impl(std::make_unique<Impl>())
{
    h5::silence();
    Impl& d = *m_impl;
    d.path = path;
    d.meta = std::move(meta);
    d.selection = std::move(selection);
    if (d.meta.created.empty())
        d.meta.created = isoTimeNow();

    const h5::PropList fapl(H5Pcreate(H5P_FILE_ACCESS));
    // 1.8 object formats (dense attribute storage), readable by every h5py in use
    H5Pset_libver_bounds(fapl.get(), H5F_LIBVER_V18, H5F_LIBVER_LATEST);
    H5Pset_fclose_degree(fapl.get(), H5F_CLOSE_STRONG);
    for (int attempt = 0; attempt < 8 && !d.file; ++attempt) {
        d.tmpPath = path;
        d.tmpPath += ".tmp-" + randomSuffix();
        std::error_code ec;
        if (fs::exists(d.tmpPath, ec))
            continue;
        d.file = h5::File(H5Fcreate(d.tmpPath.c_str(), H5F_ACC_EXCL, H5P_DEFAULT, fapl.get()));
    }
    if (!d.file) {
        h5::clearErrors();
        throw Error(ErrorCode::Io, fmt::format("cannot create trace file {}", path.string()), d.tmpPath.string(),
                    "check that the folder exists and is writable");
    }

    try {
        const TraceMeta& m = d.meta;
        const int64_t version = m.schemaVersion;
        d.writeNumberAttr("schema_version", H5T_STD_I64LE, H5T_NATIVE_INT64, &version);
        d.writeStringAttr("model_type", m.modelType);
        d.writeStringAttr("architecture", m.architecture);
        d.writeStringAttr("backend", m.backend);
        d.writeStringAttr("weight_dtype", m.weightDType);
        d.writeStringAttr("compute_dtype", m.computeDType);
        d.writeStringAttr("prompt", m.prompt);
        d.writeNumberAttr("prompt_length", H5T_STD_I64LE, H5T_NATIVE_INT64, &m.promptLength);
        d.writeNumberAttr("seed", H5T_STD_I64LE, H5T_NATIVE_INT64, &m.seed);
        d.writeStringAttr("model_path", m.modelPath);
        d.writeStringAttr("revision", m.revision);
        d.writeStringAttr("created", m.created);
        d.tokenSeries();
        d.textSeries();
    } catch (...) {
        d.closeAll();
        std::error_code ec;
        fs::remove(d.tmpPath, ec);
        throw;
    }
}

TraceWriter::~TraceWriter()
{
    if (!m_impl || m_impl->finished)
        return;
    h5::silence();
    m_impl->closeAll();
    std::error_code ec;
    fs::remove(m_impl->tmpPath, ec);
}

bool TraceWriter::wants(int layer, Probe p) const { return m_impl->selection.wants(layer, p); }

void TraceWriter::record(int layer, Probe p, int64_t tokenBegin, const Tensor& value)
{
    h5::silence();
    Impl& d = *m_impl;
    ARCHLENS_ASSERT(!d.finished, "TraceWriter::record after finish()");
    if (!d.selection.wants(layer, p))
        return;
    const std::string group(probeGroup(p));
    const std::string dsPath = fmt::format("/layers/{}/{}/{}", layer, group, probeLeaf(p));
    const std::string what = fmt::format("{} of layer {}", probeName(p), layer);
    if (probeIsTokenMajor(p))
        d.writeRows(dsPath, what, tokenBegin, value);
    else if (!(p == Probe::AttnWeights && d.appendAttentionRows(dsPath, tokenBegin, value)))
        d.writeWhole(dsPath, what, value);

    const auto key = std::make_pair(layer, group);
    if (d.groupsWritten.insert(key).second) {
        auto pending = d.pendingConstants.find(key);
        if (pending != d.pendingConstants.end()) {
            for (const auto& [name, tensor] : pending->second)
                d.writeConstant(layer, group, name, tensor);
            d.pendingConstants.erase(pending);
        }
    }
}

void TraceWriter::recordConstant(int layer, std::string_view group, std::string_view name, const Tensor& value)
{
    h5::silence();
    Impl& d = *m_impl;
    ARCHLENS_ASSERT(!d.finished, "TraceWriter::recordConstant after finish()");
    if (!d.selection.wantsAnyGroup(layer, group))
        return;
    const auto key = std::make_pair(layer, std::string(group));
    if (d.groupsWritten.count(key))
        d.writeConstant(layer, key.second, std::string(name), value);
    else
        d.pendingConstants[key].try_emplace(std::string(name), value.clone());
}

void TraceWriter::recordModelValue(std::string_view name, double value)
{
    h5::silence();
    ARCHLENS_ASSERT(!m_impl->finished, "TraceWriter::recordModelValue after finish()");
    m_impl->writeNumberAttr(std::string(name), H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &value);
}

void TraceWriter::appendTokens(const std::vector<int32_t>& ids, const std::vector<std::string>& texts)
{
    h5::silence();
    Impl& d = *m_impl;
    ARCHLENS_ASSERT(!d.finished, "TraceWriter::appendTokens after finish()");
    if (!texts.empty() && texts.size() != ids.size())
        throw makeError(ErrorCode::InvalidArgument, "trace: {} token ids but {} token texts", ids.size(), texts.size());
    if (ids.empty())
        return;
    std::vector<std::string> clean;
    clean.reserve(ids.size());
    for (size_t i = 0; i < ids.size(); ++i)
        clean.push_back(texts.empty() ? fmt::format("#{}", ids[i]) : sanitizeUtf8(texts[i]));
    std::vector<const char*> ptrs;
    for (const auto& t : clean)
        ptrs.push_back(t.c_str());

    const std::vector<hsize_t> count{hsize_t(ids.size())};
    d.writeBlock("/tokens", d.tokenSeries(), hsize_t(d.tokenCount), count, H5T_NATIVE_INT32, ids.data());
    const h5::Datatype type = h5::utf8StringType();
    d.writeBlock("/token_text", d.textSeries(), hsize_t(d.tokenCount), count, type.get(), ptrs.data());
    d.tokenCount += int64_t(ids.size());
}

void TraceWriter::appendLogits(int64_t tokenBegin, const Tensor& logits)
{
    h5::silence();
    Impl& d = *m_impl;
    ARCHLENS_ASSERT(!d.finished, "TraceWriter::appendLogits after finish()");
    if (logits.rank() != 2)
        throw makeError(ErrorCode::Shape, "trace: logits must be (T, V), got {}", shapeToString(logits.shape()));
    if (logits.dtype() == DType::I32 || logits.dtype() == DType::I64)
        throw makeError(ErrorCode::Shape, "trace: logits must be floating point, got {}", dtypeName(logits.dtype()));
    d.writeRows("/logits", "logits", tokenBegin, logits);
}

void TraceWriter::setAttribute(const std::string& name, const std::string& value)
{
    h5::silence();
    m_impl->writeStringAttr(name, value);
}

void TraceWriter::setAttribute(const std::string& name, int64_t value)
{
    h5::silence();
    m_impl->writeNumberAttr(name, H5T_STD_I64LE, H5T_NATIVE_INT64, &value);
}

void TraceWriter::setAttribute(const std::string& name, double value)
{
    h5::silence();
    m_impl->writeNumberAttr(name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &value);
}

void TraceWriter::setAttribute(const std::string& name, const std::vector<std::string>& values)
{
    h5::silence();
    m_impl->writeStringListAttr(name, values);
}

void TraceWriter::writeCheckpoint(int64_t position, const std::vector<std::pair<std::string, Tensor>>& tensors)
{
    h5::silence();
    Impl& d = *m_impl;
    ARCHLENS_ASSERT(!d.finished, "TraceWriter::writeCheckpoint after finish()");
    if (position < 0)
        throw makeError(ErrorCode::InvalidArgument, "trace: checkpoint at negative position {}", position);
    for (const auto& [name, tensor] : tensors) {
        std::string rel = name;
        std::replace(rel.begin(), rel.end(), '.', '/');
        if (rel.empty() || rel.front() == '/' || rel.back() == '/' || rel.find("//") != std::string::npos)
            throw makeError(ErrorCode::InvalidArgument, "trace: checkpoint tensor name '{}' is not a path", name);
        const std::string dsPath = fmt::format("/checkpoints/{}/{}", position, rel);
        d.writeWhole(dsPath, dsPath, tensor);
    }
}

void TraceWriter::writeTensor(const std::string& datasetPath, const Tensor& value)
{
    h5::silence();
    Impl& d = *m_impl;
    ARCHLENS_ASSERT(!d.finished, "TraceWriter::writeTensor after finish()");
    if (datasetPath.size() < 2 || datasetPath.front() != '/')
        throw makeError(ErrorCode::InvalidArgument, "trace: dataset path '{}' must be absolute", datasetPath);
    d.writeWhole(datasetPath, datasetPath, value);
}

void TraceWriter::finish()
{
    h5::silence();
    Impl& d = *m_impl;
    ARCHLENS_ASSERT(!d.finished, "TraceWriter::finish called twice");
    // Every token-major dataset must cover exactly the tokens appended, or readers reject the file.
    for (const auto& [dsPath, s] : d.series) {
        if (s.tokenMajor && s.dims[0] != hsize_t(d.tokenCount))
            throw makeError(ErrorCode::InvalidArgument,
                            "trace {}: {} holds {} token rows but {} tokens were appended", d.path.string(), dsPath,
                            s.dims[0], d.tokenCount);
    }
    d.series.clear();
    if (H5Fflush(d.file.get(), H5F_SCOPE_GLOBAL) < 0 || !d.file.close())
        d.fail("closing the file");
    std::error_code ec;
    fs::rename(d.tmpPath, d.path, ec);
    if (ec)
        throw Error(ErrorCode::Io, fmt::format("cannot move trace into place at {}: {}", d.path.string(), ec.message()),
                    d.tmpPath.string());
    d.finished = true;
}

} // namespace archlens
