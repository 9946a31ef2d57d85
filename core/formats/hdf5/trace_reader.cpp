// TraceReader: opens a trace, checks the schema (formats/trace.h) up front and reads datasets on
// demand. Every failure is a typed Error naming the file; HDF5 prints nothing.
#include <algorithm>
#include <charconv>
#include <fstream>
#include <functional>
#include <optional>

#include "formats/hdf5/h5_util.h"
#include "formats/trace.h"

namespace archlens {

namespace fs = std::filesystem;

namespace {

std::vector<std::string> childNames(hid_t group)
{
    std::vector<std::string> names;
    H5G_info_t info{};
    if (H5Gget_info(group, &info) < 0)
        return names;
    for (hsize_t i = 0; i < info.nlinks; ++i) {
        const ssize_t len = H5Lget_name_by_idx(group, ".", H5_INDEX_NAME, H5_ITER_INC, i, nullptr, 0, H5P_DEFAULT);
        if (len < 0)
            continue;
        std::string name(size_t(len), '\0');
        H5Lget_name_by_idx(group, ".", H5_INDEX_NAME, H5_ITER_INC, i, name.data(), size_t(len) + 1, H5P_DEFAULT);
        names.push_back(std::move(name));
    }
    return names;
}

// The object at `name` below `loc`, if it exists and has that kind (H5I_GROUP, H5I_DATASET).
h5::Object openAs(hid_t loc, const std::string& name, H5I_type_t kind)
{
    if (H5Lexists(loc, name.c_str(), H5P_DEFAULT) <= 0)
        return {};
    h5::Object obj(H5Oopen(loc, name.c_str(), H5P_DEFAULT));
    if (!obj || H5Iget_type(obj.get()) != kind)
        return {};
    return obj;
}

// Opens an absolute path component by component, so a missing parent is "absent", not an error.
h5::Object openPath(hid_t file, const std::string& path, H5I_type_t kind)
{
    std::string rel = path;
    while (!rel.empty() && rel.front() == '/')
        rel.erase(0, 1);
    if (rel.empty())
        return {};
    size_t pos = 0;
    while ((pos = rel.find('/', pos)) != std::string::npos) {
        if (H5Lexists(file, rel.substr(0, pos).c_str(), H5P_DEFAULT) <= 0)
            return {};
        ++pos;
    }
    return openAs(file, rel, kind);
}

std::optional<int> parseLayer(const std::string& s)
{
    int v = -1;
    auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (s.empty() || ec != std::errc() || ptr != s.data() + s.size() || v < 0)
        return std::nullopt;
    return v;
}

Shape toShape(const std::vector<hsize_t>& dims) { return Shape(dims.begin(), dims.end()); }

} // namespace

struct TraceReader::Impl {
    fs::path path;
    h5::File file;
    TraceMeta meta;
    std::vector<int32_t> tokens;
    std::vector<std::string> tokenText;
    std::map<int, std::vector<std::string>> layerDatasets;

    std::string fileName() const { return path.string(); }

    [[noreturn]] void formatError(const std::string& what) const
    {
        h5::clearErrors();
        throw Error(ErrorCode::Format, fmt::format("trace {}: {}", fileName(), what), fileName());
    }

    // Reads a string attribute (variable or fixed length); nullopt if absent.
    std::optional<std::string> stringAttr(hid_t loc, const std::string& name) const
    {
        if (H5Aexists(loc, name.c_str()) <= 0)
            return std::nullopt;
        const h5::Attribute attr(H5Aopen(loc, name.c_str(), H5P_DEFAULT));
        const h5::Datatype type(H5Aget_type(attr.get()));
        const h5::Dataspace space(H5Aget_space(attr.get()));
        if (!attr || !type || H5Tget_class(type.get()) != H5T_STRING || H5Sget_simple_extent_npoints(space.get()) != 1)
            return std::nullopt;
        if (H5Tis_variable_str(type.get()) > 0) {
            char* p = nullptr;
            if (H5Aread(attr.get(), type.get(), &p) < 0)
                formatError(fmt::format("cannot read attribute '{}'", name));
            std::string out = p ? p : "";
            H5free_memory(p);
            return out;
        }
        std::string buf(H5Tget_size(type.get()), '\0');
        if (H5Aread(attr.get(), type.get(), buf.data()) < 0)
            formatError(fmt::format("cannot read attribute '{}'", name));
        return buf.substr(0, buf.find('\0'));
    }

    std::vector<std::string> stringListAttr(hid_t loc, const std::string& name) const
    {
        if (H5Aexists(loc, name.c_str()) <= 0)
            return {};
        const h5::Attribute attr(H5Aopen(loc, name.c_str(), H5P_DEFAULT));
        const h5::Datatype type(H5Aget_type(attr.get()));
        const h5::Dataspace space(H5Aget_space(attr.get()));
        if (!attr || !type || H5Tget_class(type.get()) != H5T_STRING)
            return {};
        const hssize_t n = H5Sget_simple_extent_npoints(space.get());
        if (n <= 0)
            return {};
        std::vector<std::string> out;
        if (H5Tis_variable_str(type.get()) > 0) {
            std::vector<char*> ptrs(size_t(n), nullptr);
            if (H5Aread(attr.get(), type.get(), ptrs.data()) < 0)
                formatError(fmt::format("cannot read attribute '{}'", name));
            for (char* p : ptrs) {
                out.emplace_back(p ? p : "");
                H5free_memory(p);
            }
            return out;
        }
        const size_t size = H5Tget_size(type.get());
        std::string buf(size * size_t(n), '\0');
        if (H5Aread(attr.get(), type.get(), buf.data()) < 0)
            formatError(fmt::format("cannot read attribute '{}'", name));
        for (hssize_t i = 0; i < n; ++i) {
            std::string item = buf.substr(size_t(i) * size, size);
            out.push_back(item.substr(0, item.find('\0')));
        }
        return out;
    }

    // Reads a numeric scalar attribute as int64 (integers) or via double (floats).
    std::optional<int64_t> intAttr(hid_t loc, const std::string& name) const
    {
        if (H5Aexists(loc, name.c_str()) <= 0)
            return std::nullopt;
        const h5::Attribute attr(H5Aopen(loc, name.c_str(), H5P_DEFAULT));
        const h5::Datatype type(H5Aget_type(attr.get()));
        const h5::Dataspace space(H5Aget_space(attr.get()));
        if (!attr || !type || H5Tget_class(type.get()) != H5T_INTEGER || H5Sget_simple_extent_npoints(space.get()) != 1)
            return std::nullopt;
        int64_t v = 0;
        if (H5Aread(attr.get(), H5T_NATIVE_INT64, &v) < 0)
            formatError(fmt::format("cannot read attribute '{}'", name));
        return v;
    }

    std::string requireString(const std::string& name) const
    {
        auto v = stringAttr(file.get(), name);
        if (!v)
            formatError(fmt::format("root attribute '{}' is missing or not a string", name));
        return *v;
    }

    int64_t requireInt(const std::string& name) const
    {
        auto v = intAttr(file.get(), name);
        if (!v)
            formatError(fmt::format("root attribute '{}' is missing or not an integer", name));
        return *v;
    }

    struct DatasetInfo {
        std::vector<hsize_t> dims;
        H5T_class_t typeClass = H5T_NO_CLASS;
    };

    DatasetInfo info(hid_t ds, const std::string& dsPath) const
    {
        const h5::Dataspace space(H5Dget_space(ds));
        const h5::Datatype type(H5Dget_type(ds));
        if (!space || !type || H5Sget_simple_extent_ndims(space.get()) < 0)
            formatError(fmt::format("cannot read the shape of {}", dsPath));
        return {h5::extent(space.get()), H5Tget_class(type.get())};
    }

    void readMeta()
    {
        // The version first: a newer schema may have changed everything else.
        const auto version = intAttr(file.get(), "schema_version");
        if (!version)
            formatError("root attribute 'schema_version' is missing or not an integer (not an ArchLens trace?)");
        if (*version != kTraceSchemaVersion)
            throw Error(ErrorCode::Version,
                        fmt::format("trace {}: schema_version {}, this build reads schema_version {}", fileName(), *version,
                                    kTraceSchemaVersion),
                        fileName(),
                        *version > kTraceSchemaVersion ? "update ArchLens to read it" : "record the trace again");
        meta.schemaVersion = int(*version);
        meta.modelType = requireString("model_type");
        meta.architecture = requireString("architecture");
        meta.backend = requireString("backend");
        meta.weightDType = requireString("weight_dtype");
        meta.computeDType = requireString("compute_dtype");
        meta.prompt = requireString("prompt");
        meta.promptLength = requireInt("prompt_length");
        meta.seed = requireInt("seed");
        meta.modelPath = requireString("model_path");
        meta.revision = requireString("revision");
        meta.created = requireString("created");
    }

    void readTokens()
    {
        const h5::Object ds = openAs(file.get(), "tokens", H5I_DATASET);
        if (!ds)
            formatError("dataset /tokens is missing");
        const DatasetInfo ti = info(ds.get(), "/tokens");
        if (ti.dims.size() != 1 || ti.typeClass != H5T_INTEGER)
            formatError(fmt::format("/tokens must be an integer vector [T], has shape {}", shapeToString(toShape(ti.dims))));
        tokens.resize(ti.dims[0]);
        if (!tokens.empty() && H5Dread(ds.get(), H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, tokens.data()) < 0)
            formatError("cannot read /tokens (corrupt or truncated file)");

        const h5::Object text = openAs(file.get(), "token_text", H5I_DATASET);
        if (!text) {
            for (int32_t id : tokens)
                tokenText.push_back(fmt::format("#{}", id));
            return;
        }
        const DatasetInfo xi = info(text.get(), "/token_text");
        if (xi.dims.size() != 1 || xi.dims[0] != tokens.size() || xi.typeClass != H5T_STRING)
            formatError(fmt::format("/token_text must be {} strings, has shape {}", tokens.size(),
                                    shapeToString(toShape(xi.dims))));
        const h5::Datatype type(H5Dget_type(text.get()));
        if (tokens.empty())
            return;
        if (H5Tis_variable_str(type.get()) > 0) {
            std::vector<char*> ptrs(tokens.size(), nullptr);
            const h5::Dataspace space(H5Dget_space(text.get()));
            if (H5Dread(text.get(), type.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, ptrs.data()) < 0)
                formatError("cannot read /token_text (corrupt or truncated file)");
            for (char* p : ptrs)
                tokenText.emplace_back(p ? p : "");
            H5Dvlen_reclaim(type.get(), space.get(), H5P_DEFAULT, ptrs.data());
        } else {
            const size_t size = H5Tget_size(type.get());
            std::string buf(size * tokens.size(), '\0');
            if (H5Dread(text.get(), type.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, buf.data()) < 0)
                formatError("cannot read /token_text (corrupt or truncated file)");
            for (size_t i = 0; i < tokens.size(); ++i) {
                std::string item = buf.substr(i * size, size);
                tokenText.push_back(item.substr(0, item.find('\0')));
            }
        }
    }

    void checkLogits() const
    {
        const h5::Object ds = openAs(file.get(), "logits", H5I_DATASET);
        if (!ds) {
            if (H5Lexists(file.get(), "logits", H5P_DEFAULT) > 0)
                formatError("/logits is not a dataset");
            return;
        }
        const DatasetInfo li = info(ds.get(), "/logits");
        if (li.dims.size() != 2 || li.dims[0] != tokens.size() || li.typeClass != H5T_FLOAT)
            formatError(fmt::format("/logits must be float [T={}, V], has shape {}", tokens.size(),
                                    shapeToString(toShape(li.dims))));
    }

    // Walks /layers/{i}/{group}/{leaf}, checking every dataset named after a known probe (and
    // ssm/A, ssm/D) for rank, token rows and agreement of E, N, X, k across the layer.
    void readLayers()
    {
        const h5::Object layersGroup = openAs(file.get(), "layers", H5I_GROUP);
        if (!layersGroup)
            return;
        for (const std::string& layerName : childNames(layersGroup.get())) {
            const auto layer = parseLayer(layerName);
            if (!layer)
                continue;
            const h5::Object layerGroup = openAs(layersGroup.get(), layerName, H5I_GROUP);
            if (!layerGroup)
                continue;
            std::map<std::string, DatasetInfo> found; // "ssm/delta" -> info
            for (const std::string& groupName : childNames(layerGroup.get())) {
                const h5::Object group = openAs(layerGroup.get(), groupName, H5I_GROUP);
                if (!group)
                    continue;
                for (const std::string& leaf : childNames(group.get())) {
                    const h5::Object ds = openAs(group.get(), leaf, H5I_DATASET);
                    if (!ds)
                        continue;
                    const std::string rel = groupName + "/" + leaf;
                    found.emplace(rel, info(ds.get(), fmt::format("/layers/{}/{}", *layer, rel)));
                }
            }
            checkLayer(*layer, found);
            std::vector<std::string>& names = layerDatasets[*layer];
            for (const auto& [rel, di] : found)
                names.push_back(rel);
        }
    }

    void checkLayer(int layer, const std::map<std::string, DatasetInfo>& found) const
    {
        const hsize_t T = tokens.size();
        // Dimension letter -> (size, which dataset fixed it).
        std::map<char, std::pair<hsize_t, std::string>> letters;
        auto agree = [&](char letter, hsize_t size, const std::string& rel) {
            auto [it, inserted] = letters.try_emplace(letter, size, rel);
            if (!inserted && it->second.first != size)
                formatError(fmt::format("/layers/{}/{} has {}={} but /layers/{}/{} has {}={}", layer, rel, letter, size,
                                        layer, it->second.second, letter, it->second.first));
        };
        auto check = [&](const std::string& rel, const DatasetInfo& di, std::string_view pattern) {
            const std::string where = fmt::format("/layers/{}/{}", layer, rel);
            if (di.typeClass != H5T_FLOAT && di.typeClass != H5T_INTEGER)
                formatError(fmt::format("{} is not numeric", where));
            if (di.dims.size() != pattern.size())
                formatError(fmt::format("{} has shape {}, expected rank {} ({})", where, shapeToString(toShape(di.dims)),
                                        pattern.size(), pattern));
            for (size_t i = 0; i < pattern.size(); ++i) {
                if (pattern[i] == 'T' && di.dims[i] != T)
                    formatError(fmt::format("{} has {} token rows but /tokens has {}", where, di.dims[i], T));
                if (pattern[i] != 'T' && pattern[i] != '?')
                    agree(pattern[i], di.dims[i], rel);
            }
        };
        // The constants first, so probe mismatches are reported against ssm/A's shape.
        for (const char* rel : {"ssm/A", "ssm/D"}) {
            auto it = found.find(rel);
            if (it != found.end())
                check(it->first, it->second, std::string_view(rel) == "ssm/A" ? "EN" : "E");
        }
        for (const auto& [rel, di] : found) {
            const size_t slash = rel.find('/');
            const auto probe = probeFromName(rel.substr(0, slash) + "." + rel.substr(slash + 1));
            if (!probe)
                continue;
            switch (*probe) {
            case Probe::SsmX:
            case Probe::SsmDelta:
            case Probe::SsmStateNorm:
            case Probe::SsmY:
            case Probe::SsmGate: check(rel, di, "TE"); break;
            case Probe::SsmB:
            case Probe::SsmC: check(rel, di, "TN"); break;
            case Probe::SsmState: check(rel, di, "TEN"); break;
            case Probe::MoeRouterLogits:
            case Probe::MoeRouterProbs: check(rel, di, "TX"); break;
            case Probe::MoeTopkExperts:
            case Probe::MoeTopkWeights: check(rel, di, "Tk"); break;
            case Probe::MoeExpertLoad: check(rel, di, "X"); break;
            case Probe::MoeLoadBalancingLoss: check(rel, di, "?"); break;
            case Probe::MoeRouterEntropy:
            case Probe::MoeSharedGate: check(rel, di, "T"); break;
            case Probe::AttnWeights:
                check(rel, di, "H??");
                if (di.dims[1] != di.dims[2])
                    formatError(fmt::format("/layers/{}/{} has shape {}, expected [H, T, T]", layer, rel,
                                            shapeToString(toShape(di.dims))));
                break;
            case Probe::Count: break;
            }
        }
    }

    h5::Object dataset(const std::string& dsPath) const
    {
        h5::Object ds = openPath(file.get(), dsPath, H5I_DATASET);
        if (!ds)
            formatError(fmt::format("no dataset {}", dsPath));
        return ds;
    }

    Tensor readSlab(const std::string& dsPath, std::optional<std::pair<int64_t, int64_t>> rows) const
    {
        const h5::Object ds = dataset(dsPath);
        const DatasetInfo di = info(ds.get(), dsPath);
        DType dtype = DType::F32;
        hid_t memType = H5T_NATIVE_FLOAT;
        if (di.typeClass == H5T_INTEGER) {
            const h5::Datatype type(H5Dget_type(ds.get()));
            const bool wide = H5Tget_size(type.get()) > 4;
            dtype = wide ? DType::I64 : DType::I32;
            memType = wide ? H5T_NATIVE_INT64 : H5T_NATIVE_INT32;
        } else if (di.typeClass != H5T_FLOAT) {
            formatError(fmt::format("{} is not a numeric dataset", dsPath));
        }
        Shape shape = toShape(di.dims);
        if (!rows) {
            Tensor out = Tensor::empty(shape, dtype);
            if (out.numel() > 0 && H5Dread(ds.get(), memType, H5S_ALL, H5S_ALL, H5P_DEFAULT, out.raw()) < 0)
                formatError(fmt::format("cannot read {} (corrupt or truncated file)", dsPath));
            return out;
        }
        const auto [begin, end] = *rows;
        if (shape.empty() || begin < 0 || end < begin || end > shape[0])
            throw makeError(ErrorCode::InvalidArgument, "trace {}: rows [{}, {}) out of range for {} of shape {}", fileName(),
                            begin, end, dsPath, shapeToString(shape));
        shape[0] = end - begin;
        Tensor out = Tensor::empty(shape, dtype);
        if (out.numel() == 0)
            return out;
        std::vector<hsize_t> start(shape.size(), 0), count = std::vector<hsize_t>(shape.begin(), shape.end());
        start[0] = hsize_t(begin);
        const h5::Dataspace fileSpace(H5Dget_space(ds.get()));
        const h5::Dataspace memSpace(H5Screate_simple(int(count.size()), count.data(), nullptr));
        if (H5Sselect_hyperslab(fileSpace.get(), H5S_SELECT_SET, start.data(), nullptr, count.data(), nullptr) < 0 ||
            H5Dread(ds.get(), memType, memSpace.get(), fileSpace.get(), H5P_DEFAULT, out.raw()) < 0)
            formatError(fmt::format("cannot read {} (corrupt or truncated file)", dsPath));
        return out;
    }
};

TraceReader::TraceReader()
    : m_impl(std::make_unique<Impl>())
{
}
TraceReader::TraceReader(TraceReader&&) noexcept = default;
TraceReader& TraceReader::operator=(TraceReader&&) noexcept = default;
TraceReader::~TraceReader()
{
    if (m_impl)
        h5::silence();
}

TraceReader TraceReader::open(const fs::path& path)
{
    h5::silence();
    std::error_code ec;
    if (!fs::exists(path, ec))
        throw Error(ErrorCode::Io, fmt::format("trace {}: no such file", path.string()), path.string());
    if (fs::is_directory(path, ec))
        throw Error(ErrorCode::Io, fmt::format("trace {}: is a folder, not a file", path.string()), path.string());
    if (!std::ifstream(path, std::ios::binary))
        throw Error(ErrorCode::Io, fmt::format("trace {}: cannot open for reading", path.string()), path.string(),
                    "check the file's permissions");
    if (H5Fis_hdf5(path.c_str()) <= 0) {
        h5::clearErrors();
        throw Error(ErrorCode::Format, fmt::format("trace {}: not an HDF5 file", path.string()), path.string());
    }

    TraceReader r;
    Impl& d = *r.m_impl;
    d.path = path;
    d.file = h5::File(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT));
    if (!d.file)
        d.formatError("cannot open as HDF5 (truncated or corrupt file)");
    d.readMeta();
    d.readTokens();
    d.checkLogits();
    d.readLayers();
    return r;
}

const TraceMeta& TraceReader::meta() const { return m_impl->meta; }
const std::vector<int32_t>& TraceReader::tokens() const { return m_impl->tokens; }
const std::vector<std::string>& TraceReader::tokenText() const { return m_impl->tokenText; }

bool TraceReader::has(const std::string& datasetPath) const
{
    h5::silence();
    return bool(openPath(m_impl->file.get(), datasetPath, H5I_DATASET));
}

Tensor TraceReader::read(const std::string& datasetPath) const
{
    h5::silence();
    return m_impl->readSlab(datasetPath, std::nullopt);
}

Tensor TraceReader::readRows(const std::string& datasetPath, int64_t begin, int64_t end) const
{
    h5::silence();
    return m_impl->readSlab(datasetPath, std::make_pair(begin, end));
}

Shape TraceReader::shape(const std::string& datasetPath) const
{
    h5::silence();
    const h5::Object ds = m_impl->dataset(datasetPath);
    return toShape(m_impl->info(ds.get(), datasetPath).dims);
}

std::vector<int> TraceReader::layers() const
{
    std::vector<int> out;
    for (const auto& [layer, names] : m_impl->layerDatasets)
        out.push_back(layer);
    return out;
}

std::vector<std::string> TraceReader::datasets(int layer) const
{
    auto it = m_impl->layerDatasets.find(layer);
    return it == m_impl->layerDatasets.end() ? std::vector<std::string>{} : it->second;
}

std::string TraceReader::attribute(const std::string& name) const
{
    h5::silence();
    const hid_t root = m_impl->file.get();
    if (auto s = m_impl->stringAttr(root, name))
        return *s;
    if (auto i = m_impl->intAttr(root, name))
        return std::to_string(*i);
    if (H5Aexists(root, name.c_str()) > 0) {
        const h5::Attribute attr(H5Aopen(root, name.c_str(), H5P_DEFAULT));
        const h5::Datatype type(H5Aget_type(attr.get()));
        const h5::Dataspace space(H5Aget_space(attr.get()));
        double v = 0;
        if (H5Tget_class(type.get()) == H5T_FLOAT && H5Sget_simple_extent_npoints(space.get()) == 1 &&
            H5Aread(attr.get(), H5T_NATIVE_DOUBLE, &v) >= 0)
            return fmt::format("{}", v);
    }
    return {};
}

std::vector<std::string> TraceReader::attributeStrings(const std::string& name) const
{
    h5::silence();
    return m_impl->stringListAttr(m_impl->file.get(), name);
}

std::vector<int64_t> TraceReader::checkpoints() const
{
    h5::silence();
    std::vector<int64_t> out;
    const h5::Object group = openAs(m_impl->file.get(), "checkpoints", H5I_GROUP);
    if (!group)
        return out;
    for (const std::string& name : childNames(group.get())) {
        int64_t v = -1;
        auto [ptr, ec] = std::from_chars(name.data(), name.data() + name.size(), v);
        if (!name.empty() && ec == std::errc() && ptr == name.data() + name.size() && v >= 0)
            out.push_back(v);
    }
    std::sort(out.begin(), out.end());
    return out;
}

std::vector<std::pair<std::string, Tensor>> TraceReader::readCheckpoint(int64_t position) const
{
    h5::silence();
    const std::string root = fmt::format("/checkpoints/{}", position);
    const h5::Object group = openPath(m_impl->file.get(), root, H5I_GROUP);
    if (!group)
        m_impl->formatError(fmt::format("no checkpoint at token {} ({} is missing)", position, root));
    std::vector<std::pair<std::string, Tensor>> out;
    // depth-first over the group; dataset paths below it become dotted names
    std::function<void(hid_t, const std::string&)> walk = [&](hid_t loc, const std::string& prefix) {
        for (const std::string& child : childNames(loc)) {
            const std::string name = prefix.empty() ? child : prefix + "." + child;
            if (const h5::Object sub = openAs(loc, child, H5I_GROUP))
                walk(sub.get(), name);
            else if (openAs(loc, child, H5I_DATASET)) {
                std::string rel = name;
                std::replace(rel.begin(), rel.end(), '.', '/');
                out.emplace_back(name, m_impl->readSlab(root + "/" + rel, std::nullopt));
            }
        }
    };
    walk(group.get(), "");
    std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
    return out;
}

} // namespace archlens
