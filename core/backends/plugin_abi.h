// The C entry points of a backend plugin (the CUDA backend, libarchlens_cuda.so), loaded
// at run time by plugin_loader.cpp so that the programs start, and fall back to the CPU,
// on machines without CUDA. A plugin exports three functions:
//
//   int         archlens_backend_plugin_abi(void);      // ARCHLENS_BACKEND_PLUGIN_ABI
//   const char* archlens_backend_plugin_abi_hash(void); // ARCHLENS_BACKEND_ABI_HASH
//   void        archlens_backend_plugin_create(const ArchLensPluginRequest*, ArchLensPluginResult*);
//
// The first two come from ARCHLENS_DEFINE_PLUGIN_ABI(). The Backend* handed over is a C++
// object, so host and plugin must agree on the Backend and Tensor classes: the version
// number is bumped by hand on deliberate changes, and the hash (SHA-256 of the headers that
// define them, computed at configure time by cmake/ArchLensPlugin.cmake) catches the rest.
// The host owns the backend (deletes it through its virtual destructor) and never unloads
// the plugin.
#pragma once

namespace archlens {
class Backend;
}

#define ARCHLENS_BACKEND_PLUGIN_ABI 1

extern "C" {

// Why a plugin cannot provide its backend on this machine.
enum ArchLensPluginStatus {
    ARCHLENS_PLUGIN_OK = 0,
    ARCHLENS_PLUGIN_NO_DRIVER = 1, // no driver library, or it does not initialise
    ARCHLENS_PLUGIN_DRIVER_TOO_OLD = 2, // the driver's CUDA version is below what the plugin needs
    ARCHLENS_PLUGIN_NO_DEVICE = 3, // driver present, no usable device
    ARCHLENS_PLUGIN_UNSUPPORTED_DEVICE = 4, // compute capability not built for
    ARCHLENS_PLUGIN_OUT_OF_MEMORY = 5, // not enough free device memory
    ARCHLENS_PLUGIN_ERROR = 6, // anything else (reason says what)
};

struct ArchLensPluginRequest {
    int abi = ARCHLENS_BACKEND_PLUGIN_ABI;
    int device = 0;
    // Where the plugin's messages go (the host's log sink); level as archlens::LogLevel.
    void (*log)(int level, const char* message) = nullptr;
};

struct ArchLensPluginResult {
    int status = ARCHLENS_PLUGIN_ERROR;
    archlens::Backend* backend = nullptr; // set when status is ARCHLENS_PLUGIN_OK
    char reason[1024] = {}; // one line, set when it is not
};

typedef int (*ArchLensPluginAbiFn)(void);
typedef const char* (*ArchLensPluginAbiHashFn)(void);
typedef void (*ArchLensPluginCreateFn)(const ArchLensPluginRequest*, ArchLensPluginResult*);
}

#define ARCHLENS_PLUGIN_EXPORT extern "C" __attribute__((visibility("default")))

#define ARCHLENS_DEFINE_PLUGIN_ABI()                                                                                   \
    ARCHLENS_PLUGIN_EXPORT int archlens_backend_plugin_abi(void)                                                       \
    {                                                                                                                  \
        return ARCHLENS_BACKEND_PLUGIN_ABI;                                                                            \
    }                                                                                                                  \
    ARCHLENS_PLUGIN_EXPORT const char* archlens_backend_plugin_abi_hash(void)                                          \
    {                                                                                                                  \
        return ARCHLENS_BACKEND_ABI_HASH;                                                                              \
    }
