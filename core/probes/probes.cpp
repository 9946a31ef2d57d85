#include "probes/probes.h"

#include <array>
#include <charconv>

#include "base/strings.h"

namespace archlens {

namespace {
struct ProbeMeta {
    std::string_view name;
    std::string_view group;
    std::string_view leaf;
    bool tokenMajor;
};
constexpr std::array<ProbeMeta, kProbeCount> kMeta = {{
    {"ssm.x", "ssm", "x", true},
    {"ssm.delta", "ssm", "delta", true},
    {"ssm.B", "ssm", "B", true},
    {"ssm.C", "ssm", "C", true},
    {"ssm.state", "ssm", "state", true},
    {"ssm.state_norm", "ssm", "state_norm", true},
    {"ssm.y", "ssm", "y", true},
    {"ssm.gate", "ssm", "gate", true},
    {"moe.router_logits", "moe", "router_logits", true},
    {"moe.router_probs", "moe", "router_probs", true},
    {"moe.topk_experts", "moe", "topk_experts", true},
    {"moe.topk_weights", "moe", "topk_weights", true},
    {"moe.expert_load", "moe", "expert_load", false},
    {"moe.router_entropy", "moe", "router_entropy", true},
    {"moe.shared_gate", "moe", "shared_gate", true},
    {"moe.load_balancing_loss", "moe", "load_balancing_loss", false},
    {"attn.weights", "attn", "weights", false},
}};
} // namespace

std::string_view probeName(Probe p) { return kMeta[size_t(p)].name; }
std::string_view probeGroup(Probe p) { return kMeta[size_t(p)].group; }
std::string_view probeLeaf(Probe p) { return kMeta[size_t(p)].leaf; }
bool probeIsTokenMajor(Probe p) { return kMeta[size_t(p)].tokenMajor; }

std::optional<Probe> probeFromName(std::string_view name)
{
    for (int i = 0; i < kProbeCount; ++i)
        if (kMeta[size_t(i)].name == name)
            return Probe(i);
    return std::nullopt;
}

std::vector<Probe> allProbes()
{
    std::vector<Probe> v;
    for (int i = 0; i < kProbeCount; ++i)
        v.push_back(Probe(i));
    return v;
}

std::vector<Probe> defaultProbes()
{
    std::vector<Probe> v;
    for (Probe p : allProbes())
        if (p != Probe::AttnWeights)
            v.push_back(p);
    return v;
}

bool ProbeSelection::wantsAnyGroup(int layer, std::string_view group) const
{
    if (!layers.empty() && !layers.count(layer))
        return false;
    for (Probe p : probes)
        if (probeGroup(p) == group)
            return true;
    return false;
}

std::set<int> ProbeSelection::parseLayers(std::string_view spec, int layerCount)
{
    std::set<int> out;
    if (spec == "all") {
        for (int i = 0; i < layerCount; ++i)
            out.insert(i);
        return out;
    }
    for (std::string_view item : splitCommaList(spec)) {
        int v = -1;
        auto [ptr, ec] = std::from_chars(item.data(), item.data() + item.size(), v);
        if (item.empty() || ec != std::errc() || ptr != item.data() + item.size())
            throw makeError(ErrorCode::InvalidArgument, "--layers: '{}' is not a layer index (expected 'all' or e.g. 0,3)", item);
        if (v < 0 || v >= layerCount)
            throw makeError(ErrorCode::InvalidArgument, "--layers: layer {} does not exist (the model has layers 0..{})", v,
                            layerCount - 1);
        out.insert(v);
    }
    return out;
}

std::set<Probe> ProbeSelection::parseProbes(std::string_view spec)
{
    std::set<Probe> out;
    if (spec == "all") {
        for (Probe p : defaultProbes())
            out.insert(p);
        return out;
    }
    for (std::string_view item : splitCommaList(spec)) {
        auto p = probeFromName(item);
        if (!p) {
            std::string known;
            for (Probe q : allProbes())
                known += std::string(known.empty() ? "" : ", ") + std::string(probeName(q));
            throw makeError(ErrorCode::InvalidArgument, "--probes: unknown probe '{}' (known: all, {})", item, known);
        }
        out.insert(*p);
    }
    return out;
}

} // namespace archlens
