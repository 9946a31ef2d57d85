// Small RAII handles and helpers over the HDF5 C API, shared by the trace writer and reader.
// Internal to core/formats/hdf5: nothing outside includes <hdf5.h>.
#pragma once

#include <hdf5.h>

#include <string>
#include <utility>
#include <vector>

namespace archlens::h5 {

// Turns off HDF5's automatic error printing for the calling thread. The library is built
// thread-safe on Debian, where the error-stack setting is per thread, so every public entry
// point calls this (it is cheap after the first call on a thread).
void silence();

// Drops the calling thread's error stack. Called before throwing after a failed call: HDF5 frees
// a thread's stack at thread exit but not the message strings still on it.
void clearErrors();

// One HDF5 identifier closed with the matching H5?close on destruction.
template <herr_t (*Close)(hid_t)>
class Handle {
public:
    Handle() = default;
    explicit Handle(hid_t id)
        : m_id(id)
    {
    }
    Handle(Handle&& o) noexcept
        : m_id(std::exchange(o.m_id, H5I_INVALID_HID))
    {
    }
    Handle& operator=(Handle&& o) noexcept
    {
        if (this != &o) {
            reset();
            m_id = std::exchange(o.m_id, H5I_INVALID_HID);
        }
        return *this;
    }
    Handle(const Handle&) = delete;
    Handle& operator=(const Handle&) = delete;
    ~Handle() { reset(); }

    hid_t get() const { return m_id; }
    bool valid() const { return m_id >= 0; }
    explicit operator bool() const { return valid(); }
    // Closes now and reports whether the close succeeded (a file close flushes).
    bool close()
    {
        if (m_id < 0)
            return true;
        const herr_t rc = Close(m_id);
        m_id = H5I_INVALID_HID;
        return rc >= 0;
    }
    void reset() { close(); }

private:
    hid_t m_id = H5I_INVALID_HID;
};

using File = Handle<H5Fclose>;
using Group = Handle<H5Gclose>;
using Dataset = Handle<H5Dclose>;
using Dataspace = Handle<H5Sclose>;
using Datatype = Handle<H5Tclose>;
using Attribute = Handle<H5Aclose>;
using PropList = Handle<H5Pclose>;
using Object = Handle<H5Oclose>;

// Variable-length UTF-8 string type (what h5py reads as str).
Datatype utf8StringType();

// Extent of a dataspace; empty for a scalar one.
std::vector<hsize_t> extent(hid_t space);

} // namespace archlens::h5
