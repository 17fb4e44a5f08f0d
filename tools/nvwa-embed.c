// nvwa-embed - run a trained model over sequences: per-nucleotide hidden states (after the
// final norm, <cls>/<eos> stripped), pooled vectors and optionally logits -> HDF5.
//
//   nvwa-embed --checkpoint DIR INPUT.fasta -o OUT.h5 [--pool mean|cls] [--logits]
//              [--batch-tokens N]
//
// Layout and windowing rule: docs/embeddings.md and model/embed.h. OUT.h5 is written under a
// temporary name and renamed at the end: a failure leaves no partial file.
#include <getopt.h>
#include <hdf5.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "data/h5util.h"
#include "data/seqio.h"
#include "data/vocab.h"
#include "model/embed.h"
#include "model/model.h"
#include "nv_build_config.h"
#include "train/dist.h"
#include "train/evaluate.h"
#include "train/trainer.h"

#define EMBED_FORMAT "nvwa-embeddings"
#define EMBED_VERSION 1

static void usage(FILE *f) {
    fprintf(f,
            "usage: nvwa-embed --checkpoint DIR INPUT -o OUT.h5 [options]\n"
            "\n"
            "Per-nucleotide hidden states of a trained model (after the final norm, without\n"
            "<cls>/<eos>), no masking, structure input hidden. INPUT is FASTA (also dot-bracket\n"
            "or bpseq, whose structure is ignored; gzip ok; - reads stdin). Sequences longer\n"
            "than seq-length - 2 are embedded in overlapping windows (docs/embeddings.md).\n"
            "\n"
            "OUT.h5: /hidden float32 [n_tokens, hidden], /offsets uint64 [n_seqs + 1],\n"
            "        /ids strings [n_seqs], /pooled float32 [n_seqs, hidden];\n"
            "        with --logits also /mlm_logits [n_tokens, 16], /struct_logits [n_tokens, 3]\n"
            "\n"
            "options:\n"
            "  -c, --checkpoint DIR        checkpoint root (its `latest`) or a step_XXXXXXXX dir\n"
            "  -o, --output FILE           the HDF5 file to write (required)\n"
            "  -p, --pool mean|cls         /pooled: mean over nucleotides (default) or <cls> state\n"
            "  -l, --logits                also the MLM and structure logits of every nucleotide\n"
            "  -b, --batch-tokens N        tokens per forward pass (default 8192; at least\n"
            "                              seq-length)\n"
            "  -O, --config-override K=V   change the saved config (e.g. data.seq-length=512)\n"
            "  -d, --device D              cpu (fp32), cpu-bf16 (the CUDA backend's twin), cuda or\n"
            "                              auto (default: cuda when present, else cpu)\n"
            "  -q, --quiet                 no summary line\n"
            "  -h, --help                  this text\n"
            "  -V, --version               version\n"
            "\n"
            "exit status: 0 ok, 1 failure (bad input, checkpoint, I/O), 2 usage error\n");
}

// ---- HDF5 output (every call checked) ------------------------------------------------------

#define H5CK(expr, what)                                                                       \
    do {                                                                                       \
        if ((expr) < 0) {                                                                      \
            nv_seterr(err, "%s: HDF5 %s failed", o->path, what);                               \
            return -1;                                                                         \
        }                                                                                      \
    } while (0)

typedef struct h5out {
    const char *path; // final name (for messages)
    hid_t file;
    hid_t hidden, pooled, mlm, st, ids, offsets;
    hid_t strtype;
    int d;
    uint64_t n_tokens, n_seqs;
} h5out;

static int mkds(h5out *o, const char *name, hid_t type, int cols, hid_t *ds, nv_error *err) {
    hsize_t dims[2] = {0, (hsize_t)cols}, maxd[2] = {H5S_UNLIMITED, (hsize_t)cols};
    // about 256 KiB per chunk
    hsize_t chunk[2] = {cols > 0 ? (hsize_t)(65536 / cols > 16 ? 65536 / cols : 16) : 1024, (hsize_t)cols};
    int rank = cols > 0 ? 2 : 1;
    hid_t sp = H5Screate_simple(rank, dims, maxd);
    H5CK(sp, "H5Screate_simple");
    hid_t pl = H5Pcreate(H5P_DATASET_CREATE);
    if (pl < 0) {
        H5Sclose(sp);
        return nv_seterr(err, "%s: HDF5 H5Pcreate failed", o->path);
    }
    herr_t r1 = H5Pset_chunk(pl, rank, chunk);
    *ds = r1 < 0 ? -1 : H5Dcreate2(o->file, name, type, sp, H5P_DEFAULT, pl, H5P_DEFAULT);
    H5Pclose(pl);
    H5Sclose(sp);
    H5CK(r1, "H5Pset_chunk");
    if (*ds < 0) return nv_seterr(err, "%s: HDF5 cannot create %s", o->path, name);
    return 0;
}

// Append rows [n, cols] (cols 0: a 1-D dataset) of type mem to ds, which holds `have` rows.
static int append(h5out *o, hid_t ds, hid_t mem, const void *buf, uint64_t have, uint64_t n,
                  int cols, nv_error *err) {
    if (n == 0) return 0;
    const int rank = cols > 0 ? 2 : 1;
    hsize_t size[2] = {(hsize_t)(have + n), (hsize_t)cols}, start[2] = {(hsize_t)have, 0},
            count[2] = {(hsize_t)n, (hsize_t)cols};
    H5CK(H5Dset_extent(ds, size), "H5Dset_extent");
    hid_t fs = H5Dget_space(ds);
    H5CK(fs, "H5Dget_space");
    hid_t ms = H5Screate_simple(rank, count, NULL);
    herr_t r = ms < 0 ? -1 : H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, count, NULL);
    if (r >= 0) r = H5Dwrite(ds, mem, ms, fs, H5P_DEFAULT, buf);
    if (ms >= 0) H5Sclose(ms);
    H5Sclose(fs);
    H5CK(r, "H5Dwrite");
    return 0;
}

static int attr_str(h5out *o, const char *name, const char *val, nv_error *err) {
    herr_t r = nv_h5_attr_str(o->file, name, val);
    H5CK(r, "attribute write");
    return 0;
}

static int attr_long(h5out *o, const char *name, long long val, nv_error *err) {
    const int64_t x = val;
    herr_t r = nv_h5_attr_i64(o->file, name, &x, 1);
    H5CK(r, "attribute write");
    return 0;
}

static int out_open(h5out *o, const char *tmp, int d, int logits, nv_error *err) {
    o->d = d;
    o->hidden = o->pooled = o->mlm = o->st = o->ids = o->offsets = o->strtype = -1;
    o->file = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (o->file < 0) return nv_seterr(err, "%s: cannot create", tmp);
    o->strtype = H5Tcopy(H5T_C_S1);
    H5CK(o->strtype, "H5Tcopy");
    H5CK(H5Tset_size(o->strtype, H5T_VARIABLE), "H5Tset_size");
    if (mkds(o, "hidden", H5T_IEEE_F32LE, d, &o->hidden, err) ||
        mkds(o, "pooled", H5T_IEEE_F32LE, d, &o->pooled, err) ||
        mkds(o, "offsets", H5T_STD_U64LE, 0, &o->offsets, err) ||
        mkds(o, "ids", o->strtype, 0, &o->ids, err))
        return -1;
    if (logits && (mkds(o, "mlm_logits", H5T_IEEE_F32LE, NV_VOCAB, &o->mlm, err) ||
                   mkds(o, "struct_logits", H5T_IEEE_F32LE, 3, &o->st, err)))
        return -1;
    uint64_t zero = 0;
    return append(o, o->offsets, H5T_NATIVE_UINT64, &zero, 0, 1, 0, err);
}

static void out_close(h5out *o) {
    hid_t *ds[] = {&o->hidden, &o->pooled, &o->mlm, &o->st, &o->ids, &o->offsets};
    for (size_t i = 0; i < sizeof ds / sizeof ds[0]; i++)
        if (*ds[i] >= 0) H5Dclose(*ds[i]), *ds[i] = -1;
    if (o->strtype >= 0) H5Tclose(o->strtype), o->strtype = -1;
    if (o->file >= 0) H5Fclose(o->file), o->file = -1;
}

// ---- the input, in groups of sequences -------------------------------------------------

typedef struct group {
    int n, cap;
    uint8_t **tok;
    uint64_t *len;
    char **id;
    uint64_t tokens;
} group;

static void group_add(group *g, const nv_seqrec *r) {
    if (g->n == g->cap) {
        g->cap = g->cap ? 2 * g->cap : 256;
        g->tok = nv_realloc(g->tok, (size_t)g->cap * sizeof *g->tok);
        g->len = nv_realloc(g->len, (size_t)g->cap * sizeof *g->len);
        g->id = nv_realloc(g->id, (size_t)g->cap * sizeof *g->id);
    }
    g->tok[g->n] = nv_malloc(r->len + 1);
    memcpy(g->tok[g->n], r->tok, r->len);
    g->len[g->n] = r->len;
    g->id[g->n] = nv_strdup(r->id);
    g->tokens += r->len;
    g->n++;
}

static void group_clear(group *g) {
    for (int i = 0; i < g->n; i++) {
        free(g->tok[i]);
        free(g->id[i]);
    }
    g->n = 0;
    g->tokens = 0;
}

// Embed one group and append it.
static int flush_group(nv_embedder *e, group *g, h5out *o, nv_pool_kind pool, int logits,
                       nv_error *err) {
    if (g->n == 0) return 0;
    const int d = o->d;
    float *hidden = nv_malloc((g->tokens + 1) * d * sizeof(float));
    float *pooled = nv_malloc(((size_t)g->n + 1) * d * sizeof(float));
    float *mlm = logits ? nv_malloc((g->tokens + 1) * NV_VOCAB * sizeof(float)) : NULL;
    float *st = logits ? nv_malloc((g->tokens + 1) * 3 * sizeof(float)) : NULL;
    nv_embed(e, g->n, (const uint8_t *const *)g->tok, g->len, pool, hidden, pooled, mlm, st);
    uint64_t *offs = nv_malloc((size_t)g->n * sizeof(uint64_t));
    uint64_t at = o->n_tokens;
    for (int i = 0; i < g->n; i++) offs[i] = (at += g->len[i]);
    int rc = append(o, o->hidden, H5T_NATIVE_FLOAT, hidden, o->n_tokens, g->tokens, d, err);
    if (!rc) rc = append(o, o->pooled, H5T_NATIVE_FLOAT, pooled, o->n_seqs, (uint64_t)g->n, d, err);
    if (!rc && logits) rc = append(o, o->mlm, H5T_NATIVE_FLOAT, mlm, o->n_tokens, g->tokens, NV_VOCAB, err);
    if (!rc && logits) rc = append(o, o->st, H5T_NATIVE_FLOAT, st, o->n_tokens, g->tokens, 3, err);
    if (!rc) rc = append(o, o->offsets, H5T_NATIVE_UINT64, offs, o->n_seqs + 1, (uint64_t)g->n, 0, err);
    if (!rc) rc = append(o, o->ids, o->strtype, g->id, o->n_seqs, (uint64_t)g->n, 0, err);
    o->n_tokens += g->tokens;
    o->n_seqs += (uint64_t)g->n;
    free(hidden);
    free(pooled);
    free(mlm);
    free(st);
    free(offs);
    group_clear(g);
    return rc;
}

static char tmp_path[NV_PATH_MAX + 64];
static void on_signal(int sig) {
    if (tmp_path[0]) unlink(tmp_path);
    signal(sig, SIG_DFL);
    raise(sig);
}

int main(int argc, char **argv) {
    static const struct option opts[] = {
        {"checkpoint", required_argument, 0, 'c'}, {"output", required_argument, 0, 'o'},
        {"pool", required_argument, 0, 'p'},       {"logits", no_argument, 0, 'l'},
        {"batch-tokens", required_argument, 0, 'b'},
        {"config-override", required_argument, 0, 'O'},
        {"device", required_argument, 0, 'd'},     {"quiet", no_argument, 0, 'q'},
        {"help", no_argument, 0, 'h'},             {"version", no_argument, 0, 'V'},
        {0, 0, 0, 0}};
    const char *ckpt = NULL, *output = NULL, *device = "auto";
    char **ovr = nv_calloc((size_t)argc + 1, sizeof(char *));
    int n_ovr = 0, quiet = 0, logits = 0, c;
    nv_pool_kind pool = NV_POOL_MEAN;
    long batch_tokens = 8192;
    while ((c = getopt_long(argc, argv, "c:o:p:lb:O:d:qhV", opts, NULL)) != -1) {
        switch (c) {
        case 'c': ckpt = optarg; break;
        case 'o': output = optarg; break;
        case 'p':
            if (!strcmp(optarg, "mean")) pool = NV_POOL_MEAN;
            else if (!strcmp(optarg, "cls")) pool = NV_POOL_CLS;
            else {
                fprintf(stderr, "nvwa-embed: error: --pool %s: expected mean or cls\n", optarg);
                return 2;
            }
            break;
        case 'l': logits = 1; break;
        case 'b': {
            char *end;
            batch_tokens = strtol(optarg, &end, 10);
            if (*end || batch_tokens <= 0) {
                fprintf(stderr, "nvwa-embed: error: --batch-tokens %s: not a positive integer\n", optarg);
                return 2;
            }
            break;
        }
        case 'O': ovr[n_ovr++] = optarg; break;
        case 'd': device = optarg; break;
        case 'q': quiet = 1; break;
        case 'h': usage(stdout); return 0;
        case 'V': printf("nvwa-embed %s\n", NV_VERSION); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (!ckpt || !output) {
        fprintf(stderr, "nvwa-embed: error: %s is required\n", !ckpt ? "--checkpoint DIR" : "-o OUT.h5");
        return 2;
    }
    if (optind + 1 != argc) {
        fprintf(stderr, "nvwa-embed: error: %s\n", optind >= argc ? "no INPUT given" : "one INPUT only");
        return 2;
    }
    const char *input = argv[optind];
    nv_error err;
    nv_config cfg;
    if (nv_ckpt_read_config(ckpt, &cfg, NULL, &err) != 0) {
        fprintf(stderr, "nvwa-embed: error: %s\n", err.msg);
        return 1;
    }
    for (int i = 0; i < n_ovr; i++)
        if (nv_config_override(&cfg, ovr[i], &err) != 0) {
            fprintf(stderr, "nvwa-embed: error: %s\n", err.msg);
            return 2;
        }
    if (nv_tool_device(&cfg, device) != 0) {
        fprintf(stderr, "nvwa-embed: error: --device %s: expected cpu, cpu-bf16, cuda or auto\n", device);
        return 2;
    }
    cfg.parallel.tensor = 1;
    cfg.parallel.zero1 = 0;
    if (nv_config_validate(&cfg, 1, &err) != 0) {
        fprintf(stderr, "nvwa-embed: error: %s\n", err.msg);
        return 2;
    }
    const int L = cfg.data.seq_length, d = cfg.model.hidden_size;
    if (batch_tokens < L) batch_tokens = L;
    const int rows = (int)(batch_tokens / L);

    // open the input first: a bad or missing file fails before any model work
    nv_seqreader *rd = nv_seqreader_open(input, NV_FMT_AUTO, 0, &err);
    if (!rd) {
        fprintf(stderr, "nvwa-embed: error: %s\n", err.msg);
        return 1;
    }
    nv_dist dist;
    if (nv_dist_init(&dist, &argc, &argv, 1, &err) != 0) {
        fprintf(stderr, "nvwa-embed: error: %s\n", err.msg);
        return 1;
    }
    if (dist.world != 1) {
        if (dist.rank == 0) fprintf(stderr, "nvwa-embed: error: runs as one process, not under a launcher of %d ranks\n", dist.world);
        nv_dist_finalize(&dist);
        return 2;
    }
    int rc = 0;
    const nv_backend *be = nv_select_backend(&cfg, &err);
    nv_model *m = NULL;
    nv_embedder *e = NULL;
    char loaded[NV_PATH_MAX];
    if (!be) rc = 1;
    if (!rc) {
        m = nv_model_create(&cfg.model, be, 0, 1, NULL, rows * L);
        if (nv_model_load_ckpt(m, ckpt, &dist, loaded, &err) != 0) rc = 1;
    }
    h5out o;
    memset(&o, 0, sizeof o);
    o.file = -1;
    o.path = output;
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL); // one line of ours instead of HDF5's stack
    if (!rc) {
        snprintf(tmp_path, sizeof tmp_path, "%s.tmp.%d", output, (int)getpid());
        signal(SIGINT, on_signal);
        signal(SIGTERM, on_signal);
        e = nv_embedder_create(m, L, rows, logits);
        if (out_open(&o, tmp_path, d, logits, &err) != 0) rc = 1;
    }
    const double t0 = nv_now();
    group g;
    memset(&g, 0, sizeof g);
    const uint64_t group_tokens = (uint64_t)rows * L * 8;
    while (!rc) {
        nv_seqrec rec;
        int r = nv_seqreader_next(rd, &rec, &err);
        if (r < 0) {
            rc = 1;
            break;
        }
        if (r == 0) break;
        group_add(&g, &rec);
        if (g.tokens >= group_tokens && flush_group(e, &g, &o, pool, logits, &err) != 0) rc = 1;
    }
    if (!rc && flush_group(e, &g, &o, pool, logits, &err) != 0) rc = 1;
    if (!rc && o.n_seqs == 0) rc = nv_seterr(&err, "%s: no sequences", input) ? 1 : 1;
    if (!rc) {
        const int W = L - 2;
        if (attr_str(&o, "format", EMBED_FORMAT, &err) || attr_long(&o, "version", EMBED_VERSION, &err) ||
            attr_long(&o, "n_seqs", (long long)o.n_seqs, &err) ||
            attr_long(&o, "n_tokens", (long long)o.n_tokens, &err) ||
            attr_long(&o, "hidden_size", d, &err) ||
            attr_str(&o, "pool", pool == NV_POOL_CLS ? "cls" : "mean", &err) ||
            attr_long(&o, "window", W, &err) || attr_long(&o, "stride", W / 2 > 0 ? W / 2 : 1, &err) ||
            attr_str(&o, "checkpoint", loaded, &err))
            rc = 1;
    }
    group_clear(&g);
    free(g.tok);
    free(g.len);
    free(g.id);
    if (o.file >= 0) {
        hid_t f = o.file;
        if (!rc && H5Fflush(f, H5F_SCOPE_GLOBAL) < 0) rc = nv_seterr(&err, "%s: HDF5 flush failed", output) ? 1 : 1;
        out_close(&o);
    }
    if (!rc && rename(tmp_path, output) != 0) rc = nv_seterr(&err, "%s: cannot rename the finished file into place", output) ? 1 : 1;
    if (rc) {
        fprintf(stderr, "nvwa-embed: error: %s\n", err.msg);
        if (tmp_path[0]) unlink(tmp_path);
    } else if (!quiet) {
        printf("%s: %llu sequences, %llu nucleotides, hidden %d%s, pool %s, %.1f s (%s)\n", output,
               (unsigned long long)o.n_seqs, (unsigned long long)o.n_tokens, d,
               logits ? ", logits" : "", pool == NV_POOL_CLS ? "cls" : "mean", nv_now() - t0, be->name);
    }
    nv_seqreader_close(rd);
    nv_embedder_free(e);
    nv_model_free(m);
    free(ovr);
    nv_dist_finalize(&dist);
    return rc;
}
