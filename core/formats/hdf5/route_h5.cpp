// archlens-cli route's HDF5 report (layout in analysis/route_report.h and README), written to a
// temporary name and renamed into place like the traces.
#include <filesystem>

#include "analysis/route_report.h"
#include "base/error.h"
#include "formats/hdf5/h5_util.h"

namespace archlens::analysis {

namespace {
void check(bool ok, const std::filesystem::path& path, const std::string& what)
{
    if (!ok) {
        h5::clearErrors();
        throw Error(ErrorCode::Io, "cannot write the route report (" + what + ")", path.string());
    }
}

void numberAttr(hid_t obj, const char* name, double v)
{
    h5::Dataspace s(H5Screate(H5S_SCALAR));
    h5::Attribute a(H5Acreate2(obj, name, H5T_IEEE_F64LE, s.get(), H5P_DEFAULT, H5P_DEFAULT));
    H5Awrite(a.get(), H5T_NATIVE_DOUBLE, &v);
}
void intAttr(hid_t obj, const char* name, int64_t v)
{
    h5::Dataspace s(H5Screate(H5S_SCALAR));
    h5::Attribute a(H5Acreate2(obj, name, H5T_STD_I64LE, s.get(), H5P_DEFAULT, H5P_DEFAULT));
    H5Awrite(a.get(), H5T_NATIVE_INT64, &v);
}
void stringAttr(hid_t obj, const char* name, const std::string& v)
{
    h5::Datatype t = h5::utf8StringType();
    h5::Dataspace s(H5Screate(H5S_SCALAR));
    h5::Attribute a(H5Acreate2(obj, name, t.get(), s.get(), H5P_DEFAULT, H5P_DEFAULT));
    const char* p = v.c_str();
    H5Awrite(a.get(), t.get(), &p);
}
h5::Group group(hid_t parent, const std::string& name, const std::filesystem::path& path)
{
    h5::Group g(H5Gcreate2(parent, name.c_str(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
    check(g.valid(), path, "group " + name);
    return g;
}
std::string groupName(std::string s)
{
    for (char& c : s)
        if (c == '/')
            c = '_';
    return s.empty() ? std::string("corpus") : s;
}
} // namespace

void writeRouteH5(const std::filesystem::path& path, const std::vector<NamedRoute>& corpora)
{
    h5::silence();
    const std::filesystem::path tmp = path.string() + ".tmp-route";
    {
        h5::File f(H5Fcreate(tmp.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT));
        check(f.valid(), path, "create");
        h5::Group route = group(f.get(), "route", path);
        for (const NamedRoute& c : corpora) {
            h5::Group cg = group(route.get(), groupName(c.name), path);
            intAttr(cg.get(), "tokens", c.route->tokens());
            intAttr(cg.get(), "chunks", c.route->chunks());
            stringAttr(cg.get(), "source", c.source);
            h5::Group layers = group(cg.get(), "layers", path);
            for (const auto& [l, L] : c.route->layers()) {
                h5::Group lg = group(layers.get(), std::to_string(l), path);
                const hsize_t dims[1] = {hsize_t(L.experts)};
                h5::Dataspace s(H5Screate_simple(1, dims, nullptr));
                h5::Dataset d(H5Dcreate2(lg.get(), "expert_load", H5T_STD_I64LE, s.get(), H5P_DEFAULT, H5P_DEFAULT,
                                         H5P_DEFAULT));
                check(d.valid() && H5Dwrite(d.get(), H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, L.counts.data()) >= 0,
                      path, "expert_load");
                // on the layer group and on expert_load itself, so either reads them
                const BalanceReadout b = c.route->balance(l);
                for (hid_t obj : {lg.get(), d.get()}) {
                    numberAttr(obj, "cv", b.cv);
                    numberAttr(obj, "max_violation", b.maxViolation);
                    numberAttr(obj, "mean_router_entropy", b.meanEntropy);
                    numberAttr(obj, "load_balancing_loss", b.loadBalancingLoss);
                    intAttr(obj, "rows", b.rows);
                }
            }
        }
        check(f.close(), path, "close");
    }
    std::error_code ec;
    std::filesystem::rename(tmp, path, ec);
    if (ec) {
        std::filesystem::remove(tmp, ec);
        throw Error(ErrorCode::Io, "cannot move the route report into place", path.string());
    }
}

} // namespace archlens::analysis

#include "formats/trace.h"

namespace archlens::analysis {

RoutingData readRoutingTrace(const std::filesystem::path& path)
{
    const TraceReader r = TraceReader::open(path);
    RoutingData d;
    d.layerMixer = r.attributeStrings("layer_mixer");
    d.layerFfn = r.attributeStrings("layer_ffn");
    const std::string pl = r.attribute("prompt_length");
    d.promptLength = pl.empty() ? int64_t(r.tokens().size()) : std::stoll(pl);
    auto copy = [](const Tensor& t, auto& dst) {
        using T = typename std::decay_t<decltype(dst)>::value_type;
        const T* p = static_cast<const T*>(t.raw());
        dst.assign(p, p + t.numel());
    };
    for (int l : r.layers()) {
        const std::string base = "/layers/" + std::to_string(l) + "/";
        if (r.has(base + "moe/router_probs") && r.has(base + "moe/topk_experts")) {
            LayerRouting& lr = d.moe[l];
            const Tensor probs = r.read(base + "moe/router_probs");
            const Tensor ids = r.read(base + "moe/topk_experts");
            lr.experts = probs.dim(1);
            lr.topK = ids.dim(1);
            copy(probs, lr.probs);
            copy(ids, lr.topk);
            if (r.has(base + "moe/topk_weights"))
                copy(r.read(base + "moe/topk_weights"), lr.weights);
            if (r.has(base + "moe/router_entropy"))
                copy(r.read(base + "moe/router_entropy"), lr.entropy);
            if (r.has(base + "moe/shared_gate"))
                copy(r.read(base + "moe/shared_gate"), lr.sharedGate);
        }
        if (r.has(base + "attn/weights")) {
            const Tensor w = r.read(base + "attn/weights");
            LayerAttention& a = d.attn[l];
            a.heads = w.dim(0);
            a.tokens = a.stride = w.dim(1);
            copy(w, a.weights);
        }
    }
    return d;
}

} // namespace archlens::analysis
