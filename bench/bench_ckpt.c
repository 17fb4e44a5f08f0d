// bench_ckpt - save and load time of one rank's checkpoint files for a given model size:
// fp32 masters + Adam m and v of tensor rank 0 of --tensor T (T = 1: the whole state; T = 8:
// the slice one rank of an 8-way tensor-parallel job writes). The save is what the trainer
// does per rank (files written, fsynced, CRCs, manifest, rename, `latest`); the load reads
// them back through the same checks as a resume (file CRC from metadata and block CRCs,
// every block checked), once with the files dropped from the page cache first (cold: from
// the disk) and once right after (warm). bench/bench_ckpt.sh runs it beside dd on the same
// disk and writes bench/results/ckpt-<date>.md.
#include <fcntl.h>
#include <getopt.h>
#include <glob.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "data/rng.h"
#include "train/checkpoint.h"
#include "train/ckpt_io.h"

static void drop_cache(const char *step_dir) {
    char pat[NV_PATH_MAX + 8];
    snprintf(pat, sizeof pat, "%s/*", step_dir);
    glob_t g;
    if (glob(pat, 0, NULL, &g) != 0) return;
    for (size_t i = 0; i < g.gl_pathc; i++) {
        int fd = open(g.gl_pathv[i], O_RDONLY);
        if (fd < 0) continue;
        posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED); // clean pages: the save fsynced them
        close(fd);
    }
    globfree(&g);
}

static double save_once(const char *dir, const nv_config *cfg, nv_ckpt_state *s, int tensor, char *step_dir) {
    nv_error err;
    char tmp[NV_PATH_MAX];
    nv_ckpt_file files[2];
    int n = 0;
    double t0 = nv_now();
    if (nv_ckpt_begin(dir, s->step, tmp, sizeof tmp, &err) || nv_ckpt_write_files(tmp, s, 0, 1, files, &n, &err) ||
        nv_ckpt_commit(dir, tmp, cfg, s, tensor, 1, 0, files, n, 0, &err))
        nv_die("%s", err.msg);
    double dt = nv_now() - t0;
    snprintf(step_dir, NV_PATH_MAX, "%s/step_%08ld", dir, s->step);
    return dt;
}

static double load_once(const char *step_dir, nv_ckpt_state *s) {
    nv_error err;
    nv_ckpt_manifest m;
    double t0 = nv_now();
    if (nv_ckpt_manifest_read(step_dir, &m, &err) || nv_ckpt_load_local(step_dir, &m, s, &err)) nv_die("%s", err.msg);
    double dt = nv_now() - t0;
    nv_ckpt_manifest_free(&m);
    return dt;
}

int main(int argc, char **argv) {
    int layers = 12, hidden = 640, ffn = 3456, heads = 20, tensor = 1, reps = 3, c;
    const char *dir = NULL;
    static const struct option opts[] = {{"dir", 1, 0, 'd'},    {"layers", 1, 0, 'l'}, {"hidden", 1, 0, 'H'},
                                         {"ffn", 1, 0, 'f'},    {"heads", 1, 0, 'a'},  {"tensor", 1, 0, 't'},
                                         {"reps", 1, 0, 'r'},   {"help", 0, 0, 'h'},   {0, 0, 0, 0}};
    while ((c = getopt_long(argc, argv, "d:l:H:f:a:t:r:h", opts, NULL)) != -1) {
        switch (c) {
        case 'd': dir = optarg; break;
        case 'l': layers = atoi(optarg); break;
        case 'H': hidden = atoi(optarg); break;
        case 'f': ffn = atoi(optarg); break;
        case 'a': heads = atoi(optarg); break;
        case 't': tensor = atoi(optarg); break;
        case 'r': reps = atoi(optarg); break;
        case 'h':
            printf("usage: bench_ckpt --dir DIR [--layers 12 --hidden 640 --ffn 3456 --heads 20 --tensor 1 --reps 3]\n");
            return 0;
        default: return 2;
        }
    }
    if (!dir || tensor < 1 || reps < 1) nv_die_code(2, "bench_ckpt: --dir DIR is required (try --help)");
    nv_config cfg;
    nv_config_defaults(&cfg);
    cfg.model.num_layers = layers;
    cfg.model.hidden_size = hidden;
    cfg.model.ffn_hidden_size = ffn;
    cfg.model.num_attn_heads = heads;
    cfg.parallel.tensor = tensor;
    nv_param_table t;
    nv_param_ids ids;
    nv_params_build(&t, &ids, &cfg.model, 0, tensor);
    nv_ckpt_state s, l;
    memset(&s, 0, sizeof s);
    s.t = &t;
    s.shard_hi = t.total;
    float *buf[3];
    for (int b = 0; b < 3; b++) { // the tensors random (nothing compresses or dedups), padding 0
        buf[b] = nv_calloc(t.total, sizeof(float));
        for (int k = 0; k < t.n; k++)
            for (size_t i = t.p[k].offset; i < t.p[k].offset + t.p[k].numel; i++)
                buf[b][i] = (float)((double)(nv_mix64((uint64_t)b, i) >> 40) / 16777216.0 - 0.5);
    }
    s.master = buf[0], s.adam_m = buf[1], s.adam_v = buf[2];
    l = s;
    l.master = nv_malloc(sizeof(float) * t.total);
    l.adam_m = nv_malloc(sizeof(float) * t.total);
    l.adam_v = nv_malloc(sizeof(float) * t.total);
    // keep = 0 above: the old checkpoints are removed here, outside the timed save (unlinking
    // them is file-system work that dd does not do either; the trainer prunes after `latest`)
    double best_save = 1e30, best_cold = 1e30, best_warm = 1e30;
    char step_dir[NV_PATH_MAX];
    for (int r = 0; r < reps; r++) {
        s.step = 1000 + r;
        double ts = save_once(dir, &cfg, &s, tensor, step_dir);
        drop_cache(step_dir);
        double tc = load_once(step_dir, &l), tw = load_once(step_dir, &l);
        if (memcmp(l.master, s.master, sizeof(float) * t.total) || memcmp(l.adam_v, s.adam_v, sizeof(float) * t.total))
            nv_die("bench_ckpt: the state loaded differs from the one saved");
        char rm[NV_PATH_MAX + 16];
        snprintf(rm, sizeof rm, "rm -rf '%s'", step_dir);
        if (r + 1 < reps && system(rm) != 0) nv_die("bench_ckpt: %s failed", rm);
        best_save = ts < best_save ? ts : best_save;
        best_cold = tc < best_cold ? tc : best_cold;
        best_warm = tw < best_warm ? tw : best_warm;
    }
    nv_error err;
    nv_ckpt_manifest m;
    if (nv_ckpt_manifest_read(step_dir, &m, &err)) nv_die("%s", err.msg);
    unsigned long long bytes = 0;
    for (int i = 0; i < m.n_files; i++) bytes += m.files[i].size;
    nv_ckpt_manifest_free(&m);
    printf("params %zu state_bytes %zu file_bytes %llu threads %d save_s %.3f load_cold_s %.3f load_warm_s %.3f\n",
           t.total, 3 * sizeof(float) * t.total, bytes, nv_ckio_threads(), best_save, best_cold, best_warm);
    for (int b = 0; b < 3; b++) free(buf[b]);
    free(l.master), free(l.adam_m), free(l.adam_v);
    nv_params_free(&t, &ids);
    return 0;
}
