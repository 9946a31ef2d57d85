#include "formats/hdf5/h5_util.h"

namespace archlens::h5 {

void silence()
{
    thread_local bool done = false;
    if (!done) {
        H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
        done = true;
    }
}

void clearErrors() { H5Eclear2(H5E_DEFAULT); }

Datatype utf8StringType()
{
    Datatype t(H5Tcopy(H5T_C_S1));
    H5Tset_size(t.get(), H5T_VARIABLE);
    H5Tset_cset(t.get(), H5T_CSET_UTF8);
    H5Tset_strpad(t.get(), H5T_STR_NULLTERM);
    return t;
}

std::vector<hsize_t> extent(hid_t space)
{
    const int rank = H5Sget_simple_extent_ndims(space);
    std::vector<hsize_t> dims(size_t(rank > 0 ? rank : 0));
    if (rank > 0)
        H5Sget_simple_extent_dims(space, dims.data(), nullptr);
    return dims;
}

} // namespace archlens::h5
