// bench_stream - the streamed corpus (data/dataset.c) measured; bench/bench_stream.sh runs it
// and writes bench/results/stream-<date>.md.
//
//   bench_stream chunks --dir D --kb 1,4,16,... [--synthetic N | --fasta F | --dbn F] [--reads R]
//       one shard per chunk size from the same sequences: bytes on disk per nucleotide, and the
//       cost of reading random sequences the way the loader does (a cropped window of at most
//       seq-length - 2 = 1022 nt at a random offset, tokens and structure), with the file in
//       the page cache (warm) and dropped from it first (cold: posix_fadvise DONTNEED).
//   bench_stream loader --data DIR [--seconds S] [--cold] [--start-at T] [--seq-length 1024 --micro 8 --global 256]
//       the loader on a streamed corpus in the calling thread (no prefetch): tokens/s per
//       CPU-second of that thread, and wall tokens/s; one line of key=value. --start-at T:
//       after opening and the first epoch's deal, wait until time T (seconds since the epoch)
//       so that loaders started together measure the same window.
#include <fcntl.h>
#include <getopt.h>
#include <glob.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "data/batch.h"
#include "data/dataset.h"
#include "data/rng.h"
#include "data/seqio.h"
#include "data/synth.h"
#include "data/shard.h"
#include "train/config.h"

static double thread_cpu(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

// Drop the shard files of dir (or a single file) from the page cache.
static void drop_cache(const char *dir_or_file) {
    char pat[4200];
    struct stat st;
    if (stat(dir_or_file, &st) == 0 && S_ISDIR(st.st_mode)) snprintf(pat, sizeof pat, "%s/*.h5", dir_or_file);
    else snprintf(pat, sizeof pat, "%s", dir_or_file);
    glob_t g;
    if (glob(pat, 0, NULL, &g) != 0) return;
    for (size_t i = 0; i < g.gl_pathc; i++) {
        int fd = open(g.gl_pathv[i], O_RDONLY);
        if (fd < 0) continue;
        fdatasync(fd);
        posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
        close(fd);
    }
    globfree(&g);
}

static int read_inputs(nv_corpus *c, const char *path) {
    nv_error err;
    nv_seqreader *r = nv_seqreader_open(path, NV_FMT_AUTO, 0, &err);
    if (!r) {
        fprintf(stderr, "bench_stream: %s\n", err.msg);
        return -1;
    }
    nv_seqrec rec;
    int k;
    while ((k = nv_seqreader_next(r, &rec, &err)) > 0) nv_corpus_append(c, rec.id, rec.tok, rec.ss, rec.len);
    nv_seqreader_close(r);
    if (k < 0) fprintf(stderr, "bench_stream: %s\n", err.msg);
    return k < 0 ? -1 : 0;
}

// Random loader-like reads: R sequences, a window of min(len, maxw) at a random offset.
static void random_reads(nv_dataset *ds, long R, int maxw, double *us_per_seq, double *mnt_s) {
    nv_rng_stream s = nv_rng_stream_init(12345, 0, 0, 0);
    uint8_t *tok = malloc((size_t)maxw), *ss = malloc((size_t)maxw);
    uint64_t n = nv_dataset_n_seqs(ds), nt = 0;
    nv_error err;
    double t0 = nv_now();
    for (long r = 0; r < R; r++) {
        uint64_t i = nv_rng_below(&s, (uint32_t)n), len = nv_dataset_len(ds, i);
        uint64_t w = len < (uint64_t)maxw ? len : (uint64_t)maxw;
        uint64_t off = len > w ? nv_rng_below(&s, (uint32_t)(len - w + 1)) : 0;
        if (nv_dataset_read(ds, i, off, w, tok, ss, &err) != 0) {
            fprintf(stderr, "bench_stream: %s\n", err.msg);
            exit(1);
        }
        nt += w;
    }
    double dt = nv_now() - t0;
    *us_per_seq = 1e6 * dt / (double)R;
    *mnt_s = (double)nt / dt / 1e6;
    free(tok);
    free(ss);
}

static int cmd_chunks(int argc, char **argv) {
    const char *dir = NULL, *fasta = NULL, *kbs = "1,2,4,8,16,32,64,256,1024";
    long nsyn = 0, reads = 20000;
    static const struct option opts[] = {{"dir", 1, 0, 'd'}, {"kb", 1, 0, 'k'}, {"synthetic", 1, 0, 's'},
                                         {"input", 1, 0, 'i'}, {"reads", 1, 0, 'r'}, {0, 0, 0, 0}};
    int o;
    while ((o = getopt_long(argc, argv, "d:k:s:i:r:", opts, NULL)) != -1) {
        if (o == 'd') dir = optarg;
        else if (o == 'k') kbs = optarg;
        else if (o == 's') nsyn = atol(optarg);
        else if (o == 'i') fasta = optarg;
        else if (o == 'r') reads = atol(optarg);
        else return 2;
    }
    if (!dir || (!nsyn == !fasta)) {
        fprintf(stderr, "usage: bench_stream chunks --dir D (--synthetic N | --input FILE) [--kb LIST] [--reads R]\n");
        return 2;
    }
    nv_corpus c;
    nv_corpus_init(&c);
    if (nsyn > 0) {
        nv_synth_params p;
        nv_synth_defaults(&p, (uint64_t)nsyn, 7);
        nv_synth_corpus(&c, &p);
    } else if (read_inputs(&c, fasta) != 0) {
        return 1;
    }
    printf("corpus: %llu sequences, %llu nt (mean %.0f), %llu with structure\n", (unsigned long long)c.n_seqs,
           (unsigned long long)c.n_tokens, (double)c.n_tokens / (double)c.n_seqs, (unsigned long long)c.n_with_structure);
    char *list = strdup(kbs), *save = NULL;
    for (char *t = strtok_r(list, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        int kb = atoi(t);
        char path[4200];
        snprintf(path, sizeof path, "%s/chunk%d.h5", dir, kb);
        nv_shard_opts so = {kb};
        nv_error err;
        double t0 = nv_now();
        if (nv_shard_write_ex(path, &c, &so, &err) != 0) {
            fprintf(stderr, "bench_stream: %s\n", err.msg);
            return 1;
        }
        double tw = nv_now() - t0;
        struct stat st;
        stat(path, &st);
        nv_dataset *ds;
        const char *spec = path;
        if (nv_dataset_open(&spec, 1, &ds, &err) != 0) {
            fprintf(stderr, "bench_stream: %s\n", err.msg);
            return 1;
        }
        double warm_us, warm_mnt, cold_us, cold_mnt;
        random_reads(ds, reads / 10, 1022, &warm_us, &warm_mnt); // warm-up: page cache, index nodes
        random_reads(ds, reads, 1022, &warm_us, &warm_mnt);
        nv_dataset_free(ds);
        drop_cache(path);
        if (nv_dataset_open(&spec, 1, &ds, &err) != 0) return 1;
        random_reads(ds, reads / 4, 1022, &cold_us, &cold_mnt);
        nv_dataset_free(ds);
        printf("kb=%d bytes_per_nt=%.4f ratio=%.3f write_mb_s=%.1f warm_us=%.2f warm_mnt_s=%.2f cold_us=%.2f "
               "cold_mnt_s=%.2f\n", kb, (double)st.st_size / (double)c.n_tokens,
               2.0 * (double)c.n_tokens / (double)st.st_size, 2.0 * (double)c.n_tokens / tw / 1e6, warm_us, warm_mnt,
               cold_us, cold_mnt);
        fflush(stdout);
        unlink(path);
    }
    free(list);
    nv_corpus_free(&c);
    return 0;
}

static int cmd_loader(int argc, char **argv) {
    const char *data = NULL;
    double secs = 5;
    int S = 1024, mb = 8, gb = 256, cold = 0;
    double start_at = 0;
    static const struct option opts[] = {{"data", 1, 0, 'd'}, {"seconds", 1, 0, 's'}, {"seq-length", 1, 0, 'L'},
                                         {"micro", 1, 0, 'm'}, {"global", 1, 0, 'g'}, {"cold", 0, 0, 'c'},
                                         {"start-at", 1, 0, 'T'}, {0, 0, 0, 0}};
    int o;
    while ((o = getopt_long(argc, argv, "d:s:L:m:g:cT:", opts, NULL)) != -1) {
        if (o == 'd') data = optarg;
        else if (o == 's') secs = atof(optarg);
        else if (o == 'L') S = atoi(optarg);
        else if (o == 'm') mb = atoi(optarg);
        else if (o == 'g') gb = atoi(optarg);
        else if (o == 'c') cold = 1;
        else if (o == 'T') start_at = atof(optarg);
        else return 2;
    }
    if (!data) {
        fprintf(stderr, "usage: bench_stream loader --data DIR [--seconds S] [--cold]\n");
        return 2;
    }
    if (cold) drop_cache(data);
    nv_error err;
    nv_dataset *ds;
    double t_open = nv_now();
    if (nv_dataset_open(&data, 1, &ds, &err) != 0) {
        fprintf(stderr, "bench_stream: %s\n", err.msg);
        return 1;
    }
    t_open = nv_now() - t_open;
    nv_config cfg;
    nv_config_defaults(&cfg);
    cfg.data.seq_length = S;
    cfg.data.micro_batch = mb;
    cfg.data.global_batch = gb;
    cfg.data.seed = (uint64_t)getpid(); // concurrent runs read different sequences
    double t_perm = nv_now();
    nv_loader *l = nv_loader_create_ds(ds, &cfg.data, cfg.model.structure_input, 0, 1, 0, &err);
    if (!l) {
        fprintf(stderr, "bench_stream: %s\n", err.msg);
        return 1;
    }
    nv_loader_next(l); // the first epoch's permutation and deal
    t_perm = nv_now() - t_perm;
    int late = 0;
    if (start_at > 0) {
        struct timespec now;
        clock_gettime(CLOCK_REALTIME, &now);
        double wait = start_at - ((double)now.tv_sec + 1e-9 * (double)now.tv_nsec);
        late = wait < 0;
        if (wait > 0) usleep((useconds_t)(wait * 1e6));
    }
    nv_dataset_stats s0, s1;
    nv_dataset_get_stats(ds, &s0);
    long real = 0, slots = 0;
    double c0 = thread_cpu(), t0 = nv_now(), t = t0;
    while (t - t0 < secs) {
        const nv_batch *b = nv_loader_next(l);
        if (!b) {
            fprintf(stderr, "bench_stream: %s\n", nv_loader_error(l));
            return 1;
        }
        real += b->n_real;
        slots += (long)b->rows * b->seq_len;
        t = nv_now();
    }
    double dc = thread_cpu() - c0, dt = t - t0;
    nv_dataset_get_stats(ds, &s1);
    printf("seqs=%llu shards=%d index_mib=%.2f open_s=%.3f perm_s=%.3f real_tok_cpu_s=%.0f real_tok_wall_s=%.0f "
           "tok_cpu_s=%.0f reads_s=%.0f opens=%llu cpu_frac=%.3f late=%d\n",
           (unsigned long long)nv_dataset_n_seqs(ds), nv_dataset_n_shards(ds),
           (double)nv_dataset_index_bytes(ds) / 1048576.0, t_open, t_perm, real / dc, real / dt, slots / dc,
           (double)(s1.reads - s0.reads) / dt, (unsigned long long)(s1.opens - s0.opens), dc / dt, late);
    nv_loader_free(l);
    nv_dataset_free(ds);
    return 0;
}

int main(int argc, char **argv) {
    if (argc >= 2 && !strcmp(argv[1], "chunks")) return cmd_chunks(argc - 1, argv + 1);
    if (argc >= 2 && !strcmp(argv[1], "loader")) return cmd_loader(argc - 1, argv + 1);
    fprintf(stderr, "usage: bench_stream chunks|loader ... (see the top of bench/bench_stream.c)\n");
    return 2;
}
