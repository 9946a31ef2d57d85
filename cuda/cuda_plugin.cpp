// The CUDA backend plugin's entry point (see core/backends/plugin_abi.h). It first diagnoses
// the machine, in the order a user would fix things: driver present, driver new enough for
// CUDA 13, a device, its compute capability (against the architectures this plugin was
// compiled for), free memory; then makes the backend (cuda_backend.cpp). The driver API is
// reached through dlopen("libcuda.so.1"), as the CUDA runtime itself does, so this library
// loads on machines without a driver and can say so instead of failing to load.
#include <dlfcn.h>

#include <cstdarg>
#include <cstddef>
#include <cstdio>

#include <exception>

#include "backends/plugin_abi.h"
#include "cuda_backend.h"

ARCHLENS_DEFINE_PLUGIN_ABI()

namespace {

constexpr int kMinDriverVersion = 13000; // CUDA 13.0 (cuDriverGetVersion encoding)
// The lowest architecture this plugin carries code for (CMAKE_CUDA_ARCHITECTURES, with PTX
// of it, so newer devices JIT it); set by cuda/CMakeLists.txt.
#ifndef ARCHLENS_CUDA_MIN_ARCH
#define ARCHLENS_CUDA_MIN_ARCH 75
#endif
constexpr int kMinComputeCapability = ARCHLENS_CUDA_MIN_ARCH;
constexpr size_t kMinFreeBytes = size_t(1) << 30;

using CUresult = int;
using CUdevice = int;
using CUcontext = void*;
constexpr int kAttrCcMajor = 75; // CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR
constexpr int kAttrCcMinor = 76; // CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR

struct Driver {
    CUresult (*init)(unsigned) = nullptr;
    CUresult (*driverGetVersion)(int*) = nullptr;
    CUresult (*deviceGetCount)(int*) = nullptr;
    CUresult (*deviceGet)(CUdevice*, int) = nullptr;
    CUresult (*deviceGetName)(char*, int, CUdevice) = nullptr;
    CUresult (*deviceGetAttribute)(int*, int, CUdevice) = nullptr;
    CUresult (*primaryCtxRetain)(CUcontext*, CUdevice) = nullptr;
    CUresult (*primaryCtxRelease)(CUdevice) = nullptr;
    CUresult (*ctxSetCurrent)(CUcontext) = nullptr;
    CUresult (*memGetInfo)(size_t*, size_t*) = nullptr;
    CUresult (*getErrorString)(CUresult, const char**) = nullptr;

    const char* errorText(CUresult r) const
    {
        const char* s = nullptr;
        if (getErrorString && getErrorString(r, &s) == 0 && s)
            return s;
        return "unknown CUDA error";
    }
};

template<typename F> bool bind(void* lib, F& fn, const char* name)
{
    fn = reinterpret_cast<F>(::dlsym(lib, name));
    return fn != nullptr;
}

__attribute__((format(printf, 3, 4))) void fail(ArchLensPluginResult* out, int status, const char* fmt, ...)
{
    out->status = status;
    out->backend = nullptr;
    va_list args;
    va_start(args, fmt);
    std::vsnprintf(out->reason, sizeof out->reason, fmt, args);
    va_end(args);
}

} // namespace

ARCHLENS_PLUGIN_EXPORT void archlens_backend_plugin_create(
    const ArchLensPluginRequest* request, ArchLensPluginResult* out)
{
    void* lib = ::dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!lib)
        return fail(out, ARCHLENS_PLUGIN_NO_DRIVER, "no NVIDIA driver (libcuda.so.1 could not be loaded)");
    Driver d;
    if (!bind(lib, d.init, "cuInit") || !bind(lib, d.driverGetVersion, "cuDriverGetVersion")
        || !bind(lib, d.deviceGetCount, "cuDeviceGetCount") || !bind(lib, d.deviceGet, "cuDeviceGet")
        || !bind(lib, d.deviceGetName, "cuDeviceGetName") || !bind(lib, d.deviceGetAttribute, "cuDeviceGetAttribute")
        || !bind(lib, d.primaryCtxRetain, "cuDevicePrimaryCtxRetain")
        || !bind(lib, d.primaryCtxRelease, "cuDevicePrimaryCtxRelease_v2")
        || !bind(lib, d.ctxSetCurrent, "cuCtxSetCurrent") || !bind(lib, d.memGetInfo, "cuMemGetInfo_v2"))
        return fail(out, ARCHLENS_PLUGIN_DRIVER_TOO_OLD,
            "the NVIDIA driver library lacks driver API functions CUDA 13 needs: update the driver");
    bind(lib, d.getErrorString, "cuGetErrorString");

    int version = 0;
    if (d.driverGetVersion(&version) != 0)
        version = 0;
    if (const CUresult r = d.init(0); r != 0)
        return fail(out, ARCHLENS_PLUGIN_NO_DRIVER, "the NVIDIA driver did not initialise: %s", d.errorText(r));
    if (version < kMinDriverVersion)
        return fail(out, ARCHLENS_PLUGIN_DRIVER_TOO_OLD,
            "the NVIDIA driver supports CUDA %d.%d, the CUDA backend needs CUDA %d.%d or newer: update the driver",
            version / 1000, version % 1000 / 10, kMinDriverVersion / 1000, kMinDriverVersion % 1000 / 10);
    int count = 0;
    if (const CUresult r = d.deviceGetCount(&count); r != 0 || count == 0)
        return fail(out, ARCHLENS_PLUGIN_NO_DEVICE, "no CUDA device found%s%s", r ? ": " : "", r ? d.errorText(r) : "");
    const int ordinal = request ? request->device : 0;
    if (ordinal < 0 || ordinal >= count)
        return fail(out, ARCHLENS_PLUGIN_NO_DEVICE, "CUDA device %d requested, but there are %d", ordinal, count);
    CUdevice dev = 0;
    d.deviceGet(&dev, ordinal);
    char name[256] = "?";
    d.deviceGetName(name, sizeof name, dev);
    int major = 0, minor = 0;
    d.deviceGetAttribute(&major, kAttrCcMajor, dev);
    d.deviceGetAttribute(&minor, kAttrCcMinor, dev);
    if (major * 10 + minor < kMinComputeCapability)
        return fail(out, ARCHLENS_PLUGIN_UNSUPPORTED_DEVICE,
            "%s has compute capability %d.%d; this CUDA plugin was built for %d.%d or newer (rebuild with "
            "-DCMAKE_CUDA_ARCHITECTURES=%d%d)",
            name, major, minor, kMinComputeCapability / 10, kMinComputeCapability % 10, major, minor);
    CUcontext ctx = nullptr;
    size_t freeBytes = 0, totalBytes = 0;
    if (const CUresult r = d.primaryCtxRetain(&ctx, dev); r != 0)
        return fail(out, ARCHLENS_PLUGIN_ERROR, "%s: could not create a context: %s", name, d.errorText(r));
    d.ctxSetCurrent(ctx);
    const CUresult memResult = d.memGetInfo(&freeBytes, &totalBytes);
    d.ctxSetCurrent(nullptr);
    d.primaryCtxRelease(dev);
    if (memResult != 0)
        return fail(out, ARCHLENS_PLUGIN_ERROR, "%s: could not query memory: %s", name, d.errorText(memResult));
    if (freeBytes < kMinFreeBytes)
        return fail(out, ARCHLENS_PLUGIN_OUT_OF_MEMORY,
            "%s has %.2f GiB free of %.2f GiB; the CUDA backend needs %.2f GiB", name,
            double(freeBytes) / double(1 << 30), double(totalBytes) / double(1 << 30),
            double(kMinFreeBytes) / double(1 << 30));
    try {
        out->backend = archlens::cuda::makeCudaBackend(ordinal).release();
        out->status = ARCHLENS_PLUGIN_OK;
        out->reason[0] = '\0';
        if (request && request->log) {
            char line[512];
            std::snprintf(line, sizeof line,
                "CUDA backend on %s (compute capability %d.%d, driver CUDA %d.%d, %.1f GiB free)", name, major, minor,
                version / 1000, version % 1000 / 10, double(freeBytes) / double(1 << 30));
            request->log(1, line);
        }
    } catch (const std::exception& e) {
        fail(out, ARCHLENS_PLUGIN_ERROR, "%s: the CUDA backend could not start: %s", name, e.what());
    }
}
