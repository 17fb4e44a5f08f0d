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

#include "tools/hf.h"
#include "tools/safetensors.h"
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
            "  export DIR --hf OUT [--dtype fp32|bf16] [--eval EVAL.json]\n"
            "                                   a Hugging Face ModernBERT directory (config, weights,\n"
            "                                   tokenizer, structure head, model card) that\n"
            "                                   transformers loads as is (docs/huggingface.md)\n"
            "  import --hf HFDIR -o OUT [--config INI]\n"
            "                                   a ModernBERT directory into a new checkpoint root OUT\n"
            "                                   at step 0 with fresh optimizer state, plus\n"
            "                                   OUT/config.ini to continue pretraining\n"
            "\n"
            "options:\n"
            "  -t, --tensor N    tensor-parallel degree of the resharded checkpoint\n"
            "  -o, --output P    output root (reshard, import) or file (export)\n"
            "      --hf DIR      Hugging Face directory: written by export, read by import\n"
            "  -d, --dtype T     export dtype: fp32 (default) or bf16 (round to nearest even)\n"
            "  -e, --eval FILE   export --hf: an nvwa-eval -o file for the model card (default:\n"
            "                    the newest eval record of the run's [log] file, if readable)\n"
            "  -c, --config INI  import: the training config to store ([model] must agree)\n"
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

static int cmd_export(const char *path, const char *out, int bf16) {
    char dir[NV_PATH_MAX];
    nv_ckpt_manifest m;
    if (open_manifest(path, dir, sizeof dir, &m)) return 1;
    nv_error e;
    nv_param_table t;
    nv_param_ids ids;
    nv_ckpt_state s;
    int rc = 0;
    if (nv_ckpt_load_masters(dir, &m, &t, &ids, &s, &e)) rc = fail(e.msg);
    // __metadata__: format, every saved [model] key, seq-length; first-attn-norm always
    // (a config saved before the key existed means true: readers must not guess)
    const char **mk = nv_calloc((size_t)m.n_model_keys + 4, sizeof *mk), **mv = nv_calloc((size_t)m.n_model_keys + 4, sizeof *mv);
    int nm = 0, has_fan = 0;
    mk[nm] = "format";
    mv[nm++] = "nvwa";
    for (int i = 0; i < m.n_model_keys; i++) {
        has_fan |= !strcmp(m.model_keys[i], "first-attn-norm");
        mk[nm] = m.model_keys[i];
        mv[nm++] = m.model_vals[i];
    }
    if (!has_fan) {
        mk[nm] = "first-attn-norm";
        mv[nm++] = m.cfg.model.first_attn_norm ? "true" : "false";
    }
    nv_st_tensor *ts = nv_calloc((size_t)t.n, sizeof *ts);
    for (int k = 0; k < t.n; k++)
        ts[k] = (nv_st_tensor){t.p[k].name, t.p[k].ndim, {t.p[k].full[0], t.p[k].full[1]}, s.master + t.p[k].offset};
    char tmp[NV_PATH_MAX + 32];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", out, (long)getpid());
    if (!rc) {
        if (nv_st_write(tmp, ts, t.n, mk, mv, nm, bf16, &e) != 0 ||
            (rename(tmp, out) != 0 && nv_seterr(&e, "%s: rename failed: %s", out, strerror(errno)))) {
            unlink(tmp);
            rc = fail(e.msg);
        } else {
            printf("%s: %d tensors, %s, step %ld\n", out, t.n, bf16 ? "bf16" : "fp32", m.step);
        }
    }
    free(ts);
    free(mk);
    free(mv);
    nv_ckpt_masters_free(&t, &ids, &s);
    nv_ckpt_manifest_free(&m);
    return rc;
}

static int cmd_hf(const char *cmd, const char *ckpt, const char *hf, const char *out, int bf16,
                  const char *eval, const char *config) {
    nv_error e;
    if (!strcmp(cmd, "export")) {
        if (nv_hf_export(ckpt, hf, bf16, eval, &e)) return fail(e.msg);
        printf("%s: Hugging Face ModernBERT directory (%s) from %s\n", hf, bf16 ? "bf16" : "fp32", ckpt);
        return 0;
    }
    if (nv_hf_import(hf, out, config, &e)) return fail(e.msg);
    return 0;
}

int main(int argc, char **argv) {
    static const struct option opts[] = {{"tensor", required_argument, 0, 't'},
                                         {"output", required_argument, 0, 'o'},
                                         {"dtype", required_argument, 0, 'd'},
                                         {"hf", required_argument, 0, 'H'},
                                         {"eval", required_argument, 0, 'e'},
                                         {"config", required_argument, 0, 'c'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    int tensor = 0, bf16 = 0, dtype_set = 0, c;
    const char *out = NULL, *hf = NULL, *eval = NULL, *config = NULL;
    while ((c = getopt_long(argc, argv, "t:o:d:e:c:h", opts, NULL)) != -1) {
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
        case 'H': hf = optarg; break;
        case 'e': eval = optarg; break;
        case 'c': config = optarg; break;
        case 'd':
            dtype_set = 1;
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
    const char *cmd = optind < argc ? argv[optind] : "";
    // import --hf HFDIR -o OUT takes no DIR (HFDIR may also stand in its place)
    if (!strcmp(cmd, "import")) {
        if (argc - optind == 2 && !hf) hf = argv[optind + 1];
        else if (argc - optind != 1) {
            fprintf(stderr, "nvwa-ckpt: error: expected import --hf HFDIR -o OUT (see nvwa-ckpt --help)\n");
            return 2;
        }
        if (!hf || !out || dtype_set || eval || tensor) {
            fprintf(stderr, "nvwa-ckpt: error: import needs --hf HFDIR and -o OUT (and takes only --config)\n");
            return 2;
        }
        return cmd_hf(cmd, NULL, hf, out, 0, NULL, config);
    }
    if (argc - optind != 2) {
        fprintf(stderr, "nvwa-ckpt: error: expected COMMAND DIR (see nvwa-ckpt --help)\n");
        return 2;
    }
    const char *dir = argv[optind + 1];
    if ((hf || eval) && strcmp(cmd, "export")) {
        fprintf(stderr, "nvwa-ckpt: error: --hf and --eval go with export or import\n");
        return 2;
    }
    if (config) {
        fprintf(stderr, "nvwa-ckpt: error: --config goes with import\n");
        return 2;
    }
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
        if (!out == !hf) {
            fprintf(stderr, "nvwa-ckpt: error: export needs -o FILE or --hf DIR (one of them)\n");
            return 2;
        }
        if (eval && !hf) {
            fprintf(stderr, "nvwa-ckpt: error: --eval goes with export --hf\n");
            return 2;
        }
        return hf ? cmd_hf(cmd, dir, hf, NULL, bf16, eval, NULL) : cmd_export(dir, out, bf16);
    }
    fprintf(stderr, "nvwa-ckpt: error: unknown command '%s' (expected info, verify, reshard, export or "
                    "import)\n", cmd);
    return 2;
}
