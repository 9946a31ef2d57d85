// Stand-ins for the CUDA plugin, so the loader's paths are tested on any machine. One
// source, built several ways (tests/core/CMakeLists.txt):
//   FAKE_PLUGIN_OK        hands over a working backend (the CPU reference, inside the plugin)
//   FAKE_PLUGIN_TOO_OLD   reports an old driver, as the real plugin would
//   FAKE_PLUGIN_WRONG_ABI exports another ABI hash
#include <cstdio>

#include "backends/backend.h"
#include "backends/plugin_abi.h"

#ifdef FAKE_PLUGIN_WRONG_ABI
ARCHLENS_PLUGIN_EXPORT int archlens_backend_plugin_abi(void)
{
    return ARCHLENS_BACKEND_PLUGIN_ABI;
}
ARCHLENS_PLUGIN_EXPORT const char* archlens_backend_plugin_abi_hash(void)
{
    return "0123456789abcdef-not-this-build";
}
#else
ARCHLENS_DEFINE_PLUGIN_ABI()
#endif

ARCHLENS_PLUGIN_EXPORT void archlens_backend_plugin_create(
    const ArchLensPluginRequest* request, ArchLensPluginResult* out)
{
#if defined(FAKE_PLUGIN_OK)
    if (request && request->log)
        request->log(1, "fake plugin: handing over the reference backend");
    out->status = ARCHLENS_PLUGIN_OK;
    out->backend = archlens::makeCpuReferenceBackend().release();
#else
    (void)request;
    out->status = ARCHLENS_PLUGIN_DRIVER_TOO_OLD;
    std::snprintf(out->reason, sizeof out->reason,
        "the NVIDIA driver supports CUDA 12.4, the CUDA backend needs CUDA 13.0 or newer (fake)");
#endif
}
