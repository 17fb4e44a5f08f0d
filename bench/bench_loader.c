// bench_loader.c - loader + masker throughput (tokens/s on one core) and packing efficiency
// (real-token fraction) at seq-length 1024 on an RNAcentral-like length mix (mean ~445 nt,
// 21% under 100, 19% over 1024), and on the RNAcentral sample FASTA when it is present.
// Prints one table and writes it, with date, machine, commit and config, to
// bench/results/loader-<date>.md.
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "data/batch.h"
#include "data/rng.h"
#include "data/vocab.h"
#include "train/config.h"

typedef struct rowres {
    char name[96];
    double tok_s, real_tok_s, wall_tok_s, real_frac, tail_frac, greedy_frac;
    long steps;
} rowres;

// xorshift for the synthetic corpus only (the loader's randomness is Philox).
static uint64_t bs = 0x9E3779B97F4A7C15ull;
static double bu(void) {
    bs ^= bs >> 12; bs ^= bs << 25; bs ^= bs >> 27;
    return (double)((bs * 0x2545F4914F6CDD1Dull) >> 11) * (1.0 / 9007199254740992.0);
}

// RNAcentral-like lengths: 21% uniform [20,100), 60% log-uniform [100,575), 19% log-uniform
// [1025,1900]: mean ~445.
static int draw_len(void) {
    double u = bu();
    if (u < 0.21) return 20 + (int)(bu() * 80);
    if (u < 0.81) return (int)(100 * exp(bu() * log(5.75)));
    return (int)(1025 * exp(bu() * log(1900.0 / 1025)));
}

static void corpus_alloc(nv_corpus *c, uint64_t n, uint64_t ntok) {
    memset(c, 0, sizeof *c);
    c->tokens = malloc(ntok ? ntok : 1);
    c->structure = malloc(ntok ? ntok : 1);
    c->offsets = malloc(sizeof(uint64_t) * (n + 1));
    c->offsets[0] = 0;
}

static void synth_corpus(nv_corpus *c, uint64_t n) {
    int *lens = malloc(sizeof(int) * n);
    uint64_t tot = 0;
    for (uint64_t i = 0; i < n; i++) { lens[i] = draw_len(); tot += (uint64_t)lens[i]; }
    corpus_alloc(c, n, tot);
    int *stk = malloc(sizeof(int) * 4096);
    for (uint64_t i = 0; i < n; i++) {
        uint64_t o = c->offsets[i];
        int has = bu() < 0.7, ns = 0;
        for (int k = 0; k < lens[i]; k++) {
            c->tokens[o + k] = (uint8_t)(NV_TOK_A + (int)(bu() * 4));
            uint8_t s = has ? NV_SS_UNPAIRED : NV_SS_UNKNOWN;
            double u = bu();
            if (has && u < 0.2 && ns < 4096) { s = NV_SS_OPEN; stk[ns++] = k; }
            else if (has && u < 0.45 && ns > 0 && k - stk[ns - 1] > 3) { s = NV_SS_CLOSE; ns--; }
            c->structure[o + k] = s;
        }
        while (ns > 0) c->structure[o + stk[--ns]] = NV_SS_UNPAIRED;
        c->offsets[i + 1] = o + (uint64_t)lens[i];
        c->n_with_structure += has;
    }
    c->n_seqs = n;
    c->n_tokens = tot;
    free(stk);
    free(lens);
}

// A FASTA file without structure; returns 0 if it cannot be read.
static int fasta_corpus(nv_corpus *c, const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint64_t nrec = 0, cap = 1024;
    corpus_alloc(c, cap, (uint64_t)sz);
    char line[65536];
    uint64_t tot = 0;
    while (fgets(line, sizeof line, f)) {
        if (line[0] == '>') {
            if (nrec + 2 > cap) { cap *= 2; c->offsets = realloc(c->offsets, sizeof(uint64_t) * cap); }
            c->offsets[nrec++] = tot;
            continue;
        }
        for (char *p = line; *p && *p != '\n' && *p != '\r'; p++) {
            int t = nv_tok_from_char((unsigned char)*p);
            if (t < 0) continue;
            c->tokens[tot] = (uint8_t)t;
            c->structure[tot++] = NV_SS_UNKNOWN;
        }
    }
    fclose(f);
    c->offsets[nrec] = tot;
    c->n_seqs = nrec;
    c->n_tokens = tot;
    return nrec > 0;
}

static void corpus_free(nv_corpus *c) {
    free(c->tokens);
    free(c->structure);
    free(c->offsets);
}

// Plain greedy packing (lookahead 1) of one epoch over the same slots: its real-token
// fraction, for comparison with the loader's bounded first-fit.
static double greedy_fraction(const nv_corpus *c, const nv_config *cfg) {
    int S = cfg->data.seq_length, mb = cfg->data.micro_batch, G = cfg->data.global_batch / mb;
    uint64_t n = c->n_seqs, *perm = malloc(sizeof(uint64_t) * n);
    for (uint64_t i = 0; i < n; i++) perm[i] = i;
    nv_rng_stream s = nv_rng_stream_init(12345, 0, 0, 0);
    for (uint64_t i = n - 1; i > 0; i--) {
        uint64_t j = nv_rng_below(&s, (uint32_t)(i + 1)), t = perm[i];
        perm[i] = perm[j]; perm[j] = t;
    }
    uint64_t *pos = calloc((size_t)G, sizeof(uint64_t));
    long real = 0, slots = 0;
    for (;;) {
        int alive = 0;
        for (int g = 0; g < G; g++) {
            for (int r = 0; r < mb; r++) {
                int room = S;
                for (;;) {
                    uint64_t pi = (uint64_t)g + pos[g] * (uint64_t)G;
                    if (pi >= n) break;
                    uint64_t L = nv_corpus_len(c, perm[pi]);
                    int need = (int)(L < (uint64_t)S - 2 ? L : (uint64_t)S - 2) + 2;
                    if (need > room) break;
                    room -= need;
                    pos[g]++;
                }
                real += S - room;
                slots += S;
            }
            if ((uint64_t)g + pos[g] * (uint64_t)G < n) alive = 1;
        }
        if (!alive) break;
    }
    free(pos);
    free(perm);
    return (double)real / slots;
}

static double cpu_now(clockid_t clk) {
    struct timespec ts;
    clock_gettime(clk, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

static void run_case(rowres *res, const char *name, const nv_corpus *c, const nv_config *cfg, int dp, int prefetch,
                     double min_seconds) {
    nv_error err;
    nv_loader *l = nv_loader_create_ex(c, &cfg->data, cfg->model.structure_input, 0, dp, prefetch, &err);
    if (!l) { fprintf(stderr, "bench_loader: %s\n", err.msg); exit(1); }
    int acc = nv_loader_accum(l);
    // warm-up: one step (the first epoch's permutation)
    for (int i = 0; i < acc; i++) nv_loader_next(l);
    long real = 0, slots = 0, steps = 0, tail_real = 0, tail_slots = 0;
    uint64_t epoch0 = 0;
    // one core: the calling thread's CPU time when synchronous, the process's (both
    // threads) with prefetch; wall time for the consumer's view
    clockid_t clk = prefetch ? CLOCK_PROCESS_CPUTIME_ID : CLOCK_THREAD_CPUTIME_ID;
    double c0 = cpu_now(clk), t0 = nv_now(), t = t0;
    long ep_real = 0, ep_slots = 0;
    while (t - t0 < min_seconds) {
        for (int i = 0; i < acc; i++) {
            const nv_batch *b = nv_loader_next(l);
            if (i == 0 && b->epoch != epoch0) { // per-epoch bookkeeping: whole epochs only
                if (epoch0 > 0) { tail_real += ep_real; tail_slots += ep_slots; }
                epoch0 = b->epoch;
                ep_real = ep_slots = 0;
            }
            real += b->n_real;
            slots += (long)b->rows * b->seq_len;
            ep_real += b->n_real;
            ep_slots += (long)b->rows * b->seq_len;
        }
        steps++;
        t = nv_now();
    }
    double dt = t - t0, dc = cpu_now(clk) - c0;
    snprintf(res->name, sizeof res->name, "%s", name);
    res->tok_s = slots / dc;
    res->real_tok_s = real / dc;
    res->wall_tok_s = slots / dt;
    res->real_frac = (double)real / slots;
    res->tail_frac = tail_slots ? (double)tail_real / tail_slots : NAN; // whole epochs only
    res->greedy_frac = greedy_fraction(c, cfg);
    res->steps = steps;
    nv_loader_free(l);
}

// The design's masking defaults (nv_config_defaults) at the benchmark's shape.
static void cfg_default(nv_config *cfg, int S, int mb, int gb) {
    nv_config_defaults(cfg);
    cfg->data.seq_length = S;
    cfg->data.micro_batch = mb;
    cfg->data.global_batch = gb;
    cfg->data.seed = 1234;
}

static void usage(FILE *f) {
    fprintf(f, "usage: bench_loader [--seqs N] [--seconds S] [--fasta PATH] [--results DIR]\n"
               "  loader + masker tokens/s on one core and packing efficiency at seq-length 1024\n"
               "  --seqs N      synthetic sequences (default 200000)\n"
               "  --seconds S   time per case (default 3)\n"
               "  --fasta PATH  real sequences (default ../shared/data/rnacentral-sample-1400.fasta; skipped if absent)\n"
               "  --results DIR where loader-<date>.md goes (default bench/results; '' = none)\n");
}

int main(int argc, char **argv) {
    uint64_t nseq = 200000;
    double secs = 3;
    const char *fasta = "../shared/data/rnacentral-sample-1400.fasta", *resdir = "bench/results";
    static const struct option opts[] = {{"seqs", 1, 0, 'n'}, {"seconds", 1, 0, 's'}, {"fasta", 1, 0, 'f'},
                                         {"results", 1, 0, 'r'}, {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
    int o;
    while ((o = getopt_long(argc, argv, "n:s:f:r:h", opts, NULL)) != -1) {
        switch (o) {
        case 'n': nseq = strtoull(optarg, NULL, 10); break;
        case 's': secs = atof(optarg); break;
        case 'f': fasta = optarg; break;
        case 'r': resdir = optarg; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (nseq < 1000 || secs <= 0) { fprintf(stderr, "bench_loader: --seqs >= 1000 and --seconds > 0\n"); return 2; }

    nv_corpus syn;
    synth_corpus(&syn, nseq);
    long under100 = 0, over1024 = 0;
    for (uint64_t i = 0; i < syn.n_seqs; i++) {
        uint64_t L = nv_corpus_len(&syn, i);
        under100 += L < 100;
        over1024 += L > 1024;
    }
    char mix[200];
    snprintf(mix, sizeof mix, "%llu synthetic sequences, mean %.0f nt, %.1f%% < 100, %.1f%% > 1024, 70%% with structure",
             (unsigned long long)syn.n_seqs, (double)syn.n_tokens / syn.n_seqs, 100.0 * under100 / syn.n_seqs,
             100.0 * over1024 / syn.n_seqs);
    printf("%s\n", mix);

    rowres res[8];
    int nres = 0;
    nv_config cfg;
    cfg_default(&cfg, 1024, 8, 256);
    run_case(&res[nres++], "synthetic, dp 1 (32 slots), sync", &syn, &cfg, 1, 0, secs);
    run_case(&res[nres++], "synthetic, dp 8 rank 0 (4 of 32 slots), sync", &syn, &cfg, 8, 0, secs);
    run_case(&res[nres++], "synthetic, dp 1, prefetch 4 (consumer view)", &syn, &cfg, 1, 4, secs);
    nv_corpus fa;
    int have_fa = fasta_corpus(&fa, fasta);
    if (have_fa) {
        nv_config c2;
        cfg_default(&c2, 1024, 8, 16); // 1,400 sequences: 2 slots, so an epoch spans ~20 steps
        run_case(&res[nres++], "rnacentral-sample-1400, dp 1 (2 slots), sync", &fa, &c2, 1, 0, secs);
    } else {
        printf("(%s not readable: real-data case skipped)\n", fasta);
    }

    char table[4096];
    int w = snprintf(table, sizeof table,
                     "| case | tokens/s per CPU-s | real tokens/s per CPU-s | tokens/s wall | real-token fraction | whole epochs | greedy |\n"
                     "| --- | ---: | ---: | ---: | ---: | ---: | ---: |\n");
    for (int i = 0; i < nres; i++)
        w += snprintf(table + w, sizeof table - (size_t)w, "| %s | %.2fM | %.2fM | %.2fM | %.4f | %.4f | %.4f |\n",
                      res[i].name, res[i].tok_s / 1e6, res[i].real_tok_s / 1e6, res[i].wall_tok_s / 1e6, res[i].real_frac,
                      res[i].tail_frac, res[i].greedy_frac);
    printf("\n%s\n", table);
    printf("tokens/s counts every row slot the loader writes (pads included), per CPU-second of the loader\n"
           "(its thread; both threads with prefetch); real-token fraction = non-pad share over the timed\n"
           "steps; whole epochs = the same over complete epochs (with their tails); greedy = plain next-fit\n"
           "packing (no lookahead) of one epoch, for comparison.\n");

    if (resdir && *resdir) {
        time_t now = time(NULL);
        char date[32], path[1200], model[256] = "unknown", commit[64] = "unknown";
        strftime(date, sizeof date, "%Y-%m-%d", localtime(&now));
        FILE *p = popen("lscpu | sed -n 's/^Model name: *//p' | head -1", "r");
        if (p) { if (fgets(model, sizeof model, p)) model[strcspn(model, "\n")] = 0; pclose(p); }
        p = popen("git rev-parse --short HEAD 2>/dev/null", "r");
        if (p) { if (fgets(commit, sizeof commit, p)) commit[strcspn(commit, "\n")] = 0; pclose(p); }
        snprintf(path, sizeof path, "%s/loader-%s.md", resdir, date);
        char loadavg[64] = "unknown";
        FILE *la = fopen("/proc/loadavg", "r");
        if (la) { if (fgets(loadavg, 15, la)) loadavg[strcspn(loadavg, "\n")] = 0; fclose(la); }
        FILE *f = fopen(path, "w");
        if (!f) { fprintf(stderr, "bench_loader: cannot write %s\n", path); return 1; }
        fprintf(f, "# Loader benchmark, %s\n\n- machine: %s (one core per case; prefetch case uses a second thread); load average at start %s\n"
                   "- commit: %s\n- config: seq-length 1024, micro-batch 8, global-batch 256 (16 for the FASTA), "
                   "mask-rate 0.15, span-fraction 0.5, span-p 0.2, span-max 10, pair-mask-rate 0.5, "
                   "struct-hide-rate 0.5, lookahead %d\n- data: %s%s\n\n%s\n"
                   "tokens/s counts every row slot written (pads included), per CPU-second (thread; process with\n"
                   "prefetch); wall figures depend on the machine's load. Whole epochs: real-token fraction over\n"
                   "complete epochs, epoch tails included (nan: no epoch completed in the timed window). Greedy:\n"
                   "next-fit packing without lookahead, same slots.\n",
                date, model, loadavg, commit, NV_LOADER_LOOKAHEAD, mix, have_fa ? "; RNAcentral sample 1,400 records (no structure)" : "",
                table);
        fclose(f);
        printf("wrote %s\n", path);
    }
    if (have_fa) corpus_free(&fa);
    corpus_free(&syn);
    return 0;
}
