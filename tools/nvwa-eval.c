// nvwa-eval - held-out masked-LM loss, accuracy and perplexity and structure-label accuracy
// of a checkpoint on shards (design section 1), beside the unigram and majority baselines.
//
//   nvwa-eval --checkpoint DIR [--config-override k=v ...] [--max-seqs N] [-o out.json] SHARDS...
//
// One process (a world of 1, tensor 1): the checkpoint loads at any saved layout.
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "model/model.h"
#include "nv_build_config.h"
#include "train/dist.h"
#include "train/evaluate.h"
#include "train/trainer.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: nvwa-eval --checkpoint DIR [options] SHARDS...\n"
            "\n"
            "Evaluate a checkpoint on held-out shards: masked-LM loss, accuracy and perplexity,\n"
            "structure-label accuracy (per class and macro), beside the unigram (MLM) and\n"
            "majority-class (structure) baselines. Every sequence is scored once, in order, with\n"
            "a fixed masking seed ([data] seed mixed with \"eval\"), so checkpoints compare.\n"
            "SHARDS are shard files, directories of *.h5 or globs, concatenated in order.\n"
            "\n"
            "options:\n"
            "  -c, --checkpoint DIR        checkpoint root (its `latest`) or a step_XXXXXXXX dir\n"
            "  -O, --config-override K=V   change the saved config, e.g. data.seq-length=512,\n"
            "                              data.micro-batch=16, data.seed=7 (repeatable)\n"
            "  -n, --max-seqs N            only the first N sequences\n"
            "  -d, --device D              cpu (fp32), cpu-bf16 (the CUDA backend's twin), cuda or\n"
            "                              auto (default: cuda when present, else cpu)\n"
            "  -o, --output FILE           write the results as one JSON object\n"
            "  -q, --quiet                 no table on stdout\n"
            "  -h, --help                  this text\n"
            "  -V, --version               version\n"
            "\n"
            "exit status: 0 ok, 1 failure (bad checkpoint or shard, I/O), 2 usage error\n");
}


int main(int argc, char **argv) {
    static const struct option opts[] = {
        {"checkpoint", required_argument, 0, 'c'}, {"config-override", required_argument, 0, 'O'},
        {"max-seqs", required_argument, 0, 'n'},   {"device", required_argument, 0, 'd'},
        {"output", required_argument, 0, 'o'},     {"quiet", no_argument, 0, 'q'},
        {"help", no_argument, 0, 'h'},             {"version", no_argument, 0, 'V'},
        {0, 0, 0, 0}};
    const char *ckpt = NULL, *output = NULL, *device = "auto";
    char **ovr = nv_calloc((size_t)argc + 1, sizeof(char *));
    int n_ovr = 0, quiet = 0, c;
    long long max_seqs = 0;
    while ((c = getopt_long(argc, argv, "c:O:n:d:o:qhV", opts, NULL)) != -1) {
        switch (c) {
        case 'c': ckpt = optarg; break;
        case 'O': ovr[n_ovr++] = optarg; break;
        case 'n': {
            char *end;
            max_seqs = strtoll(optarg, &end, 10);
            if (*end || max_seqs <= 0) {
                fprintf(stderr, "nvwa-eval: error: --max-seqs %s: not a positive integer\n", optarg);
                return 2;
            }
            break;
        }
        case 'd': device = optarg; break;
        case 'o': output = optarg; break;
        case 'q': quiet = 1; break;
        case 'h': usage(stdout); return 0;
        case 'V': printf("nvwa-eval %s\n", NV_VERSION); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (!ckpt) {
        fprintf(stderr, "nvwa-eval: error: --checkpoint DIR is required\n");
        return 2;
    }
    if (optind >= argc) {
        fprintf(stderr, "nvwa-eval: error: no SHARDS given\n");
        return 2;
    }
    nv_error err;
    nv_config cfg;
    long step = 0;
    if (nv_ckpt_read_config(ckpt, &cfg, &step, &err) != 0) {
        fprintf(stderr, "nvwa-eval: error: %s\n", err.msg);
        return 1;
    }
    for (int i = 0; i < n_ovr; i++)
        if (nv_config_override(&cfg, ovr[i], &err) != 0) {
            fprintf(stderr, "nvwa-eval: error: %s\n", err.msg);
            return 2;
        }
    if (nv_tool_device(&cfg, device) != 0) {
        fprintf(stderr, "nvwa-eval: error: --device %s: expected cpu, cpu-bf16, cuda or auto\n", device);
        return 2;
    }
    cfg.parallel.tensor = 1; // one process: any saved layout loads at tensor 1
    cfg.parallel.zero1 = 0;
    if (nv_config_validate(&cfg, 1, &err) != 0) {
        fprintf(stderr, "nvwa-eval: error: %s\n", err.msg);
        return 2;
    }

    // the shards, concatenated in argument order, streamed (index in memory, bytes on demand)
    nv_dataset *corpus = NULL;
    if (nv_dataset_open((const char *const *)argv + optind, argc - optind, &corpus, &err) != 0) {
        fprintf(stderr, "nvwa-eval: error: %s\n", err.msg);
        free(ovr);
        return 1;
    }

    nv_dist d;
    if (nv_dist_init(&d, &argc, &argv, 1, &err) != 0) {
        fprintf(stderr, "nvwa-eval: error: %s\n", err.msg);
        nv_dataset_free(corpus);
        return 1;
    }
    if (d.world != 1) {
        if (d.rank == 0) fprintf(stderr, "nvwa-eval: error: runs as one process, not under a launcher of %d ranks\n", d.world);
        nv_dist_finalize(&d);
        nv_dataset_free(corpus);
        return 2;
    }
    const nv_backend *be = nv_select_backend(&cfg, &err);
    if (!be) {
        fprintf(stderr, "nvwa-eval: error: %s\n", err.msg);
        nv_dist_finalize(&d);
        return 1;
    }
    nv_model *m = nv_model_create(&cfg.model, be, 0, 1, NULL, cfg.data.micro_batch * cfg.data.seq_length);
    char loaded[NV_PATH_MAX];
    int rc = 0;
    if (nv_model_load_ckpt(m, ckpt, &d, loaded, &err) != 0) {
        fprintf(stderr, "nvwa-eval: error: %s\n", err.msg);
        rc = 1;
    }
    nv_eval_result r;
    if (!rc && nv_evaluate(m, corpus, NULL, &cfg, (uint64_t)max_seqs, &r, &err) != 0) {
        fprintf(stderr, "nvwa-eval: error: %s\n", err.msg);
        rc = 1;
    }
    if (!rc) {
        if (!quiet) {
            printf("checkpoint %s (backend %s)\n", loaded, be->name);
            nv_eval_print_table(&r, stdout);
        }
        if (output) {
            char tmp[NV_PATH_MAX + 32], fields[4096];
            snprintf(tmp, sizeof tmp, "%s.tmp.%d", output, (int)getpid());
            FILE *f = fopen(tmp, "w");
            if (!f) {
                fprintf(stderr, "nvwa-eval: error: %s: cannot create\n", output);
                rc = 1;
            } else {
                nv_eval_json_fields(&r, fields, sizeof fields);
                fprintf(f, "{\"checkpoint\": ");
                nv_json_str(f, loaded);
                fprintf(f, ", \"step\": %ld, \"backend\": \"%s\", %s}\n", step, be->name, fields);
                if (fclose(f) != 0 || rename(tmp, output) != 0) {
                    fprintf(stderr, "nvwa-eval: error: %s: cannot write\n", output);
                    unlink(tmp);
                    rc = 1;
                }
            }
        }
    }
    nv_model_free(m);
    nv_dataset_free(corpus);
    free(ovr);
    nv_dist_finalize(&d);
    return rc;
}
