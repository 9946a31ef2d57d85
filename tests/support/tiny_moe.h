// A tiny Mixtral-shaped checkpoint with a tokenizer, for tests that need text in (archlens-cli
// route, MoE views from a prompt): the mixtral reference case's weights with the embedding and
// the LM head widened to the vocabulary of a byte-level BPE trained here by our own trainer.
#pragma once

#include <filesystem>
#include <fstream>
#include <string>

#include <nlohmann/json.hpp>

#include "formats/safetensors.h"
#include "tokenizer/bpe_trainer.h"

namespace archlens::test {

inline const char* kTinyMoeText =
    "The river ran quietly past the old mill, and the miller counted the sacks of grain twice. "
    "for (int i = 0; i < n; ++i) { total += values[i] * weights[i]; } return total; "
    "1, 2, 3, 5, 8, 13, 21, 34, 55, 89, 144, 233, 377, 610, 987. "
    "Der Fluss floss still an der alten Muehle vorbei, und der Mueller zaehlte die Saecke zweimal. ";

// Writes config.json, model.safetensors and tokenizer.json into dir (created); vocab 300.
inline void writeTinyMoe(const std::filesystem::path& dir, const std::filesystem::path& mixtralCase)
{
    constexpr int64_t V = 300;
    std::filesystem::create_directories(dir);
    nlohmann::json cfg;
    std::ifstream(mixtralCase / "config.json") >> cfg;
    cfg["vocab_size"] = V;
    std::ofstream(dir / "config.json") << cfg.dump(2);
    const auto src = SafetensorsFile::open(mixtralCase / "model.safetensors");
    std::vector<std::pair<std::string, Tensor>> out;
    uint32_t seed = 12345;
    for (const auto& [name, info] : src->tensors()) {
        Tensor t = src->tensor(name).toF32();
        if (name == "model.embed_tokens.weight" || name == "lm_head.weight") {
            const int64_t D = t.dim(1);
            Tensor w = Tensor::empty({V, D});
            for (float& v : w.span()) {
                seed = seed * 1664525u + 1013904223u;
                v = (float(seed >> 8) / float(1u << 24) - 0.5f) * 0.2f;
            }
            t = w;
        }
        out.emplace_back(name, t.clone());
    }
    writeSafetensors(dir / "model.safetensors", out);
    BpeTrainerOptions o;
    o.vocabSize = V;
    o.minFrequency = 2;
    std::string corpus;
    for (int i = 0; i < 4; ++i)
        corpus += kTinyMoeText;
    std::ofstream(dir / "tokenizer.json") << trainByteLevelBpe({corpus}, o);
}

} // namespace archlens::test
