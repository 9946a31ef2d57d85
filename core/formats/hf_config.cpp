#include "formats/hf_config.h"

#include <fstream>
#include <sstream>

#include "base/error.h"

namespace archlens {

namespace fs = std::filesystem;

HfConfig HfConfig::load(const fs::path& dirOrFile)
{
    fs::path file = fs::is_directory(dirOrFile) ? dirOrFile / "config.json" : dirOrFile;
    std::ifstream in(file, std::ios::binary);
    if (!in)
        throw Error(ErrorCode::Io, "cannot open config.json", file.string(),
                    "a Hugging Face model folder has config.json next to its *.safetensors files");
    std::stringstream ss;
    ss << in.rdbuf();
    nlohmann::json j;
    try {
        j = nlohmann::json::parse(ss.str());
    } catch (const nlohmann::json::parse_error& e) {
        throw Error(ErrorCode::Config, fmt::format("not valid JSON: {}", e.what()), file.string());
    }
    if (!j.is_object())
        throw Error(ErrorCode::Config, "expected a JSON object at the top level", file.string());
    return fromJson(std::move(j), file);
}

HfConfig HfConfig::fromJson(nlohmann::json json, fs::path source)
{
    HfConfig c;
    c.m_json = std::move(json);
    c.m_path = std::move(source);
    return c;
}

void HfConfig::fail(std::string_view key, const std::string& what) const
{
    throw Error(ErrorCode::Config, fmt::format("key '{}': {}", key, what), m_path.string());
}

const nlohmann::json* HfConfig::find(std::string_view key) const
{
    const nlohmann::json* node = &m_json;
    size_t start = 0;
    while (true) {
        size_t dot = key.find('.', start);
        std::string part(key.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start));
        if (!node->is_object())
            return nullptr;
        auto it = node->find(part);
        if (it == node->end() || it->is_null())
            return nullptr;
        node = &*it;
        if (dot == std::string_view::npos)
            return node;
        start = dot + 1;
    }
}

bool HfConfig::has(std::string_view key) const { return find(key) != nullptr; }

int64_t HfConfig::getInt(std::string_view key) const
{
    const nlohmann::json* v = find(key);
    if (!v)
        fail(key, "missing, and it has no default");
    if (v->is_number_integer())
        return v->get<int64_t>();
    if (v->is_number_float()) {
        double d = v->get<double>();
        if (d == double(int64_t(d)))
            return int64_t(d);
    }
    fail(key, fmt::format("expected an integer, found {}", v->dump()));
}

int64_t HfConfig::getInt(std::string_view key, int64_t fallback) const { return has(key) ? getInt(key) : fallback; }

double HfConfig::getDouble(std::string_view key) const
{
    const nlohmann::json* v = find(key);
    if (!v)
        fail(key, "missing, and it has no default");
    if (v->is_number())
        return v->get<double>();
    fail(key, fmt::format("expected a number, found {}", v->dump()));
}

double HfConfig::getDouble(std::string_view key, double fallback) const
{
    return has(key) ? getDouble(key) : fallback;
}

bool HfConfig::getBool(std::string_view key) const
{
    const nlohmann::json* v = find(key);
    if (!v)
        fail(key, "missing, and it has no default");
    if (v->is_boolean())
        return v->get<bool>();
    fail(key, fmt::format("expected true or false, found {}", v->dump()));
}

bool HfConfig::getBool(std::string_view key, bool fallback) const { return has(key) ? getBool(key) : fallback; }

std::string HfConfig::getString(std::string_view key) const
{
    const nlohmann::json* v = find(key);
    if (!v)
        fail(key, "missing, and it has no default");
    if (v->is_string())
        return v->get<std::string>();
    fail(key, fmt::format("expected a string, found {}", v->dump()));
}

std::string HfConfig::getString(std::string_view key, const std::string& fallback) const
{
    return has(key) ? getString(key) : fallback;
}

std::vector<std::string> HfConfig::architectures() const
{
    std::vector<std::string> out;
    const nlohmann::json* v = find("architectures");
    if (!v)
        return out;
    if (!v->is_array())
        fail("architectures", fmt::format("expected a list of class names, found {}", v->dump()));
    for (const auto& item : *v) {
        if (!item.is_string())
            fail("architectures", fmt::format("expected strings, found {}", item.dump()));
        out.push_back(item.get<std::string>());
    }
    return out;
}

std::string HfConfig::modelType() const { return getString("model_type", ""); }

std::string HfConfig::architectureName() const
{
    auto archs = architectures();
    if (!archs.empty())
        return archs.front();
    return modelType();
}

std::string HfConfig::torchDType() const
{
    if (has("torch_dtype"))
        return getString("torch_dtype");
    return getString("dtype", "");
}

} // namespace archlens
