// shard_source.c - the structure_source attribute (see shard_source.h).
#include "data/shard_source.h"

#include <hdf5.h>
#include <stdlib.h>
#include <string.h>

#include "data/h5util.h"
#include "data/shard.h"

int nv_shard_set_source(const char *path, const char *source, nv_error *err) {
    nv_h5_quiet q = nv_h5_quiet_begin();
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    int ok = f >= 0;
    if (ok && H5Aexists(f, "structure_source") > 0) ok = H5Adelete(f, "structure_source") >= 0;
    ok = ok && nv_h5_attr_str(f, "structure_source", source) == 0;
    if (f >= 0 && H5Fclose(f) < 0) ok = 0;
    nv_h5_quiet_end(q);
    if (!ok) return nv_seterr(err, "%s: cannot write the structure_source attribute\n"
                                   "---> HINT: is the directory writable and the disk not full?", path);
    return 0;
}

int nv_shard_get_source(const char *path, char *buf, size_t n, nv_error *err) {
    nv_h5_quiet q = nv_h5_quiet_begin();
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    int rc = -1;
    if (f < 0) {
        nv_seterr(err, "%s: cannot open as HDF5", path);
    } else if (H5Aexists(f, "structure_source") <= 0) {
        rc = 0;
    } else {
        hid_t a = H5Aopen(f, "structure_source", H5P_DEFAULT);
        hid_t t = a >= 0 ? H5Aget_type(a) : -1;
        if (t >= 0 && H5Tget_class(t) == H5T_STRING) {
            hid_t mt = H5Tcopy(H5T_C_S1);
            if (H5Tis_variable_str(t) > 0) { // other writers may use variable-length strings
                char *s = NULL;
                H5Tset_size(mt, H5T_VARIABLE);
                if (H5Aread(a, mt, &s) >= 0 && s) {
                    snprintf(buf, n, "%s", s);
                    rc = 1;
                }
                if (s) H5free_memory(s);
            } else {
                size_t w = H5Tget_size(t);
                char *s = nv_calloc(w + 1, 1);
                H5Tset_size(mt, w + 1);
                H5Tset_strpad(mt, H5T_STR_NULLTERM);
                if (H5Aread(a, mt, s) >= 0) {
                    snprintf(buf, n, "%s", s);
                    rc = 1;
                }
                free(s);
            }
            H5Tclose(mt);
        }
        if (rc < 0) nv_seterr(err, "%s: cannot read the structure_source attribute (not a string?)", path);
        if (t >= 0) H5Tclose(t);
        if (a >= 0) H5Aclose(a);
    }
    if (f >= 0) H5Fclose(f);
    nv_h5_quiet_end(q);
    return rc;
}
