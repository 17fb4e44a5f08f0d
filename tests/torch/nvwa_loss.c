// nvwa_loss - nvwa's own loss (and gradients) on dumped batches, for the PyTorch reference
// (bench/torch_ref.py --check) to be compared against:
//
//   nvwa_loss CKPT DUMP.h5 [--f64] [--grads OUT.safetensors] [--grad-batch K]
//
// CKPT: a checkpoint root or step dir (weights and config; loaded with nv_model_load_ckpt).
// DUMP.h5: `nvwa-train CONFIG --dump-batches N --output DUMP.h5` (datasets input, target,
// struct_in, struct_target, mlm_mask, struct_mask, segment, position [rows, seq-length];
// attributes global_batch, micro_batch, seq_length).
// For every global batch g (global_batch rows) it runs nv_model_step per micro-batch with
// mlm_scale = 1/N_mlm(g) and struct_scale = w/N_struct(g) (design section 6: means over the
// global batch) and prints one JSON line
//   {"batch": g, "loss": L, "mlm_loss": .., "struct_loss": .., "n_mlm": .., "n_struct": ..}
// --f64: the cpu-f64 backend (everything in double) instead of the fp32 CPU backend.
// --grads: the accumulated gradients of global batch K (default 0) as an F64 safetensors
// file with the design's tensor names (tensor = 1, so the local tensors are the full ones).
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/batch.h"
#include "model/model.h"
#include "train/dist.h"
#include "train/evaluate.h"

static void die(const char *msg, const char *arg) {
    fprintf(stderr, "nvwa_loss: error: %s%s\n", msg, arg ? arg : "");
    exit(1);
}

static long long get_attr(hid_t f, const char *name) {
    long long v = 0;
    hid_t a = H5Aopen(f, name, H5P_DEFAULT);
    if (a < 0 || H5Aread(a, H5T_NATIVE_LLONG, &v) < 0) die("dump: missing attribute ", name);
    H5Aclose(a);
    return v;
}

// rows [r0, r0+nr) of dataset `name` ([rows, cols]) into dst, as int32 or uint8
static void read_rows(hid_t f, const char *name, hsize_t r0, hsize_t nr, hsize_t cols, void *dst,
                      int u8) {
    hid_t ds = H5Dopen2(f, name, H5P_DEFAULT);
    if (ds < 0) die("dump: no dataset ", name);
    hid_t fs = H5Dget_space(ds);
    hsize_t start[2] = {r0, 0}, count[2] = {nr, cols};
    H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, count, NULL);
    hid_t ms = H5Screate_simple(2, count, NULL);
    if (H5Dread(ds, u8 ? H5T_NATIVE_UINT8 : H5T_NATIVE_INT32, ms, fs, H5P_DEFAULT, dst) < 0)
        die("dump: cannot read ", name);
    H5Sclose(ms);
    H5Sclose(fs);
    H5Dclose(ds);
}

static void write_grads(const char *path, const nv_param_table *t, const double *g) {
    char *hdr = NULL;
    size_t hlen = 0, off = 0;
    FILE *h = open_memstream(&hdr, &hlen);
    fprintf(h, "{\"__metadata__\":{\"format\":\"nvwa-grads\"}");
    for (int k = 0; k < t->n; k++) {
        const nv_param *p = &t->p[k];
        fprintf(h, ",\"%s\":{\"dtype\":\"F64\",\"shape\":[", p->name);
        if (p->ndim == 1) fprintf(h, "%lld", (long long)p->full[0]);
        else fprintf(h, "%lld,%lld", (long long)p->full[0], (long long)p->full[1]);
        fprintf(h, "],\"data_offsets\":[%zu,%zu]}", off, off + p->numel * 8);
        off += p->numel * 8;
    }
    fputc('}', h);
    while (ftell(h) % 8) fputc(' ', h);
    fclose(h);
    FILE *f = fopen(path, "wb");
    if (!f) die("cannot create ", path);
    uint64_t n8 = hlen; // little-endian host
    int ok = fwrite(&n8, 8, 1, f) == 1 && fwrite(hdr, 1, hlen, f) == hlen;
    for (int k = 0; k < t->n && ok; k++)
        ok = fwrite(g + t->p[k].offset, 8, t->p[k].numel, f) == t->p[k].numel;
    if (fclose(f) != 0 || !ok) die("cannot write ", path);
    free(hdr);
}

int main(int argc, char **argv) {
    nv_error err;
    nv_dist d;
    if (nv_dist_init(&d, &argc, &argv, 1, &err) != 0) die(err.msg, NULL);
    const char *ckpt = NULL, *dump = NULL, *grads = NULL;
    int f64 = 0;
    long grad_batch = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--f64")) f64 = 1;
        else if (!strcmp(argv[i], "--grads") && i + 1 < argc) grads = argv[++i];
        else if (!strcmp(argv[i], "--grad-batch") && i + 1 < argc) grad_batch = atol(argv[++i]);
        else if (!ckpt) ckpt = argv[i];
        else if (!dump) dump = argv[i];
        else die("usage: nvwa_loss CKPT DUMP.h5 [--f64] [--grads OUT] [--grad-batch K]", NULL);
    }
    if (!dump) die("usage: nvwa_loss CKPT DUMP.h5 [--f64] [--grads OUT] [--grad-batch K]", NULL);
    nv_config cfg;
    if (nv_ckpt_read_config(ckpt, &cfg, NULL, &err) != 0) die(err.msg, NULL);

    hid_t f = H5Fopen(dump, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) die("cannot open ", dump);
    const int S = (int)get_attr(f, "seq_length"), GB = (int)get_attr(f, "global_batch"),
              MB = (int)get_attr(f, "micro_batch");
    const long steps = (long)get_attr(f, "n_steps");
    if (S <= 0 || GB <= 0 || MB <= 0 || GB % MB) die("dump: bad batch attributes", NULL);

    const nv_backend *be = f64 ? nv_backend_cpu_f64() : nv_backend_cpu();
    nv_model *m = nv_model_create(&cfg.model, be, 0, 1, NULL, MB * S);
    if (nv_model_load_ckpt(m, ckpt, &d, NULL, &err) != 0) die(err.msg, NULL);
    const nv_param_table *t = nv_model_params(m);
    const double w = cfg.model.struct_loss_weight;

    nv_batch b;
    nv_batch_alloc(&b, MB, S);
    for (long g = 0; g < steps; g++) {
        // counts over the global batch first (the scales of the design's means)
        long n_mlm = 0, n_st = 0;
        for (int r0 = 0; r0 < GB; r0 += MB) {
            const hsize_t row = (hsize_t)g * GB + r0;
            read_rows(f, "mlm_mask", row, MB, S, b.mlm_mask, 1);
            read_rows(f, "struct_mask", row, MB, S, b.struct_mask, 1);
            read_rows(f, "struct_target", row, MB, S, b.struct_target, 0);
            for (long i = 0; i < (long)MB * S; i++) {
                n_mlm += b.mlm_mask[i] != 0;
                n_st += b.struct_mask[i] && b.struct_target[i] >= 0;
            }
        }
        const int want_grad = grads && g == grad_batch;
        if (want_grad) nv_model_zero_grad(m);
        double mlm_sum = 0, st_sum = 0;
        for (int r0 = 0; r0 < GB; r0 += MB) {
            const hsize_t row = (hsize_t)g * GB + r0;
            read_rows(f, "input", row, MB, S, b.input, 0);
            read_rows(f, "target", row, MB, S, b.target, 0);
            read_rows(f, "struct_in", row, MB, S, b.struct_in, 0);
            read_rows(f, "struct_target", row, MB, S, b.struct_target, 0);
            read_rows(f, "mlm_mask", row, MB, S, b.mlm_mask, 1);
            read_rows(f, "struct_mask", row, MB, S, b.struct_mask, 1);
            read_rows(f, "segment", row, MB, S, b.segment, 0);
            read_rows(f, "position", row, MB, S, b.position, 0);
            nv_batch_count(&b);
            nv_losses lo;
            nv_model_step(m, &b, n_mlm ? 1.0 / n_mlm : 0, n_st ? w / n_st : 0, want_grad, &lo);
            mlm_sum += lo.mlm_sum;
            st_sum += lo.struct_sum;
        }
        const double ml = n_mlm ? mlm_sum / n_mlm : 0, sl = n_st ? st_sum / n_st : 0;
        printf("{\"batch\": %ld, \"loss\": %.17g, \"mlm_loss\": %.17g, \"struct_loss\": %.17g, "
               "\"n_mlm\": %ld, \"n_struct\": %ld}\n",
               g, ml + w * sl, ml, sl, n_mlm, n_st);
        if (want_grad) {
            double *host = malloc((t->total + 1) * sizeof(double));
            be->download_state(host, nv_model_grad(m), t->total);
            write_grads(grads, t, host);
            free(host);
        }
    }
    nv_batch_free(&b);
    H5Fclose(f);
    nv_model_free(m);
    nv_dist_finalize(&d);
    return 0;
}
