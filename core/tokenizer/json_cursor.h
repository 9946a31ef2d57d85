// Internal: a position inside a parsed tokenizer.json that remembers its path, so that every
// complaint about bad input names the file and the field ("model.merges[12]") and says what
// was expected.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "base/error.h"

namespace archlens {

class JsonCursor {
public:
    JsonCursor(const nlohmann::json& value, std::string path, const std::string& source)
        : m_value(&value), m_path(std::move(path)), m_source(&source) {}

    const nlohmann::json& value() const { return *m_value; }
    const std::string& path() const { return m_path; }
    const std::string& source() const { return *m_source; }

    bool isNull() const { return m_value->is_null(); }
    bool has(const char* key) const { return m_value->is_object() && m_value->contains(key); }
    // A present, non-null member.
    bool hasValue(const char* key) const { return has(key) && !(*m_value)[key].is_null(); }

    // Required member (the object itself must be an object).
    JsonCursor operator[](const char* key) const;
    std::optional<JsonCursor> optional(const char* key) const; // absent or null -> nullopt
    JsonCursor at(size_t index) const;
    size_t size() const; // of an array (throws otherwise)

    std::string asString() const;
    bool asBool() const;
    int64_t asInt() const;
    void expectObject() const;
    void expectArray() const;

    std::string stringOr(const char* key, const std::string& fallback) const;
    bool boolOr(const char* key, bool fallback) const;
    int64_t intOr(const char* key, int64_t fallback) const;

    // The "type" member of a component object.
    std::string typeTag() const { return (*this)["type"].asString(); }

    [[noreturn]] void fail(const std::string& what) const;
    [[noreturn]] void failUnsupported(const std::string& what) const;

private:
    const nlohmann::json* m_value;
    std::string m_path;
    const std::string* m_source;
};

} // namespace archlens
