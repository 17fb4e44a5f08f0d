// run_setup.c - what a run needs around the training loop (train/trainer.h): the backend of
// [train] device, a tool's --device, the training data (shards or the synthetic corpus) and
// its report, and the stop signals.
#include "train/trainer.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "data/shard.h"
#include "data/synth.h"

#define NV_SYNTH_DEFAULT_SEQS 20000

const nv_backend *nv_select_backend(const nv_config *cfg, nv_error *err) {
    const char *why = "";
    const int bf16 = cfg->train.precision == NV_PREC_BF16;
    switch (cfg->train.device) {
    case NV_DEVICE_CPU: // bf16 on the CPU: the CUDA backend's twin (same types and roundings)
        return bf16 ? nv_backend_cpu_bf16() : nv_backend_cpu();
    case NV_DEVICE_CUDA: {
        if (!bf16) {
            nv_seterr(err, "[train] precision = fp32 with device = cuda: the CUDA backend computes "
                           "in bf16 (fp32 masters)\n---> HINT: precision = bf16, or device = cpu for fp32");
            return NULL;
        }
        const nv_backend *be = nv_backend_cuda(&why);
        if (!be) nv_seterr(err, "[train] device = cuda: %s\n---> HINT: set [train] device = cpu or auto", why);
        return be;
    }
    default: { // auto: a GPU for bf16 runs when there is one, else the fp32 CPU reference
        const nv_backend *be = bf16 ? nv_backend_cuda(&why) : NULL;
        return be ? be : nv_backend_cpu();
    }
    }
}

int nv_tool_device(nv_config *cfg, const char *device) {
    if (!strcmp(device, "cpu")) {
        cfg->train.device = NV_DEVICE_CPU;
        cfg->train.precision = NV_PREC_FP32;
    } else if (!strcmp(device, "cpu-bf16")) {
        cfg->train.device = NV_DEVICE_CPU;
        cfg->train.precision = NV_PREC_BF16;
    } else if (!strcmp(device, "cuda") || !strcmp(device, "auto")) {
        cfg->train.device = device[0] == 'c' ? NV_DEVICE_CUDA : NV_DEVICE_AUTO;
        cfg->train.precision = NV_PREC_BF16; // the CUDA backend's only precision
    } else {
        return -1;
    }
    return 0;
}

int nv_open_train_data(const nv_config *cfg, nv_corpus *mem, nv_dataset **out, nv_error *err) {
    nv_corpus_init(mem);
    *out = NULL;
    if (cfg->data.train[0]) {
        const char *spec = cfg->data.train;
        return nv_dataset_open(&spec, 1, out, err);
    }
    nv_synth_params sp;
    nv_synth_defaults(&sp, NV_SYNTH_DEFAULT_SEQS, cfg->data.seed);
    nv_synth_corpus(mem, &sp);
    *out = nv_dataset_wrap(mem);
    return 0;
}

// The data line, and a hint for shards whose chunks make random reads slow.
void nv_report_train_data(const nv_config *cfg, nv_dataset *ds) {
    printf("data: %s: %llu sequences, %llu tokens (%llu with structure)", cfg->data.train[0] ? cfg->data.train
           : "synthetic (in-process)", (unsigned long long)nv_dataset_n_seqs(ds),
           (unsigned long long)nv_dataset_n_tokens(ds), (unsigned long long)nv_dataset_n_with_structure(ds));
    if (nv_dataset_streamed(ds))
        printf("; streamed from %d shard(s), index %.1f MiB per rank", nv_dataset_n_shards(ds),
               (double)nv_dataset_index_bytes(ds) / 1048576.0);
    printf("\n");
    const uint64_t chunk = nv_dataset_max_chunk(ds);
    if (chunk > ((uint64_t)NV_SHARD_CHUNK_KB << 12)) // 4x the default: old shards
        fprintf(stderr, "nvwa: warning: [data] train has shards with %llu KiB chunks: every random read inflates "
                        "a whole chunk\n---> HINT: rewrite them with this nvwa-prep (--chunk-kb %d) for faster "
                        "streaming\n", (unsigned long long)(chunk >> 10), NV_SHARD_CHUNK_KB);
}

// SIGTERM / SIGUSR1 (SLURM's warning before the time limit) only set this flag; the ranks
// agree on it at the next step boundary, save and exit 0. A signal handler can reach
// nothing else, hence the one file-scope variable.
static volatile sig_atomic_t stop_signal = 0;
static void on_stop_signal(int sig) { stop_signal = sig; }

void nv_install_stop_handlers(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL);
    // a file-size limit (RLIMIT_FSIZE) is a write error (EFBIG) that the checkpoint and log
    // writers report, not a silent kill by SIGXFSZ
    signal(SIGXFSZ, SIG_IGN);
}

int nv_stop_signal(void) { return (int)stop_signal; }
