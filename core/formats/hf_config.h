// config.json access with the rules the loaders need: an absent key takes the
// transformers default the caller passes; an absent key without a default, or a value of
// the wrong type, is an Error(Config) naming the key and the file.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace archlens {

class HfConfig {
public:
    // dirOrFile: a model folder (reads config.json in it) or the config file itself.
    static HfConfig load(const std::filesystem::path& dirOrFile);
    static HfConfig fromJson(nlohmann::json json, std::filesystem::path source);

    const nlohmann::json& json() const { return m_json; }
    const std::filesystem::path& path() const { return m_path; }

    // Keys may be dotted to reach into objects: "ssm_cfg.d_state".
    bool has(std::string_view key) const;
    int64_t getInt(std::string_view key) const;
    int64_t getInt(std::string_view key, int64_t fallback) const;
    double getDouble(std::string_view key) const;
    double getDouble(std::string_view key, double fallback) const;
    bool getBool(std::string_view key) const;
    bool getBool(std::string_view key, bool fallback) const;
    std::string getString(std::string_view key) const;
    std::string getString(std::string_view key, const std::string& fallback) const;

    std::vector<std::string> architectures() const; // [] when absent
    std::string modelType() const;                  // '' when absent
    // architectures[0], else model_type, else ''
    std::string architectureName() const;
    // torch_dtype (or dtype, as newer transformers writes it); '' when absent
    std::string torchDType() const;

    // Error(Config) naming this file and the key.
    [[noreturn]] void fail(std::string_view key, const std::string& what) const;

private:
    const nlohmann::json* find(std::string_view key) const;
    nlohmann::json m_json;
    std::filesystem::path m_path;
};

} // namespace archlens
