// bench_ckpt - save and load time of a checkpoint of a given model size, one rank.
// Prints one table line per phase: bytes on disk, seconds, GB/s. bench/bench_ckpt.sh runs
// it beside dd and writes bench/results/ckpt-<date>.md.
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/rng.h"
#include "train/checkpoint.h"

int main(int argc, char **argv) {
    int layers = 12, hidden = 640, ffn = 1700, heads = 20, reps = 3, c;
    const char *dir = NULL;
    static const struct option opts[] = {{"dir", required_argument, 0, 'd'}, {"layers", required_argument, 0, 'l'},
                                         {"hidden", required_argument, 0, 'H'}, {"ffn", required_argument, 0, 'f'},
                                         {"reps", required_argument, 0, 'r'}, {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    while ((c = getopt_long(argc, argv, "d:l:H:f:r:h", opts, NULL)) != -1) {
        switch (c) {
        case 'd': dir = optarg; break;
        case 'l': layers = atoi(optarg); break;
        case 'H': hidden = atoi(optarg); break;
        case 'f': ffn = atoi(optarg); break;
        case 'r': reps = atoi(optarg); break;
        case 'h': printf("usage: bench_ckpt --dir DIR [--layers 12 --hidden 640 --ffn 1700 --reps 3]\n"); return 0;
        default: return 2;
        }
    }
    if (!dir) nv_die_code(2, "bench_ckpt: --dir DIR is required");
    nv_dist d;
    nv_error err;
    if (nv_dist_init(&d, &argc, &argv, 1, &err)) nv_die("%s", err.msg);
    nv_config cfg;
    nv_config_defaults(&cfg);
    cfg.model.num_layers = layers;
    cfg.model.hidden_size = hidden;
    cfg.model.ffn_hidden_size = ffn;
    cfg.model.num_attn_heads = heads;
    nv_param_table t;
    nv_param_ids ids;
    nv_params_build(&t, &ids, &cfg.model, 0, 1);
    nv_ckpt_state s;
    memset(&s, 0, sizeof s);
    s.t = &t;
    s.shard_hi = t.total;
    float *buf[3];
    for (int b = 0; b < 3; b++) {
        buf[b] = nv_malloc(sizeof(float) * t.total);
        for (size_t i = 0; i < t.total; i++) // random mantissas: nothing compresses or dedups
            buf[b][i] = (float)((double)(nv_mix64((uint64_t)b, i) >> 40) / 16777216.0 - 0.5);
    }
    s.master = buf[0], s.adam_m = buf[1], s.adam_v = buf[2];
    double best_save = 1e30, best_load = 1e30, best_load_t2 = 1e30;
    for (int r = 0; r < reps; r++) {
        s.step = 1000 + r;
        double t0 = nv_now();
        if (nv_ckpt_save(dir, &d, &cfg, &s, 1, &err)) nv_die("%s", err.msg);
        double t1 = nv_now();
        if (nv_ckpt_load(dir, &d, NULL, &s, &err)) nv_die("%s", err.msg);
        double t2 = nv_now();
        if (t1 - t0 < best_save) best_save = t1 - t0;
        if (t2 - t1 < best_load) best_load = t2 - t1;
    }
    // load into another layout (tensor 2, rank 0), the resharding path
    {
        nv_param_table t2;
        nv_param_ids ids2;
        nv_params_build(&t2, &ids2, &cfg.model, 0, 2);
        nv_ckpt_state s2;
        memset(&s2, 0, sizeof s2);
        s2.t = &t2;
        s2.shard_hi = t2.total;
        s2.master = nv_malloc(sizeof(float) * t2.total);
        s2.adam_m = nv_malloc(sizeof(float) * t2.total);
        s2.adam_v = nv_malloc(sizeof(float) * t2.total);
        for (int r = 0; r < reps; r++) {
            double t0 = nv_now();
            if (nv_ckpt_load(dir, &d, NULL, &s2, &err)) nv_die("%s", err.msg);
            double dt = nv_now() - t0;
            if (dt < best_load_t2) best_load_t2 = dt;
        }
        free(s2.master), free(s2.adam_m), free(s2.adam_v);
        nv_params_free(&t2, &ids2);
    }
    char sd[NV_PATH_MAX];
    nv_ckpt_manifest m;
    if (nv_ckpt_resolve(dir, sd, sizeof sd, &err) || nv_ckpt_manifest_read(sd, &m, &err)) nv_die("%s", err.msg);
    unsigned long long bytes = 0;
    for (int i = 0; i < m.n_files; i++) bytes += m.files[i].size;
    nv_ckpt_manifest_free(&m);
    printf("params %zu state_bytes %zu file_bytes %llu save_s %.3f load_s %.3f load_tp2_s %.3f\n", t.total,
           3 * sizeof(float) * t.total, bytes, best_save, best_load, best_load_t2);
    for (int b = 0; b < 3; b++) free(buf[b]);
    nv_params_free(&t, &ids);
    nv_dist_finalize(&d);
    return 0;
}
