// HDF5 trace files: what one run of a model computed, in a schema h5py opens.
// Schema (documented in README.md, "Trace files"):
//   root attributes: schema_version (int), model_type, architecture, backend, weight_dtype,
//     compute_dtype, prompt ('' when ids were given), prompt_length (int), seed (int, -1 greedy),
//     model_path, revision ('' unless loaded from the Hugging Face cache), created (ISO 8601)
//   /tokens int32 [T]; /token_text UTF-8 strings [T]; /logits float32 [T, V]
//   /layers/{i}/ssm/{x,delta,B,C,state,state_norm,y,gate}  (shapes in probes/probes.h)
//   /layers/{i}/ssm/A [E, N], /layers/{i}/ssm/D [E]  whenever any ssm probe of layer i is written
//   /layers/{i}/moe/{router_logits,router_probs,topk_experts,topk_weights,router_entropy,shared_gate}
//     token-major; /layers/{i}/moe/{expert_load [X], load_balancing_loss [1]} and
//     /layers/{i}/attn/weights [H, T, T] written whole (the last call's value), except that a
//     decoding step's rows (H, t, S) continuing an (H, S−t, S−t) matrix extend it to (H, S, S)
//   MoE models: root attribute load_balancing_loss (float64, every MoE layer's rows)
//   /checkpoints/{t}/layers/{i}/{conv_state [E, K-1], ssm_state [E, N]}  the model state after
//     tokens [0, t) of a checkpointed session (ModelState::tensors() names, '.' -> '/')
//   /session/segments int64 [S, 3]  (begin, end, mode 0 recurrent / 1 chunk) of a saved session
// Datasets are chunked + gzip, T axis extendable; the file is written to a temporary name
// and renamed into place by finish(), so a crash or cancel never leaves a half file.
// Readers ignore unknown datasets. Compiled only with ARCHLENS_HDF5.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "probes/probes.h"
#include "tensor/tensor.h"

namespace archlens {

constexpr int kTraceSchemaVersion = 1;

struct TraceMeta {
    int schemaVersion = kTraceSchemaVersion;
    std::string modelType;     // config model_type
    std::string architecture;  // config architectures[0], else model_type
    std::string backend;       // what actually ran: "cpu", "cuda"
    std::string weightDType;   // as stored: "F32", "BF16", "F16"
    std::string computeDType;  // "F32" on the CPU
    std::string prompt;        // '' when token ids were given
    int64_t promptLength = 0;
    int64_t seed = -1;         // -1 for greedy
    std::string modelPath;
    std::string revision;      // snapshot hash from the HF cache, else ''
    std::string created;       // ISO 8601; filled by the writer when empty
};

// Receives probes during a run and writes them. wants() answers from the selection.
class TraceWriter : public ProbeSink {
public:
    // Opens <path>.tmp-XXXX next to `path`. Throws Error(Io) naming the path.
    TraceWriter(const std::filesystem::path& path, TraceMeta meta, ProbeSelection selection);
    ~TraceWriter() override; // without finish(): removes the temporary file

    bool wants(int layer, Probe p) const override;
    void record(int layer, Probe p, int64_t tokenBegin, const Tensor& value) override;
    void recordConstant(int layer, std::string_view group, std::string_view name, const Tensor& value) override;
    // Written as a root attribute of that name (e.g. load_balancing_loss), replaced by later calls.
    void recordModelValue(std::string_view name, double value) override;

    // Tokens processed so far, with their text ("#<id>" when there is no tokenizer); appends.
    void appendTokens(const std::vector<int32_t>& ids, const std::vector<std::string>& texts);
    // logits (T, V) for tokens [tokenBegin, tokenBegin + T); appends.
    void appendLogits(int64_t tokenBegin, const Tensor& logits);
    // Extra root attributes (later issues: layer_mixer, kv_cache_bytes_per_token ...).
    void setAttribute(const std::string& name, const std::string& value);
    void setAttribute(const std::string& name, int64_t value);
    void setAttribute(const std::string& name, double value);
    void setAttribute(const std::string& name, const std::vector<std::string>& values);

    // The model state after tokens [0, position): ModelState::tensors() pairs, stored as
    // /checkpoints/{position}/{name with '.' replaced by '/'} (layers.3.ssm_state ->
    // /checkpoints/256/layers/3/ssm_state). Error(InvalidArgument) for a negative position or a
    // name that is empty or has an empty component.
    void writeCheckpoint(int64_t position, const std::vector<std::pair<std::string, Tensor>>& tensors);
    // Any other whole dataset outside the schema's token-major ones (e.g. /session/segments);
    // written once, chunked and compressed like the rest.
    void writeTensor(const std::string& datasetPath, const Tensor& value);

    // Flushes, closes and renames into place.
    void finish();

private:
    struct Impl;
    std::unique_ptr<Impl> m_impl;
};

// Estimated bytes a trace will take before compression (what --max-bytes is compared to).
// Counts /tokens, /token_text (kTraceTokenTextBytes per token), /logits and every selected
// probe of every selected layer in [0, layerCount), plus ssm/A and ssm/D for layers with an ssm
// probe. moe probes count only when experts > 0 and attn.weights only when heads > 0; the same
// dims are assumed for every layer, so hybrids get an upper bound. Compiled without HDF5 too.
struct TraceDims {
    int64_t tokens = 0, vocab = 0, dInner = 0, dState = 0;
    int64_t experts = 0, topK = 0, heads = 0; // X, k, H (0 when the model has none)
};
// Stand-in size of one /token_text entry: its 16-byte heap reference (text is usually shorter).
constexpr uint64_t kTraceTokenTextBytes = 16;
uint64_t estimateTraceBytes(const TraceDims& dims, const ProbeSelection& sel, int layerCount);
// Shape a probe takes in a trace of those dims ({} if it is never written for them).
Shape traceProbeShape(Probe p, const TraceDims& dims);

// Typed errors: Error(Io) missing/unreadable, Error(Format) not HDF5 / corrupt / missing or
// mis-shaped dataset, Error(Version) schema_version not ours. HDF5's automatic error
// printing is off while reading.
class TraceReader {
public:
    static TraceReader open(const std::filesystem::path& path);
    TraceReader(TraceReader&&) noexcept;
    TraceReader& operator=(TraceReader&&) noexcept;
    ~TraceReader();

    const TraceMeta& meta() const;
    const std::vector<int32_t>& tokens() const;
    const std::vector<std::string>& tokenText() const;
    bool has(const std::string& datasetPath) const;       // "/layers/0/ssm/delta"
    Tensor read(const std::string& datasetPath) const;    // F32 (float datasets), I32, I64
    // Rows [begin, end) along the first axis, without reading the rest (ssm.state is large).
    Tensor readRows(const std::string& datasetPath, int64_t begin, int64_t end) const;
    Shape shape(const std::string& datasetPath) const;    // without reading the data
    std::vector<int> layers() const;                       // layer indices present under /layers
    std::vector<std::string> datasets(int layer) const;    // "ssm/delta", ... for that layer
    std::string attribute(const std::string& name) const; // string root attribute ('' if absent)
                                                          // (numbers come back as decimal text)
    std::vector<std::string> attributeStrings(const std::string& name) const; // list attribute
    // Positions under /checkpoints, ascending (groups whose name is not a number are ignored).
    std::vector<int64_t> checkpoints() const;
    // One checkpoint's tensors with ModelState::tensors() names ("layers.3.ssm_state"), sorted by
    // name. Error(Format) when the position has no checkpoint.
    std::vector<std::pair<std::string, Tensor>> readCheckpoint(int64_t position) const;

private:
    TraceReader();
    struct Impl;
    std::unique_ptr<Impl> m_impl;
};

} // namespace archlens
