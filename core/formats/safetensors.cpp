// safetensors reader, sharded Checkpoint and atomic writer. The validation mirrors the
// reference reader (safetensors/src/tensor.rs, see model-formats.md §2.3) and adds the
// duplicate-name check the spec asks for. Nothing is handed out before the whole header
// has been checked, and only the header pages of the mapping are touched on open.
#include "formats/safetensors.h"

#include <algorithm>
#include <atomic>
#include <bit>
#include <cerrno>
#include <cstring>
#include <limits>
#include <random>
#include <set>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

namespace archlens {

namespace fs = std::filesystem;
using nlohmann::json;

static_assert(
    std::endian::native == std::endian::little, "safetensors is little-endian; big-endian hosts need byte swaps");

namespace {

constexpr uint64_t kMaxHeaderBytes = 100'000'000; // same limit as the reference reader

struct DTypeEntry {
    StDType type;
    std::string_view name;
    int bits;
};

constexpr DTypeEntry kDTypes[] = {
    {StDType::BOOL, "BOOL", 8},
    {StDType::U8, "U8", 8},
    {StDType::I8, "I8", 8},
    {StDType::F8_E4M3, "F8_E4M3", 8},
    {StDType::F8_E5M2, "F8_E5M2", 8},
    {StDType::F8_E8M0, "F8_E8M0", 8},
    {StDType::F8_E4M3FNUZ, "F8_E4M3FNUZ", 8},
    {StDType::F8_E5M2FNUZ, "F8_E5M2FNUZ", 8},
    {StDType::I16, "I16", 16},
    {StDType::U16, "U16", 16},
    {StDType::F16, "F16", 16},
    {StDType::BF16, "BF16", 16},
    {StDType::I32, "I32", 32},
    {StDType::U32, "U32", 32},
    {StDType::F32, "F32", 32},
    {StDType::C64, "C64", 64},
    {StDType::F64, "F64", 64},
    {StDType::I64, "I64", 64},
    {StDType::U64, "U64", 64},
    {StDType::F4, "F4", 4},
    {StDType::F6_E2M3, "F6_E2M3", 6},
    {StDType::F6_E3M2, "F6_E3M2", 6},
};

const DTypeEntry* findDType(std::string_view name)
{
    for (const DTypeEntry& e : kDTypes)
        if (e.name == name)
            return &e;
    return nullptr;
}

const DTypeEntry& dtypeEntry(StDType t)
{
    for (const DTypeEntry& e : kDTypes)
        if (e.type == t)
            return e;
    ARCHLENS_ASSERT(false, "StDType {} missing from the table", int(t));
    return kDTypes[0];
}

// The StDTypes a Tensor can hold.
bool toTensorDType(StDType t, DType& out)
{
    switch (t) {
    case StDType::F32: out = DType::F32; return true;
    case StDType::F16: out = DType::F16; return true;
    case StDType::BF16: out = DType::BF16; return true;
    case StDType::I32: out = DType::I32; return true;
    case StDType::I64: out = DType::I64; return true;
    default: return false;
    }
}

std::string errnoText(int err) { return std::strerror(err); }

Error formatError(const fs::path& file, std::string message)
{
    return Error(ErrorCode::Format, std::move(message), file.string());
}

// nlohmann keeps the last of duplicate keys silently; this parse rejects them (at any depth)
// and turns syntax and UTF-8 errors into Error(Format) naming `file`.
json parseJsonStrict(std::string_view text, const fs::path& file, std::string_view what)
{
    std::vector<std::set<std::string>> keyStack;
    std::string duplicate;
    auto callback = [&](int /*depth*/, json::parse_event_t event, json& parsed) -> bool {
        switch (event) {
        case json::parse_event_t::object_start: keyStack.emplace_back(); break;
        case json::parse_event_t::object_end:
            if (!keyStack.empty())
                keyStack.pop_back();
            break;
        case json::parse_event_t::key:
            if (!keyStack.empty() && parsed.is_string() && !keyStack.back().insert(parsed.get<std::string>()).second
                && duplicate.empty())
                duplicate = parsed.get<std::string>();
            break;
        default: break;
        }
        return true;
    };
    // nlohmann's lexer takes a NUL byte for the end of input and would ignore what follows;
    // JSON has no raw NUL (strings escape it), so any NUL makes the text invalid.
    if (const size_t nul = text.find('\0'); nul != std::string_view::npos)
        throw formatError(file, fmt::format("{} is not valid UTF-8 JSON: NUL byte at offset {}", what, nul));
    json j;
    try {
        j = json::parse(text.begin(), text.end(), callback);
    } catch (const json::exception& e) {
        throw formatError(file, fmt::format("{} is not valid UTF-8 JSON: {}", what, e.what()));
    }
    if (!duplicate.empty())
        throw formatError(
            file, fmt::format("{} has the key '{}' more than once; keys must be unique", what, duplicate));
    return j;
}

std::string jsonTypeName(const json& j) { return j.type_name(); }

// Levenshtein distance, used only on the error path to suggest close tensor names.
size_t editDistance(std::string_view a, std::string_view b)
{
    std::vector<size_t> row(b.size() + 1);
    for (size_t j = 0; j <= b.size(); ++j)
        row[j] = j;
    for (size_t i = 1; i <= a.size(); ++i) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= b.size(); ++j) {
            const size_t up = row[j];
            row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
            diag = up;
        }
    }
    return row[b.size()];
}

} // namespace

std::string_view stDTypeName(StDType t) { return dtypeEntry(t).name; }
int stDTypeBits(StDType t) { return dtypeEntry(t).bits; }

// ---- the mapping -------------------------------------------------------------------------

// The whole file mapped read-only; tensor views hold it through shared_ptr<Storage>, so the
// mapping lives as long as any view. Writing through a view of it is a bug (SIGSEGV).
class SafetensorsFile::Mapping final : public Storage {
public:
    Mapping(void* data, size_t bytes)
        : m_data(static_cast<std::byte*>(data))
        , m_bytes(bytes)
    {
    }
    ~Mapping() override { ::munmap(m_data, m_bytes); }
    Mapping(const Mapping&) = delete;
    Mapping& operator=(const Mapping&) = delete;

    std::byte* data() override { return m_data; }
    size_t bytes() const override { return m_bytes; }
    bool mapped() const override { return true; }

private:
    std::byte* m_data;
    size_t m_bytes;
};

// ---- SafetensorsFile ---------------------------------------------------------------------

std::shared_ptr<SafetensorsFile> SafetensorsFile::open(const fs::path& path)
{
    const std::string file = path.string();
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        throw Error(ErrorCode::Io, fmt::format("cannot open safetensors file: {}", errnoText(errno)), file);
    struct stat st { };
    if (::fstat(fd, &st) != 0) {
        const int err = errno;
        ::close(fd);
        throw Error(ErrorCode::Io, fmt::format("cannot stat: {}", errnoText(err)), file);
    }
    if (!S_ISREG(st.st_mode)) {
        ::close(fd);
        throw Error(ErrorCode::Io, "not a regular file", file);
    }
    const uint64_t fileSize = uint64_t(st.st_size);
    if (fileSize < 8) {
        ::close(fd);
        throw formatError(path, fmt::format("header too small: the file has {} bytes, expected at least 8", fileSize));
    }
    void* base = ::mmap(nullptr, size_t(fileSize), PROT_READ, MAP_PRIVATE, fd, 0);
    const int mmapErr = errno;
    ::close(fd); // the mapping keeps its own reference to the file
    if (base == MAP_FAILED)
        throw Error(ErrorCode::Io, fmt::format("cannot memory-map {} bytes: {}", fileSize, errnoText(mmapErr)), file);

    std::shared_ptr<SafetensorsFile> self(new SafetensorsFile());
    self->m_path = path;
    self->m_mapping = std::make_shared<Mapping>(base, size_t(fileSize));
    self->m_fileSize = fileSize;
    const std::byte* bytes = self->m_mapping->data();

    // 1-2. header length
    uint64_t headerLen = 0;
    std::memcpy(&headerLen, bytes, 8);
    if (headerLen > kMaxHeaderBytes)
        throw formatError(path,
            fmt::format("header too large: header length is {} bytes, the limit is {}", headerLen, kMaxHeaderBytes));
    if (headerLen > fileSize - 8)
        throw formatError(path,
            fmt::format("invalid header length: 8 + {} header bytes exceed the file size {}", headerLen, fileSize));
    self->m_dataStart = 8 + headerLen;
    const uint64_t dataBytes = fileSize - self->m_dataStart;

    // 3. header schema
    const std::string_view headerText(reinterpret_cast<const char*>(bytes + 8), size_t(headerLen));
    const json header = parseJsonStrict(headerText, path, "the header");
    if (!header.is_object())
        throw formatError(path, fmt::format("the header must be a JSON object, found {}", jsonTypeName(header)));

    for (const auto& [name, entry] : header.items()) {
        if (name == "__metadata__") {
            if (entry.is_null())
                continue;
            if (!entry.is_object())
                throw formatError(
                    path, fmt::format("__metadata__ must be an object of strings, found {}", jsonTypeName(entry)));
            for (const auto& [key, value] : entry.items()) {
                if (!value.is_string())
                    throw formatError(path,
                        fmt::format("__metadata__ value of '{}' must be a string, found {}", key, jsonTypeName(value)));
                self->m_metadata[key] = value.get<std::string>();
            }
            continue;
        }
        if (!entry.is_object())
            throw formatError(path,
                fmt::format("tensor '{}': entry must be an object with dtype, shape and "
                            "data_offsets, found {}",
                    name, jsonTypeName(entry)));
        SafetensorInfo info;
        info.name = name;

        const auto dtypeIt = entry.find("dtype");
        if (dtypeIt == entry.end())
            throw formatError(path, fmt::format("tensor '{}': missing 'dtype'", name));
        if (!dtypeIt->is_string())
            throw formatError(
                path, fmt::format("tensor '{}': 'dtype' must be a string, found {}", name, jsonTypeName(*dtypeIt)));
        const std::string dtypeName = dtypeIt->get<std::string>();
        const DTypeEntry* dt = findDType(dtypeName);
        if (!dt)
            throw formatError(path, fmt::format("tensor '{}': unknown dtype '{}'", name, dtypeName));
        info.dtype = dt->type;

        const auto shapeIt = entry.find("shape");
        if (shapeIt == entry.end())
            throw formatError(path, fmt::format("tensor '{}': missing 'shape'", name));
        if (!shapeIt->is_array())
            throw formatError(
                path, fmt::format("tensor '{}': 'shape' must be an array, found {}", name, jsonTypeName(*shapeIt)));
        for (const json& d : *shapeIt) {
            if (!d.is_number_unsigned() || d.get<uint64_t>() > uint64_t(std::numeric_limits<int64_t>::max()))
                throw formatError(
                    path, fmt::format("tensor '{}': shape {} must hold non-negative integers", name, shapeIt->dump()));
            info.shape.push_back(int64_t(d.get<uint64_t>()));
        }

        const auto offIt = entry.find("data_offsets");
        if (offIt == entry.end())
            throw formatError(path, fmt::format("tensor '{}': missing 'data_offsets'", name));
        if (!offIt->is_array() || offIt->size() != 2 || !(*offIt)[0].is_number_unsigned()
            || !(*offIt)[1].is_number_unsigned())
            throw formatError(path,
                fmt::format("tensor '{}': data_offsets must be [begin, end] with non-negative "
                            "integers, found {}",
                    name, offIt->dump()));
        info.begin = (*offIt)[0].get<uint64_t>();
        info.end = (*offIt)[1].get<uint64_t>();
        if (info.end < info.begin)
            throw formatError(path,
                fmt::format("tensor '{}': invalid offset: end {} is before begin {}", name, info.end, info.begin));

        // 5. size from shape and dtype, overflow-checked
        uint64_t bits = uint64_t(dt->bits);
        for (int64_t d : info.shape)
            if (__builtin_mul_overflow(bits, uint64_t(d), &bits))
                throw formatError(path,
                    fmt::format("tensor '{}': validation overflow: shape {} x {} bits does not "
                                "fit in 64 bits",
                        name, shapeToString(info.shape), dt->bits));
        if (bits % 8 != 0)
            throw formatError(path,
                fmt::format("tensor '{}': misaligned slice: shape {} of {} is {} bits, not a "
                            "whole number of bytes",
                    name, shapeToString(info.shape), dt->name, bits));
        if (info.end - info.begin != bits / 8)
            throw formatError(path,
                fmt::format("tensor '{}': invalid shape, data type, or offset: shape {} of {} "
                            "needs {} bytes, data_offsets [{}, {}] span {}",
                    name, shapeToString(info.shape), dt->name, bits / 8, info.begin, info.end, info.end - info.begin));
        self->m_tensors.emplace(name, std::move(info)); // names are unique: parseJsonStrict checked
    }

    // 4 and 6. the spans tile the data buffer exactly
    std::vector<const SafetensorInfo*> byOffset;
    byOffset.reserve(self->m_tensors.size());
    for (const auto& [name, info] : self->m_tensors)
        byOffset.push_back(&info);
    std::sort(byOffset.begin(), byOffset.end(), [](const SafetensorInfo* a, const SafetensorInfo* b) {
        return std::tie(a->begin, a->end) < std::tie(b->begin, b->end);
    });
    uint64_t expectedBegin = 0;
    const SafetensorInfo* previous = nullptr;
    for (const SafetensorInfo* info : byOffset) {
        if (info->begin != expectedBegin) {
            if (!previous)
                throw formatError(path,
                    fmt::format("tensor '{}': invalid offset: the first tensor must begin at 0, "
                                "found {}",
                        info->name, info->begin));
            throw formatError(path,
                fmt::format("tensor '{}': invalid offset: begins at {}, expected {} (end of "
                            "'{}'); {}",
                    info->name, info->begin, expectedBegin, previous->name,
                    info->begin > expectedBegin ? "gap" : "overlap"));
        }
        expectedBegin = info->end;
        previous = info;
    }
    if (expectedBegin != dataBytes)
        throw formatError(path,
            fmt::format("incomplete metadata, file not fully covered: tensors end at data "
                        "offset {}, the data buffer has {} bytes (file size {}, header {})",
                expectedBegin, dataBytes, fileSize, headerLen));
    return self;
}

SafetensorsFile::~SafetensorsFile() = default;

const SafetensorInfo& SafetensorsFile::info(const std::string& name) const
{
    const auto it = m_tensors.find(name);
    if (it == m_tensors.end())
        throw formatError(m_path, fmt::format("no tensor '{}' in this file", name));
    return it->second;
}

std::shared_ptr<SafetensorsFile> SafetensorsFile::fromTensors(const fs::path& label,
    const std::vector<std::pair<std::string, Tensor>>& tensors)
{
    std::shared_ptr<SafetensorsFile> f(new SafetensorsFile());
    f->m_path = label;
    uint64_t offset = 0;
    for (const auto& [name, t] : tensors) {
        if (!t.defined())
            throw Error(ErrorCode::InvalidArgument, fmt::format("tensor '{}' is undefined", name), label.string());
        StDType dtype = StDType::F32;
        switch (t.dtype()) {
        case DType::F32: dtype = StDType::F32; break;
        case DType::F16: dtype = StDType::F16; break;
        case DType::BF16: dtype = StDType::BF16; break;
        case DType::I32: dtype = StDType::I32; break;
        case DType::I64: dtype = StDType::I64; break;
        }
        SafetensorInfo info {name, dtype, t.shape(), offset, offset + t.nbytes()};
        offset += t.nbytes();
        if (!f->m_tensors.emplace(name, info).second)
            throw Error(ErrorCode::InvalidArgument, fmt::format("tensor '{}' is given twice", name), label.string());
        f->m_memory.emplace(name, t);
    }
    f->m_fileSize = offset;
    return f;
}

Tensor SafetensorsFile::tensor(const std::string& name) const
{
    const SafetensorInfo& i = info(name);
    if (const auto mem = m_memory.find(name); mem != m_memory.end())
        return mem->second;
    DType dtype {};
    if (!toTensorDType(i.dtype, dtype))
        throw Error(ErrorCode::Unsupported,
            fmt::format(
                "tensor '{}' has dtype {}; only F32, F16, BF16, I32 and I64 can be loaded", name, stDTypeName(i.dtype)),
            m_path.string());
    const size_t offset = size_t(m_dataStart + i.begin);
    const std::byte* address = m_mapping->data() + offset;
    if (reinterpret_cast<uintptr_t>(address) % dtypeSize(dtype) == 0)
        return Tensor::view(m_mapping, offset, i.shape, dtype);
    // Unpadded headers from foreign writers leave data misaligned for its type: copy out.
    Tensor copy = Tensor::empty(i.shape, dtype);
    std::memcpy(copy.raw(), address, size_t(i.end - i.begin));
    return copy;
}

// ---- Checkpoint --------------------------------------------------------------------------

Checkpoint Checkpoint::open(const fs::path& dir)
{
    std::error_code ec;
    if (!fs::is_directory(dir, ec))
        throw Error(ErrorCode::Io, "not a folder (expected a checkpoint folder with model.safetensors)", dir.string());

    Checkpoint ck;
    ck.m_dir = dir;
    const fs::path single = dir / "model.safetensors";
    const fs::path index = dir / "model.safetensors.index.json";

    if (fs::exists(single, ec)) {
        ck.m_files.push_back(SafetensorsFile::open(single));
        for (const auto& [name, info] : ck.m_files[0]->tensors())
            ck.m_where.emplace(name, 0);
        return ck;
    }

    if (fs::exists(index, ec)) {
        const std::string indexFile = index.string();
        std::string text;
        {
            const int fd = ::open(index.c_str(), O_RDONLY | O_CLOEXEC);
            if (fd < 0)
                throw Error(ErrorCode::Io, fmt::format("cannot open: {}", errnoText(errno)), indexFile);
            char buf[65536];
            for (;;) {
                const ssize_t n = ::read(fd, buf, sizeof buf);
                if (n < 0 && errno == EINTR)
                    continue;
                if (n < 0) {
                    const int err = errno;
                    ::close(fd);
                    throw Error(ErrorCode::Io, fmt::format("cannot read: {}", errnoText(err)), indexFile);
                }
                if (n == 0)
                    break;
                text.append(buf, size_t(n));
            }
            ::close(fd);
        }
        const json j = parseJsonStrict(text, index, "the index");
        if (!j.is_object())
            throw formatError(index, fmt::format("the index must be a JSON object, found {}", jsonTypeName(j)));
        const auto wm = j.find("weight_map");
        if (wm == j.end())
            throw formatError(index, "missing 'weight_map'");
        if (!wm->is_object())
            throw formatError(index,
                fmt::format("'weight_map' must be an object of tensor name -> shard file, "
                            "found {}",
                    jsonTypeName(*wm)));
        if (wm->empty())
            throw formatError(index, "'weight_map' is empty");

        std::map<std::string, size_t> shardIndex; // shard file name -> index into m_files
        std::vector<std::pair<std::string, std::string>> listed; // tensor -> shard
        for (const auto& [tensor, shardJson] : wm->items()) {
            if (!shardJson.is_string())
                throw formatError(index,
                    fmt::format(
                        "weight_map entry '{}' must be a shard file name, found {}", tensor, jsonTypeName(shardJson)));
            const std::string shard = shardJson.get<std::string>();
            const fs::path rel(shard);
            if (shard.empty() || rel.is_absolute()
                || std::any_of(rel.begin(), rel.end(), [](const fs::path& p) { return p == ".."; }))
                throw formatError(index,
                    fmt::format("weight_map entry '{}' names the shard '{}', expected a file "
                                "name inside the checkpoint folder",
                        tensor, shard));
            listed.emplace_back(tensor, shard);
            if (shardIndex.count(shard))
                continue;
            const fs::path shardPath = dir / rel;
            if (!fs::exists(shardPath, ec))
                throw Error(ErrorCode::Io,
                    fmt::format(
                        "shard '{}' (listed for tensor '{}') does not exist in {}", shard, tensor, dir.string()),
                    indexFile);
            shardIndex.emplace(shard, ck.m_files.size());
            ck.m_files.push_back(SafetensorsFile::open(shardPath));
        }

        for (const auto& [tensor, shard] : listed) {
            const size_t at = shardIndex.at(shard);
            if (!ck.m_files[at]->contains(tensor))
                throw formatError(index,
                    fmt::format("tensor '{}' is listed in shard '{}' but that file does not "
                                "contain it",
                        tensor, shard));
        }
        // Every tensor of every shard, each in exactly one shard (tensors a shard holds beyond
        // the weight_map are kept, as transformers loads whole shards).
        for (size_t f = 0; f < ck.m_files.size(); ++f) {
            for (const auto& [name, info] : ck.m_files[f]->tensors()) {
                const auto [it, inserted] = ck.m_where.emplace(name, f);
                if (!inserted)
                    throw formatError(index,
                        fmt::format("tensor '{}' is present in two shards: '{}' and '{}'", name,
                            ck.m_files[it->second]->path().filename().string(),
                            ck.m_files[f]->path().filename().string()));
            }
        }
        return ck;
    }

    const bool hasBin = fs::exists(dir / "pytorch_model.bin", ec);
    const bool hasBinIndex = fs::exists(dir / "pytorch_model.bin.index.json", ec);
    if (hasBin || hasBinIndex)
        throw Error(ErrorCode::Unsupported,
            fmt::format("only PyTorch pickle weights ({}) found; ArchLens reads safetensors only, convert "
                        "to safetensors",
                hasBin ? "pytorch_model.bin" : "pytorch_model.bin.index.json"),
            dir.string(),
            fmt::format("python -c \"from transformers import AutoModelForCausalLM as M; "
                        "M.from_pretrained('{0}').save_pretrained('{0}-safetensors', "
                        "safe_serialization=True)\" and copy config.json and the tokenizer files along",
                dir.string()));

    throw Error(ErrorCode::Io,
        "no weights found: expected model.safetensors, or model.safetensors.index.json with its shards", dir.string());
}

Checkpoint Checkpoint::fromTensors(const fs::path& dir, const std::vector<std::pair<std::string, Tensor>>& tensors)
{
    Checkpoint ck;
    ck.m_dir = dir;
    ck.m_files.push_back(SafetensorsFile::fromTensors(dir / "model.safetensors", tensors));
    for (const auto& [name, info] : ck.m_files[0]->tensors())
        ck.m_where.emplace(name, 0);
    return ck;
}

bool Checkpoint::contains(const std::string& name) const { return m_where.count(name) != 0; }

std::vector<std::string> Checkpoint::names() const
{
    std::vector<std::string> out;
    out.reserve(m_where.size());
    for (const auto& [name, f] : m_where)
        out.push_back(name);
    return out;
}

namespace {

Error missingTensor(const std::string& name, const fs::path& dir, const std::map<std::string, size_t>& where)
{
    std::string message = fmt::format("missing tensor '{}' in {}", name, dir.string());
    // Suggestions are cheap for real checkpoints (a few thousand names); skip them beyond.
    if (!where.empty() && where.size() <= 50'000) {
        std::vector<std::pair<size_t, const std::string*>> ranked;
        ranked.reserve(where.size());
        for (const auto& [candidate, f] : where)
            ranked.emplace_back(editDistance(name, candidate), &candidate);
        const size_t keep = std::min<size_t>(3, ranked.size());
        std::partial_sort(ranked.begin(), ranked.begin() + std::ptrdiff_t(keep), ranked.end(),
            [](const auto& a, const auto& b) { return std::tie(a.first, *a.second) < std::tie(b.first, *b.second); });
        std::vector<std::string> close;
        for (size_t i = 0; i < keep; ++i)
            close.push_back("'" + *ranked[i].second + "'");
        message += fmt::format("; closest names: {}", fmt::join(close, ", "));
    }
    return Error(ErrorCode::Format, message, dir.string());
}

} // namespace

const SafetensorInfo& Checkpoint::info(const std::string& name) const
{
    const auto it = m_where.find(name);
    if (it == m_where.end())
        throw missingTensor(name, m_dir, m_where);
    return m_files[it->second]->info(name);
}

const fs::path& Checkpoint::fileOf(const std::string& name) const
{
    const auto it = m_where.find(name);
    if (it == m_where.end())
        throw missingTensor(name, m_dir, m_where);
    return m_files[it->second]->path();
}

Tensor Checkpoint::get(const std::string& name) const
{
    const auto it = m_where.find(name);
    if (it == m_where.end())
        throw missingTensor(name, m_dir, m_where);
    return m_files[it->second]->tensor(name);
}

Tensor Checkpoint::getF32(const std::string& name, const Shape& expected) const
{
    const SafetensorInfo& i = info(name);
    const fs::path& file = fileOf(name);
    if (i.shape != expected)
        throw Error(ErrorCode::Shape,
            fmt::format("tensor '{}' has shape {}, expected {}", name, shapeToString(i.shape), shapeToString(expected)),
            file.string());
    if (i.dtype != StDType::F32 && i.dtype != StDType::F16 && i.dtype != StDType::BF16)
        throw Error(ErrorCode::Shape,
            fmt::format(
                "tensor '{}' has dtype {}, expected a floating type (F32, F16 or BF16)", name, stDTypeName(i.dtype)),
            file.string());
    Tensor t = get(name);
    return t.dtype() == DType::F32 ? t : t.toF32();
}

uint64_t Checkpoint::totalBytes() const
{
    uint64_t total = 0;
    for (const auto& f : m_files)
        for (const auto& [name, info] : f->tensors())
            total += info.end - info.begin;
    return total;
}

std::string Checkpoint::dominantFloatDType() const
{
    // Weighted by bytes, so a few F32 norm vectors next to BF16 matrices give "BF16".
    uint64_t f32 = 0, f16 = 0, bf16 = 0;
    for (const auto& f : m_files)
        for (const auto& [name, info] : f->tensors()) {
            const uint64_t n = info.end - info.begin;
            if (info.dtype == StDType::F32)
                f32 += n;
            else if (info.dtype == StDType::F16)
                f16 += n;
            else if (info.dtype == StDType::BF16)
                bf16 += n;
        }
    if (bf16 > f32 && bf16 >= f16)
        return "BF16";
    if (f16 > f32 && f16 > bf16)
        return "F16";
    return "F32";
}

// ---- writer ------------------------------------------------------------------------------

namespace {

// Owns the temp file until commit(); any early exit closes and removes it.
class TempFile {
public:
    explicit TempFile(const fs::path& target)
        : m_target(target)
    {
        static std::atomic<uint64_t> counter {0};
        std::random_device rd;
        const fs::path dir = target.has_parent_path() ? target.parent_path() : fs::path(".");
        for (int attempt = 0; attempt < 100; ++attempt) {
            m_path = dir
                / fmt::format(
                    ".{}.tmp-{}-{}-{:08x}", target.filename().string(), ::getpid(), counter.fetch_add(1), rd());
            m_fd = ::open(m_path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
            if (m_fd >= 0 || errno != EEXIST)
                break;
        }
        if (m_fd < 0)
            throw Error(ErrorCode::Io,
                fmt::format("cannot create a temporary file in {}: {}", dir.string(), errnoText(errno)),
                target.string());
    }
    ~TempFile()
    {
        if (m_fd >= 0)
            ::close(m_fd);
        if (!m_committed)
            ::unlink(m_path.c_str());
    }
    TempFile(const TempFile&) = delete;
    TempFile& operator=(const TempFile&) = delete;

    void write(const void* data, size_t n)
    {
        const char* p = static_cast<const char*>(data);
        while (n > 0) {
            const ssize_t w = ::write(m_fd, p, std::min<size_t>(n, size_t(1) << 30));
            if (w < 0 && errno == EINTR)
                continue;
            if (w <= 0)
                fail("cannot write", w < 0 ? errno : EIO);
            p += w;
            n -= size_t(w);
        }
    }

    void commit()
    {
        if (::fsync(m_fd) != 0)
            fail("cannot fsync", errno);
        const int fd = m_fd;
        m_fd = -1;
        if (::close(fd) != 0)
            fail("cannot close", errno);
        if (::rename(m_path.c_str(), m_target.c_str()) != 0)
            fail("cannot rename the temporary file over the target", errno);
        m_committed = true;
        // Make the rename itself durable; failure here leaves a complete file, so it is not fatal.
        const fs::path dir = m_target.has_parent_path() ? m_target.parent_path() : fs::path(".");
        const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd >= 0) {
            ::fsync(dfd);
            ::close(dfd);
        }
    }

private:
    [[noreturn]] void fail(std::string_view what, int err)
    {
        throw Error(ErrorCode::Io, fmt::format("{}: {}", what, errnoText(err)), m_target.string());
    }

    fs::path m_target;
    fs::path m_path;
    int m_fd = -1;
    bool m_committed = false;
};

} // namespace

void writeSafetensors(const fs::path& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
    const std::map<std::string, std::string>& metadata)
{
    // Data order as the reference writer: larger element size first, then name, so every
    // tensor is naturally aligned in the 8-aligned data section. Header keys come out sorted
    // by name (nlohmann's object is a std::map).
    std::vector<size_t> order(tensors.size());
    std::set<std::string> seen;
    for (size_t i = 0; i < tensors.size(); ++i) {
        const auto& [name, t] = tensors[i];
        if (name == "__metadata__")
            throw Error(ErrorCode::InvalidArgument, "'__metadata__' cannot be a tensor name", path.string());
        if (!seen.insert(name).second)
            throw Error(ErrorCode::InvalidArgument, fmt::format("tensor '{}' given twice", name), path.string());
        if (!t.defined())
            throw Error(ErrorCode::InvalidArgument, fmt::format("tensor '{}' is undefined", name), path.string());
        order[i] = i;
    }
    std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
        const size_t sa = dtypeSize(tensors[a].second.dtype()), sb = dtypeSize(tensors[b].second.dtype());
        return sa != sb ? sa > sb : tensors[a].first < tensors[b].first;
    });

    json header = json::object();
    if (!metadata.empty()) {
        json meta = json::object();
        for (const auto& [k, v] : metadata)
            meta[k] = v;
        header["__metadata__"] = std::move(meta);
    }
    uint64_t offset = 0;
    for (size_t i : order) {
        const auto& [name, t] = tensors[i];
        const uint64_t n = t.nbytes();
        header[name] = {
            {"dtype", std::string(dtypeName(t.dtype()))}, {"shape", t.shape()}, {"data_offsets", {offset, offset + n}}};
        offset += n;
    }
    std::string text;
    try {
        text = header.dump();
    } catch (const json::exception& e) {
        throw Error(ErrorCode::InvalidArgument,
            fmt::format("a tensor name or metadata string is not valid UTF-8: {}", e.what()), path.string());
    }
    text.append((8 - text.size() % 8) % 8, ' ');
    const uint64_t headerLen = text.size();

    TempFile out(path);
    out.write(&headerLen, 8);
    out.write(text.data(), text.size());
    for (size_t i : order) {
        const Tensor& t = tensors[i].second;
        if (t.nbytes() > 0)
            out.write(t.raw(), t.nbytes());
    }
    out.commit();
}

} // namespace archlens
