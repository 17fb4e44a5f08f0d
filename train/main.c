// nvwa-train - pretrain an RNA encoder (design sections 1 and 10).
//
//   nvwa-train CONFIG [section.key=value ...] [--dry-run] [--dump-batches N --output FILE]
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "data/dump.h"
#include "model/flops.h"
#include "train/planner.h"
#include "nv_build_config.h"
#include "train/config.h"
#include "train/dist.h"
#include "train/trainer.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: nvwa-train CONFIG [section.key=value ...] [options]\n"
            "\n"
            "Pretrain an RNA encoder with the multi-level masking objective.\n"
            "Under mpirun or srun each process is one rank.\n"
            "\n"
            "options:\n"
            "  --dry-run              print parameters, memory per rank and FLOPs per step; exit\n"
            "  --world N              world size assumed by --dry-run (default: from the\n"
            "                         launcher's environment, else [parallel] tensor)\n"
            "  --dump-batches N       write the first N global batches to --output and exit\n"
            "  --output FILE.h5       where --dump-batches writes\n"
            "  -q, --quiet            no per-step lines (the JSONL log is still written)\n"
            "  -h, --help             this text\n"
            "  -V, --version          version\n"
            "\n"
            "example: nvwa-train configs/tiny.ini train.steps=200 log.file=run.jsonl\n");
}

static int env_rank(void) {
    // the launcher's own variables before SLURM's (a batch script's mpirun inherits those)
    const char *keys[] = {"OMPI_COMM_WORLD_RANK", "PMIX_RANK", "PMI_RANK", "SLURM_PROCID"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        const char *v = getenv(keys[i]);
        if (v && *v) return atoi(v);
    }
    return 0;
}

// A bad config fails the same way on every rank, before MPI is up; only rank 0 says so. The
// other ranks leave a moment later, so that a launcher which ends the job at the first
// non-zero exit cannot kill rank 0 before its line is out.
static int config_error(int root, const char *msg) {
    if (root) {
        fprintf(stderr, "nvwa-train: error: %s\n", msg);
        fflush(stderr);
    } else {
        struct timespec ts = {2, 0};
        nanosleep(&ts, NULL);
    }
    return 2;
}

static int env_world(void) {
    const char *keys[] = {"OMPI_COMM_WORLD_SIZE", "PMIX_SIZE", "PMI_SIZE", "SLURM_NTASKS"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        const char *v = getenv(keys[i]);
        if (v && atoi(v) > 0) return atoi(v);
    }
    return 0;
}

int main(int argc, char **argv) {
    enum { OPT_DRY = 256, OPT_WORLD, OPT_DUMP, OPT_OUTPUT };
    static const struct option opts[] = {
        {"dry-run", no_argument, 0, OPT_DRY},       {"world", required_argument, 0, OPT_WORLD},
        {"dump-batches", required_argument, 0, OPT_DUMP},
        {"output", required_argument, 0, OPT_OUTPUT}, {"quiet", no_argument, 0, 'q'},
        {"help", no_argument, 0, 'h'},              {"version", no_argument, 0, 'V'},
        {0, 0, 0, 0}};
    int dry = 0, world = 0, quiet = 0;
    long dump = 0;
    const char *output = NULL;
    int c;
    while ((c = getopt_long(argc, argv, "qhV", opts, NULL)) != -1) {
        switch (c) {
        case OPT_DRY: dry = 1; break;
        case OPT_WORLD: world = atoi(optarg); break;
        case OPT_DUMP: dump = atol(optarg); break;
        case OPT_OUTPUT: output = optarg; break;
        case 'q': quiet = 1; break;
        case 'h': usage(stdout); return 0;
        case 'V': printf("nvwa-train %s\n", NV_VERSION); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind >= argc) {
        fprintf(stderr, "nvwa-train: error: no CONFIG given\n");
        usage(stderr);
        return 2;
    }
    nv_install_stop_handlers();
    const char *path = argv[optind];
    // Only rank 0 speaks; every rank fails the same way on a bad config.
    const int root = env_rank() == 0;
    nv_config cfg;
    nv_error err;
    if (nv_config_load(&cfg, path, argc - optind - 1, argv + optind + 1, &err) != 0)
        return config_error(root, err.msg);
    if (world <= 0) world = env_world();
    if (world <= 0) world = cfg.parallel.tensor;
    if (nv_config_validate(&cfg, world, &err) != 0) return config_error(root, err.msg);
    if (dump < 0 || (dump > 0 && !output)) {
        fprintf(stderr, "nvwa-train: error: --dump-batches N needs N > 0 and --output FILE.h5\n");
        return 2;
    }
    if (dry) {
        nv_dry_run_report(&cfg, world, stdout);
        return 0;
    }
    if (dump > 0) {
        nv_corpus mem;
        nv_dataset *corpus = NULL;
        int bad = nv_open_train_data(&cfg, &mem, &corpus, &err) != 0 ||
                  nv_dump_batches(&cfg.data, cfg.model.structure_input, corpus, dump, output, &err) != 0;
        nv_dataset_free(corpus);
        nv_corpus_free(&mem);
        if (bad) {
            fprintf(stderr, "nvwa-train: error: %s\n", err.msg);
            return 1;
        }
        printf("wrote %ld global batches to %s\n", dump, output);
        return 0;
    }
    nv_dist dist;
    if (nv_dist_init(&dist, &argc, &argv, cfg.parallel.tensor, &err) != 0) {
        if (root) fprintf(stderr, "nvwa-train: error: %s\n", err.msg);
        nv_dist_finalize(&dist);
        return 2;
    }
    if (dist.rank == 0 && !quiet) {
        printf("# nvwa-train %s: resolved config of %s\n", NV_VERSION, path);
        nv_config_write(&cfg, stdout);
        printf("\n");
    }
    int rc = nv_train(&cfg, &dist);
    nv_dist_finalize(&dist);
    return rc;
}
