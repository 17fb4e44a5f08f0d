// nvwa-ckpt - inspect, verify, reshard and export checkpoints (design section 9).
//
// A single process: it reads any layout through the checkpoint library's non-collective
// pieces and, for reshard, writes every tensor rank's files itself.
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "train/checkpoint.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: nvwa-ckpt COMMAND DIR [options]\n"
            "\n"
            "DIR is a checkpoint root (its `latest` is used) or one step_XXXXXXXX directory.\n"
            "\n"
            "commands:\n"
            "  info DIR                         step, layout, cursor, tensors, files, config\n"
            "  verify DIR                       every file's CRC32 and every dataset's Fletcher32;\n"
            "                                   exit 1 naming the first bad file or dataset\n"
            "  reshard DIR --tensor N -o OUT    write a new checkpoint root OUT at tensor N, data 1,\n"
            "                                   zero1 off (same step, cursor, optimizer state)\n"
            "  export DIR -o FILE [--dtype fp32|bf16]\n"
            "                                   full tensors as safetensors with the design's names\n"
            "\n"
            "options:\n"
            "  -t, --tensor N    tensor-parallel degree of the resharded checkpoint\n"
            "  -o, --output P    output root (reshard) or file (export)\n"
            "  -d, --dtype T     export dtype: fp32 (default) or bf16 (round to nearest even)\n"
            "  -h, --help        this text\n"
            "\n"
            "exit status: 0 ok, 1 failure (bad checkpoint, I/O), 2 usage error\n");
}

static int fail(const char *msg) {
    fprintf(stderr, "nvwa-ckpt: error: %s\n", msg);
    return 1;
}

static int open_manifest(const char *path, char *dir, size_t n, nv_ckpt_manifest *m) {
    nv_error e;
    if (nv_ckpt_resolve(path, dir, n, &e) || nv_ckpt_manifest_read(dir, m, &e)) return fail(e.msg);
    return 0;
}

static int has_moments(const nv_ckpt_manifest *m) {
    for (int i = 0; i < m->n_files; i++)
        if (!strncmp(m->files[i].name, "optim_", 6)) return 1;
    return 0;
}

static int cmd_info(const char *path) {
    char dir[NV_PATH_MAX];
    nv_ckpt_manifest m;
    if (open_manifest(path, dir, sizeof dir, &m)) return 1;
    printf("checkpoint  %s\n", dir);
    printf("step        %ld\n", m.step);
    printf("layout      tensor %d, data %d, zero1 %s, moments %s\n", m.tensor, m.data,
           m.zero1 ? "on" : "off", has_moments(&m) ? "yes" : "no");
    printf("cursor      epoch %llu, step %llu, %d slots\n", (unsigned long long)m.cursor.epoch,
           (unsigned long long)m.cursor.step, m.cursor.n_slots);
    printf("extra      ");
    for (int i = 0; i < NV_CKPT_EXTRA; i++) printf(" %llu", (unsigned long long)m.extra[i]);
    printf("\n");
    const nv_model_config *mc = &m.cfg.model;
    printf("model       %d layers, hidden %d, ffn %d, %d heads, structure input %s\n",
           mc->num_layers, mc->hidden_size, mc->ffn_hidden_size, mc->num_attn_heads,
           mc->structure_input ? "on" : "off");
    long long params = 0;
    for (int k = 0; k < m.n_tensors; k++) params += m.tensor_shapes[k][0] * m.tensor_shapes[k][1];
    printf("tensors     %d (%lld parameters)\n", m.n_tensors, params);
    for (int k = 0; k < m.n_tensors; k++) {
        if (m.tensor_shapes[k][1] == 1)
            printf("  %-32s [%lld]\n", m.tensor_names[k], (long long)m.tensor_shapes[k][0]);
        else
            printf("  %-32s [%lld, %lld]\n", m.tensor_names[k], (long long)m.tensor_shapes[k][0],
                   (long long)m.tensor_shapes[k][1]);
    }
    unsigned long long bytes = 0;
    for (int i = 0; i < m.n_files; i++) bytes += m.files[i].size;
    printf("files       %d (%llu bytes)\n", m.n_files, bytes);
    for (int i = 0; i < m.n_files; i++)
        printf("  %-32s %12llu bytes  crc32 0x%08x\n", m.files[i].name,
               (unsigned long long)m.files[i].size, m.files[i].crc32);
    printf("config      (resolved, as saved)\n");
    nv_config_write(&m.cfg, stdout);
    nv_ckpt_manifest_free(&m);
    return 0;
}

static int cmd_verify(const char *path) {
    char dir[NV_PATH_MAX];
    nv_ckpt_manifest m;
    if (open_manifest(path, dir, sizeof dir, &m)) return 1;
    nv_error e;
    int bad = 0;
    // one line per damaged file, then the datasets (Fletcher32) only when the bytes agree
    for (int i = 0; i < m.n_files; i++)
        if (nv_ckpt_verify_files(dir, &m, i, m.n_files, &e)) {
            fprintf(stderr, "nvwa-ckpt: error: %s\n", e.msg);
            bad = 1;
        }
    if (!bad && nv_ckpt_verify_datasets(dir, &m, &e)) {
        fprintf(stderr, "nvwa-ckpt: error: %s\n", e.msg);
        bad = 1;
    }
    if (!bad) printf("%s: ok (%d files, %d tensors, step %ld)\n", dir, m.n_files, m.n_tensors, m.step);
    nv_ckpt_manifest_free(&m);
    return bad;
}

static int cmd_reshard(const char *path, int tensor, const char *out) {
    char dir[NV_PATH_MAX], tmp[NV_PATH_MAX];
    nv_ckpt_manifest m;
    if (open_manifest(path, dir, sizeof dir, &m)) return 1;
    nv_error e;
    nv_config cfg = m.cfg;
    cfg.parallel.tensor = tensor;
    cfg.parallel.zero1 = 0;
    int rc = 0;
    if (nv_config_validate(&cfg, tensor, &e)) rc = fail(e.msg);
    else if (nv_ckpt_begin(out, m.step, tmp, sizeof tmp, &e)) rc = fail(e.msg);
    int moments = has_moments(&m);
    nv_ckpt_file *files = nv_calloc(2 * (size_t)tensor, sizeof *files);
    int n_files = 0;
    nv_param_table t;
    nv_param_ids ids;
    memset(&t, 0, sizeof t);
    nv_ckpt_state s;
    for (int r = 0; r < tensor && !rc; r++) {
        if (r) nv_params_free(&t, &ids);
        nv_params_build(&t, &ids, &cfg.model, r, tensor);
        memset(&s, 0, sizeof s);
        s.t = &t;
        s.master = nv_malloc(sizeof(float) * t.total);
        if (moments) {
            s.adam_m = nv_malloc(sizeof(float) * t.total);
            s.adam_v = nv_malloc(sizeof(float) * t.total);
        }
        s.shard_lo = 0;
        s.shard_hi = t.total;
        int k = 0;
        if (nv_ckpt_load_local(dir, &m, &s, &e) ||
            nv_ckpt_write_files(tmp, &s, 0, 1, files + n_files, &k, &e))
            rc = fail(e.msg);
        n_files += k;
        free(s.master);
        free(s.adam_m);
        free(s.adam_v);
    }
    if (!rc) {
        s.master = s.adam_m = s.adam_v = NULL;
        if (nv_ckpt_commit(out, tmp, &cfg, &s, tensor, 1, 0, files, n_files, 0, &e)) rc = fail(e.msg);
        else printf("%s: step %ld at tensor %d (from tensor %d, data %d, zero1 %s)\n", out, m.step,
                    tensor, m.tensor, m.data, m.zero1 ? "on" : "off");
    }
    if (t.p) nv_params_free(&t, &ids);
    free(files);
    nv_ckpt_manifest_free(&m);
    return rc;
}

static uint16_t bf16_rne(float x) {
    uint32_t u;
    memcpy(&u, &x, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40); // quiet NaN
    return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}


static int write_all(int fd, const void *p, size_t n, const char *path, nv_error *e) {
    const char *c = p;
    while (n) {
        ssize_t w = write(fd, c, n);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) return nv_seterr(e, "%s: write failed: %s\n---> HINT: is the disk full?", path, strerror(errno));
        c += w;
        n -= (size_t)w;
    }
    return 0;
}

static int cmd_export(const char *path, const char *out, int bf16) {
    char dir[NV_PATH_MAX];
    nv_ckpt_manifest m;
    if (open_manifest(path, dir, sizeof dir, &m)) return 1;
    nv_error e;
    nv_param_table t;
    nv_param_ids ids;
    nv_params_build(&t, &ids, &m.cfg.model, 0, 1);
    nv_ckpt_state s;
    memset(&s, 0, sizeof s);
    s.t = &t;
    s.master = nv_malloc(sizeof(float) * t.total);
    int rc = 0;
    if (nv_ckpt_load_local(dir, &m, &s, &e)) rc = fail(e.msg);
    // header: __metadata__ first, then tensors in table order, data back to back
    char *hdr = NULL;
    size_t hlen = 0;
    FILE *h = open_memstream(&hdr, &hlen);
    if (!h) rc = fail("open_memstream failed");
    if (!rc) {
        size_t es = bf16 ? 2 : 4, off = 0;
        fprintf(h, "{\"__metadata__\":{\"format\":\"nvwa\"");
        for (int i = 0; i < m.n_model_keys; i++) {
            fputc(',', h);
            nv_json_str(h, m.model_keys[i]);
            fputc(':', h);
            nv_json_str(h, m.model_vals[i]);
        }
        fputc('}', h);
        for (int k = 0; k < t.n; k++) {
            const nv_param *p = &t.p[k];
            fputc(',', h);
            nv_json_str(h, p->name);
            fprintf(h, ":{\"dtype\":\"%s\",\"shape\":[", bf16 ? "BF16" : "F32");
            if (p->ndim == 1) fprintf(h, "%lld", (long long)p->full[0]);
            else fprintf(h, "%lld,%lld", (long long)p->full[0], (long long)p->full[1]);
            fprintf(h, "],\"data_offsets\":[%zu,%zu]}", off, off + p->numel * es);
            off += p->numel * es;
        }
        fputc('}', h);
        while ((ftell(h) % 8) != 0) fputc(' ', h); // data starts 8-byte aligned
    }
    if (h) fclose(h);
    char tmp[NV_PATH_MAX + 32];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", out, (long)getpid());
    int fd = rc ? -1 : open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (!rc && fd < 0) {
        nv_seterr(&e, "%s: cannot create: %s", tmp, strerror(errno));
        rc = fail(e.msg);
    }
    if (!rc) {
        uint8_t len8[8];
        for (int i = 0; i < 8; i++) len8[i] = (uint8_t)((uint64_t)hlen >> (8 * i)); // little endian
        rc = write_all(fd, len8, 8, tmp, &e) || write_all(fd, hdr, hlen, tmp, &e);
        uint16_t *b = bf16 ? nv_malloc(2 * t.total) : NULL;
        for (int k = 0; k < t.n && !rc; k++) {
            const nv_param *p = &t.p[k];
            const float *x = s.master + p->offset;
            if (bf16) {
                for (size_t i = 0; i < p->numel; i++) {
                    uint16_t v = bf16_rne(x[i]);
                    uint8_t le[2] = {(uint8_t)v, (uint8_t)(v >> 8)};
                    memcpy(&b[i], le, 2);
                }
                rc = write_all(fd, b, 2 * p->numel, tmp, &e);
            } else {
                rc = write_all(fd, x, 4 * p->numel, tmp, &e); // host is little endian (x86, arm)
            }
        }
        free(b);
        if (!rc && (fsync(fd) != 0 || close(fd) != 0)) rc = nv_seterr(&e, "%s: fsync/close: %s", tmp, strerror(errno));
        else if (rc) close(fd);
        if (!rc && rename(tmp, out) != 0) rc = nv_seterr(&e, "%s: rename failed: %s", out, strerror(errno));
        if (rc) {
            unlink(tmp);
            rc = fail(e.msg);
        } else {
            printf("%s: %d tensors, %s, step %ld\n", out, t.n, bf16 ? "bf16" : "fp32", m.step);
        }
    }
    free(hdr);
    free(s.master);
    nv_params_free(&t, &ids);
    nv_ckpt_manifest_free(&m);
    return rc;
}

int main(int argc, char **argv) {
    static const struct option opts[] = {{"tensor", required_argument, 0, 't'},
                                         {"output", required_argument, 0, 'o'},
                                         {"dtype", required_argument, 0, 'd'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    int tensor = 0, bf16 = 0, c;
    const char *out = NULL;
    while ((c = getopt_long(argc, argv, "t:o:d:h", opts, NULL)) != -1) {
        switch (c) {
        case 't': {
            char *end;
            long v = strtol(optarg, &end, 10);
            if (*end || v < 1 || v > 4096) {
                fprintf(stderr, "nvwa-ckpt: error: --tensor %s: expected a positive integer\n", optarg);
                return 2;
            }
            tensor = (int)v;
            break;
        }
        case 'o': out = optarg; break;
        case 'd':
            if (!strcmp(optarg, "bf16")) bf16 = 1;
            else if (!strcmp(optarg, "fp32")) bf16 = 0;
            else {
                fprintf(stderr, "nvwa-ckpt: error: --dtype %s: expected fp32 or bf16\n", optarg);
                return 2;
            }
            break;
        case 'h': usage(stdout); return 0;
        default:
            fprintf(stderr, "nvwa-ckpt: error: bad option (see nvwa-ckpt --help)\n");
            return 2;
        }
    }
    if (argc - optind != 2) {
        fprintf(stderr, "nvwa-ckpt: error: expected COMMAND DIR (see nvwa-ckpt --help)\n");
        return 2;
    }
    const char *cmd = argv[optind], *dir = argv[optind + 1];
    if (!strcmp(cmd, "info")) return cmd_info(dir);
    if (!strcmp(cmd, "verify")) return cmd_verify(dir);
    if (!strcmp(cmd, "reshard")) {
        if (!tensor || !out) {
            fprintf(stderr, "nvwa-ckpt: error: reshard needs --tensor N and -o OUT\n");
            return 2;
        }
        return cmd_reshard(dir, tensor, out);
    }
    if (!strcmp(cmd, "export")) {
        if (!out) {
            fprintf(stderr, "nvwa-ckpt: error: export needs -o FILE\n");
            return 2;
        }
        return cmd_export(dir, out, bf16);
    }
    fprintf(stderr, "nvwa-ckpt: error: unknown command '%s' (expected info, verify, reshard or "
                    "export)\n", cmd);
    return 2;
}
