#include "tokenizer/json_cursor.h"

namespace archlens {

namespace {

std::string describe(const nlohmann::json& v)
{
    return v.type_name();
}

} // namespace

void JsonCursor::fail(const std::string& what) const
{
    throw Error(ErrorCode::Format, fmt::format("field '{}': {}", m_path.empty() ? "<root>" : m_path, what),
                *m_source);
}

void JsonCursor::failUnsupported(const std::string& what) const
{
    throw Error(ErrorCode::Unsupported, fmt::format("field '{}': {}", m_path.empty() ? "<root>" : m_path, what),
                *m_source);
}

void JsonCursor::expectObject() const
{
    if (!m_value->is_object())
        fail(fmt::format("expected an object, got {}", describe(*m_value)));
}

void JsonCursor::expectArray() const
{
    if (!m_value->is_array())
        fail(fmt::format("expected an array, got {}", describe(*m_value)));
}

JsonCursor JsonCursor::operator[](const char* key) const
{
    expectObject();
    const std::string childPath = m_path.empty() ? std::string(key) : m_path + "." + key;
    auto it = m_value->find(key);
    if (it == m_value->end())
        JsonCursor(*m_value, childPath, *m_source).fail("missing required field");
    return JsonCursor(*it, childPath, *m_source);
}

std::optional<JsonCursor> JsonCursor::optional(const char* key) const
{
    expectObject();
    auto it = m_value->find(key);
    if (it == m_value->end() || it->is_null())
        return std::nullopt;
    return JsonCursor(*it, m_path.empty() ? std::string(key) : m_path + "." + key, *m_source);
}

JsonCursor JsonCursor::at(size_t index) const
{
    expectArray();
    ARCHLENS_ASSERT(index < m_value->size(), "index {} out of range", index);
    return JsonCursor((*m_value)[index], fmt::format("{}[{}]", m_path, index), *m_source);
}

size_t JsonCursor::size() const
{
    expectArray();
    return m_value->size();
}

std::string JsonCursor::asString() const
{
    if (!m_value->is_string())
        fail(fmt::format("expected a string, got {}", describe(*m_value)));
    return m_value->get<std::string>();
}

bool JsonCursor::asBool() const
{
    if (!m_value->is_boolean())
        fail(fmt::format("expected true or false, got {}", describe(*m_value)));
    return m_value->get<bool>();
}

int64_t JsonCursor::asInt() const
{
    if (m_value->is_number_unsigned()) {
        const auto v = m_value->get<uint64_t>();
        if (v > static_cast<uint64_t>(INT64_MAX))
            fail("integer out of range");
        return static_cast<int64_t>(v);
    }
    if (!m_value->is_number_integer())
        fail(fmt::format("expected an integer, got {}", describe(*m_value)));
    return m_value->get<int64_t>();
}

std::string JsonCursor::stringOr(const char* key, const std::string& fallback) const
{
    auto c = optional(key);
    return c ? c->asString() : fallback;
}

bool JsonCursor::boolOr(const char* key, bool fallback) const
{
    auto c = optional(key);
    return c ? c->asBool() : fallback;
}

int64_t JsonCursor::intOr(const char* key, int64_t fallback) const
{
    auto c = optional(key);
    return c ? c->asInt() : fallback;
}

} // namespace archlens
