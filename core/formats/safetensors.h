// safetensors reader (memory-mapped, strictly validated) and writer (atomic).
// Format facts: ../shared/docs/model-formats.md §2. Every rule of the format is checked
// before any tensor is handed out; errors name the file and, where there is one, the tensor.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "tensor/tensor.h"

namespace archlens {

// Every dtype the format defines (so valid files with e.g. BOOL buffers open fine);
// only F32/F16/BF16/I32/I64 can be turned into a Tensor.
enum class StDType {
    BOOL, U8, I8, F8_E4M3, F8_E5M2, F8_E8M0, F8_E4M3FNUZ, F8_E5M2FNUZ, I16, U16, F16, BF16,
    I32, U32, F32, C64, F64, I64, U64, F4, F6_E2M3, F6_E3M2
};
std::string_view stDTypeName(StDType t);
int stDTypeBits(StDType t);

struct SafetensorInfo {
    std::string name;
    StDType dtype;
    Shape shape;
    uint64_t begin = 0; // byte offsets relative to the data buffer; end exclusive
    uint64_t end = 0;
};

class SafetensorsFile {
public:
    // Memory-maps and validates. Throws Error(Io|Format) naming the file.
    static std::shared_ptr<SafetensorsFile> open(const std::filesystem::path& path);
    // Tensors already in memory (F32/F16/BF16/I32/I64) presented as a file named `label`
    // (nothing is read or written): synthetic models for benchmarks and tests.
    static std::shared_ptr<SafetensorsFile> fromTensors(const std::filesystem::path& label,
                                                        const std::vector<std::pair<std::string, Tensor>>& tensors);
    ~SafetensorsFile();

    const std::filesystem::path& path() const { return m_path; }
    const std::map<std::string, SafetensorInfo>& tensors() const { return m_tensors; }
    const std::map<std::string, std::string>& metadata() const { return m_metadata; }
    bool contains(const std::string& name) const { return m_tensors.count(name) != 0; }
    const SafetensorInfo& info(const std::string& name) const; // Error naming file + tensor if absent
    uint64_t fileSize() const { return m_fileSize; }

    // A zero-copy view into the mapping (keeps the mapping alive). Unsupported dtypes
    // (BOOL, F8 ...) are an Error(Unsupported) naming file and tensor.
    Tensor tensor(const std::string& name) const;

private:
    SafetensorsFile() = default;
    class Mapping;
    std::filesystem::path m_path;
    std::shared_ptr<Mapping> m_mapping;
    uint64_t m_fileSize = 0;
    uint64_t m_dataStart = 0; // 8 + header length
    std::map<std::string, SafetensorInfo> m_tensors;
    std::map<std::string, std::string> m_metadata;
    std::map<std::string, Tensor> m_memory; // fromTensors: the tensors themselves
};

// A checkpoint folder's weights: model.safetensors, or shards listed by
// model.safetensors.index.json. A folder with only pytorch_model.bin(.index.json) gets an
// Error(Unsupported) saying to convert it to safetensors.
class Checkpoint {
public:
    static Checkpoint open(const std::filesystem::path& dir);
    // A checkpoint of tensors already in memory (see SafetensorsFile::fromTensors); `dir` is
    // only a label for messages.
    static Checkpoint fromTensors(const std::filesystem::path& dir,
                                  const std::vector<std::pair<std::string, Tensor>>& tensors);

    const std::filesystem::path& dir() const { return m_dir; }
    bool contains(const std::string& name) const;
    std::vector<std::string> names() const;
    const SafetensorInfo& info(const std::string& name) const;
    const std::filesystem::path& fileOf(const std::string& name) const;
    // Native dtype, zero-copy.
    Tensor get(const std::string& name) const;
    // Checks the shape (Error(Shape) naming file, tensor, got and expected), then returns
    // F32: a view when stored as F32, else a widened owned copy.
    Tensor getF32(const std::string& name, const Shape& expected) const;
    // Bytes of tensor data over all files (headers excluded).
    uint64_t totalBytes() const;
    // The most common floating dtype among the tensors ("F32", "BF16", "F16").
    std::string dominantFloatDType() const;

private:
    std::filesystem::path m_dir;
    std::vector<std::shared_ptr<SafetensorsFile>> m_files;
    std::map<std::string, size_t> m_where; // tensor -> index into m_files
};

// Writes tensors (F32/F16/BF16/I32/I64) in the reference layout: header keys sorted by name
// and padded with spaces to a multiple of 8; data ordered like the reference writer (larger
// element size first, then name) so every tensor is naturally aligned. Atomic: temp file in
// the same folder, fsync, rename over `path`; on failure the temp file is removed and an
// Error(Io) names `path`. Duplicate or undefined tensors are an Error(InvalidArgument).
void writeSafetensors(const std::filesystem::path& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata = {{"format", "pt"}});

} // namespace archlens
