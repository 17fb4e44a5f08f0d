// h5util.c - shared HDF5 helpers (see h5util.h).
#include "data/h5util.h"

#include <string.h>

nv_h5_quiet nv_h5_quiet_begin(void) {
    nv_h5_quiet q = {NULL, NULL};
    H5Eget_auto2(H5E_DEFAULT, &q.func, &q.data);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    return q;
}

void nv_h5_quiet_end(nv_h5_quiet q) { H5Eset_auto2(H5E_DEFAULT, q.func, q.data); }

int nv_h5_attr_str(hid_t loc, const char *name, const char *v) {
    hid_t t = H5Tcopy(H5T_C_S1);
    if (t < 0) return -1;
    hid_t sp = H5Screate(H5S_SCALAR);
    int rc = -1;
    if (sp >= 0 && H5Tset_size(t, strlen(v) + 1) >= 0 && H5Tset_strpad(t, H5T_STR_NULLTERM) >= 0) {
        hid_t a = H5Acreate2(loc, name, t, sp, H5P_DEFAULT, H5P_DEFAULT);
        if (a >= 0) {
            rc = H5Awrite(a, t, v) >= 0 ? 0 : -1;
            if (H5Aclose(a) < 0) rc = -1;
        }
    }
    if (sp >= 0) H5Sclose(sp);
    H5Tclose(t);
    return rc;
}

static int attr_num(hid_t loc, const char *name, hid_t file_type, hid_t mem_type, const void *v,
                    hsize_t n) {
    hid_t sp = n == 1 ? H5Screate(H5S_SCALAR) : H5Screate_simple(1, &n, NULL);
    if (sp < 0) return -1;
    hid_t a = H5Acreate2(loc, name, file_type, sp, H5P_DEFAULT, H5P_DEFAULT);
    int rc = (a >= 0 && H5Awrite(a, mem_type, v) >= 0) ? 0 : -1;
    if (a >= 0 && H5Aclose(a) < 0) rc = -1;
    H5Sclose(sp);
    return rc;
}

int nv_h5_attr_u64(hid_t loc, const char *name, uint64_t v) {
    return attr_num(loc, name, H5T_STD_U64LE, H5T_NATIVE_UINT64, &v, 1);
}

int nv_h5_attr_u64v(hid_t loc, const char *name, const uint64_t *v, hsize_t n) {
    hid_t sp = H5Screate_simple(1, &n, NULL);
    if (sp < 0) return -1;
    hid_t a = H5Acreate2(loc, name, H5T_STD_U64LE, sp, H5P_DEFAULT, H5P_DEFAULT);
    int rc = (a >= 0 && H5Awrite(a, H5T_NATIVE_UINT64, v) >= 0) ? 0 : -1;
    if (a >= 0 && H5Aclose(a) < 0) rc = -1;
    H5Sclose(sp);
    return rc;
}

int nv_h5_read_attr_u64(hid_t loc, const char *name, uint64_t *v, int n) {
    if (H5Aexists(loc, name) <= 0) return -1;
    hid_t a = H5Aopen(loc, name, H5P_DEFAULT);
    if (a < 0) return -1;
    hid_t sp = H5Aget_space(a), t = H5Aget_type(a);
    hssize_t k = sp >= 0 ? H5Sget_simple_extent_npoints(sp) : -1;
    int rc = (k == n && t >= 0 && H5Tget_class(t) == H5T_INTEGER &&
              H5Aread(a, H5T_NATIVE_UINT64, v) >= 0) ? 0 : -1;
    if (t >= 0) H5Tclose(t);
    if (sp >= 0) H5Sclose(sp);
    H5Aclose(a);
    return rc;
}

int nv_h5_attr_i64(hid_t loc, const char *name, const int64_t *v, hsize_t n) {
    return attr_num(loc, name, H5T_STD_I64LE, H5T_NATIVE_INT64, v, n);
}

int nv_h5_read_attr_i64(hid_t loc, const char *name, int64_t *v, int n) {
    if (H5Aexists(loc, name) <= 0) return -1;
    hid_t a = H5Aopen(loc, name, H5P_DEFAULT);
    if (a < 0) return -1;
    hid_t sp = H5Aget_space(a);
    hssize_t k = sp >= 0 ? H5Sget_simple_extent_npoints(sp) : -1;
    int rc = (k == n && H5Aread(a, H5T_NATIVE_INT64, v) >= 0) ? 0 : -1;
    if (sp >= 0) H5Sclose(sp);
    H5Aclose(a);
    return rc;
}
