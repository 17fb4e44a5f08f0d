// test_prep_roundtrip - every input format (FASTA, dot-bracket, RNAfold output, bpRNA .dbn,
// bpseq), plain and gzip, with and without --drop-gaps: random records are written to a
// file, parsed, written to a shard, read back, and compared with an independent mapping of
// the text that was written.
#include "data/shard.h"
#include "data/seqio.h"
#include "tests/testutil.h"

#include <stdarg.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

// The test's own mapping of design section 4 (not vocab.c's).
static int expect_tok(char c) {
    static const char *up = "ACGUTNRYKMSWBDHV.-", *lo = "acgutnrykmswbdhv.-";
    static const int id[] = {5, 6, 7, 8, 8, 9, 10, 11, 12, 13, 14, 15, 9, 9, 9, 9, 9, 9};
    for (int i = 0; up[i]; i++)
        if (c == up[i] || c == lo[i]) return id[i];
    return -1;
}
static int expect_ss(char c) {
    const char *p = strchr(".()[]{}<>", c);
    return p && c ? (int)(p - ".()[]{}<>") : -1;
}

typedef struct rec {
    char id[48];
    char *seq, *ss; // text as written (ss NULL for FASTA)
    int len;
} rec;

// Random structure text: brackets of `ntypes` kinds, each kind balanced on its own stack,
// hairpins >= 3; kinds cross each other freely (pseudoknots).
static void random_structure(char *ss, int n, int ntypes) {
    static const char op[] = "([{<", cl[] = ")]}>";
    int *stk[4], top[4] = {0, 0, 0, 0};
    for (int k = 0; k < 4; k++) stk[k] = malloc(sizeof(int) * (size_t)(n + 1));
    for (int i = 0; i < n; i++) {
        int k = tu_int(0, ntypes - 1);
        double r = tu_uniform(0, 1);
        if (top[k] > 0 && i - stk[k][top[k] - 1] > 3 && r < 0.35) {
            ss[i] = cl[k];
            top[k]--;
        } else if (r < 0.6 && i < n - 4) {
            ss[i] = op[k];
            stk[k][top[k]++] = i;
        } else {
            ss[i] = '.';
        }
    }
    for (int k = 0; k < 4; k++) {
        while (top[k] > 0) ss[stk[k][--top[k]]] = '.';
        free(stk[k]);
    }
    ss[n] = '\0';
}

static void make_records(rec *r, int n, int with_ss, int ntypes, int gaps) {
    static const char alpha[] = "ACGUacguTtNnRYKMSWrykmswBDHVbdhv";
    for (int i = 0; i < n; i++) {
        int len = tu_int(1, 300);
        snprintf(r[i].id, sizeof r[i].id, "URS%08llX_%d", (unsigned long long)(tu_u64() & 0xffffffffu), tu_int(1, 99999));
        r[i].len = len;
        r[i].seq = malloc((size_t)len + 1);
        r[i].ss = NULL;
        if (with_ss) {
            r[i].ss = malloc((size_t)len + 1);
            random_structure(r[i].ss, len, ntypes);
        }
        for (int k = 0; k < len; k++) {
            // mostly ACGU, some of everything else; gaps only where unpaired (droppable)
            int x = tu_int(0, 99);
            char c = x < 80 ? "ACGU"[x % 4] : alpha[tu_int(0, (int)sizeof alpha - 2)];
            if (gaps && x >= 96 && (!r[i].ss || r[i].ss[k] == '.')) c = x % 2 ? '-' : '.';
            r[i].seq[k] = c;
        }
        r[i].seq[len] = '\0';
    }
}

static void free_records(rec *r, int n) {
    for (int i = 0; i < n; i++) {
        free(r[i].seq);
        free(r[i].ss);
    }
}

typedef struct out {
    FILE *f;
    gzFile gz;
} out;

static void put(out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(out *o, const char *fmt, ...) {
    char buf[4096];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    REQUIRE(n >= 0 && n < (int)sizeof buf, "line too long");
    if (o->gz) REQUIRE(gzwrite(o->gz, buf, (unsigned)n) == n, "gzwrite");
    else REQUIRE(fwrite(buf, 1, (size_t)n, o->f) == (size_t)n, "fwrite");
}

enum { W_FASTA, W_DBN, W_RNAFOLD, W_BPRNA, W_BPSEQ };
static const char *wname[] = {"fasta", "dbn", "rnafold", "bprna", "bpseq"};

static void write_file(const char *path, int kind, int gz, const rec *r, int n) {
    out o = {0};
    if (gz) REQUIRE((o.gz = gzopen(path, "wb")) != NULL, "gzopen %s", path);
    else REQUIRE((o.f = fopen(path, "w")) != NULL, "fopen %s", path);
    for (int i = 0; i < n; i++) {
        const rec *x = &r[i];
        switch (kind) {
        case W_FASTA: {
            put(&o, ">%s some description\n", x->id);
            int w = tu_int(10, 80);
            for (int k = 0; k < x->len; k += w) put(&o, "%.*s%s\n", w, x->seq + k, tu_int(0, 9) == 0 ? "\r" : "");
            if (tu_int(0, 4) == 0) put(&o, "\n");
            break;
        }
        case W_DBN:
            if (i == 0) put(&o, "# a comment line\n");
            put(&o, ">%s\n%s\n%s\n", x->id, x->seq, x->ss);
            break;
        case W_RNAFOLD:
            put(&o, ">%s\n%s\n%s (%6.2f)\n", x->id, x->seq, x->ss, -tu_uniform(0, 99));
            break;
        case W_BPRNA:
            put(&o, "#Name: %s\n#Length: %d\n#PageNumber: 1\n%s\n%s\n", x->id, x->len, x->seq, x->ss);
            break;
        case W_BPSEQ: {
            // pairs from the bracket text, matched per kind
            int *partner = calloc((size_t)x->len, sizeof(int)), *stk = malloc(sizeof(int) * (size_t)x->len);
            for (int k = 0; k < 4; k++) {
                int top = 0;
                for (int p = 0; p < x->len; p++) {
                    if (x->ss[p] == "([{<"[k]) stk[top++] = p;
                    else if (x->ss[p] == ")]}>"[k]) {
                        int q = stk[--top];
                        partner[p] = q + 1;
                        partner[q] = p + 1;
                    }
                }
            }
            if (i % 2) put(&o, "> %s\n", x->id);
            else put(&o, "Filename: %s\nOrganism: Homo sapiens\n# comment\n", x->id);
            for (int p = 0; p < x->len; p++) put(&o, "%d %c %d\n", p + 1, x->seq[p], partner[p]);
            free(partner);
            free(stk);
            break;
        }
        }
    }
    if (gz) REQUIRE(gzclose(o.gz) == Z_OK, "gzclose");
    else REQUIRE(fclose(o.f) == 0, "fclose");
}

// Pairs of a stored structure, by bracket matching per kind: partner[i] = j + 1, 0 unpaired.
static void pairs_of(const uint8_t *ss, int n, int *partner) {
    int *stk = malloc(sizeof(int) * (size_t)(n + 1));
    memset(partner, 0, sizeof(int) * (size_t)n);
    for (int k = 0; k < 4; k++) {
        int top = 0;
        for (int p = 0; p < n; p++) {
            if (ss[p] == 2 * k + 1) stk[top++] = p;
            else if (ss[p] == 2 * k + 2 && top > 0) {
                int q = stk[--top];
                partner[p] = q + 1;
                partner[q] = p + 1;
            }
        }
    }
    free(stk);
}

static void check_one(int kind, int gz, int drop_gaps) {
    int n = tu_int(20, 60);
    rec *r = calloc((size_t)n, sizeof(rec));
    int has_ss = kind != W_FASTA;
    make_records(r, n, has_ss, kind == W_BPSEQ ? 2 : tu_int(1, 4), drop_gaps || tu_int(0, 1));
    char path[256], shard[256];
    snprintf(path, sizeof path, "/tmp/nvwa_rt_%d_%s%s", (int)getpid(), wname[kind], gz ? ".gz" : "");
    snprintf(shard, sizeof shard, "/tmp/nvwa_rt_%d.h5", (int)getpid());
    write_file(path, kind, gz, r, n);

    nv_error err;
    nv_seqreader *rd = nv_seqreader_open(path, NV_FMT_AUTO, drop_gaps, &err);
    REQUIRE(rd, "%s: open: %s", wname[kind], err.msg);
    nv_seqfmt want = kind == W_FASTA ? NV_FMT_FASTA : kind == W_BPSEQ ? NV_FMT_BPSEQ : NV_FMT_DBN;
    CHECK(nv_seqreader_format(rd) == want, "%s: detected %s", wname[kind], nv_seqfmt_name(nv_seqreader_format(rd)));
    nv_corpus c;
    nv_corpus_init(&c);
    nv_seqrec sr;
    int k;
    while ((k = nv_seqreader_next(rd, &sr, &err)) > 0) {
        CHECK(sr.number == c.n_seqs + 1, "record number %llu", (unsigned long long)sr.number);
        nv_corpus_append(&c, sr.id, sr.tok, sr.ss, sr.len);
    }
    REQUIRE(k == 0, "%s%s: parse: %s", wname[kind], gz ? ".gz" : "", err.msg);
    nv_seqreader_close(rd);
    REQUIRE(nv_shard_write(shard, &c, &err) == 0, "write: %s", err.msg);
    nv_corpus b;
    REQUIRE(nv_shard_read(shard, &b, 1, &err) == 0, "read: %s", err.msg);
    REQUIRE(b.n_seqs == (uint64_t)n, "%s: %llu sequences, wrote %d", wname[kind], (unsigned long long)b.n_seqs, n);

    uint64_t with_ss = 0;
    uint8_t *et = malloc(400), *es = malloc(400);
    int *p1 = malloc(400 * sizeof(int)), *p2 = malloc(400 * sizeof(int));
    for (int i = 0; i < n && tu_failures < 10; i++) {
        int m = 0, known = 0;
        for (int q = 0; q < r[i].len; q++) {
            char ch = r[i].seq[q];
            if (drop_gaps && (ch == '.' || ch == '-')) continue;
            et[m] = (uint8_t)expect_tok(ch);
            es[m] = has_ss ? (uint8_t)expect_ss(r[i].ss[q]) : 255;
            known |= es[m] != 255;
            m++;
        }
        with_ss += (uint64_t)known;
        CHECK(strcmp(b.ids[i], r[i].id) == 0, "%s rec %d: id '%s' vs '%s'", wname[kind], i, b.ids[i], r[i].id);
        CHECK(nv_corpus_len(&b, i) == (uint64_t)m, "%s rec %d: len %llu vs %d", wname[kind], i,
              (unsigned long long)nv_corpus_len(&b, i), m);
        if (nv_corpus_len(&b, i) != (uint64_t)m) continue;
        const uint8_t *gt = b.tokens + b.offsets[i], *gs = b.structure + b.offsets[i];
        CHECK(memcmp(gt, et, (size_t)m) == 0, "%s rec %d: tokens differ", wname[kind], i);
        if (kind == W_BPSEQ) { // bracket kinds may be relabelled: compare the pairs
            pairs_of(gs, m, p1);
            pairs_of(es, m, p2);
            CHECK(memcmp(p1, p2, sizeof(int) * (size_t)m) == 0, "bpseq rec %d: pairs differ", i);
            CHECK(nv_ss_balance(gs, (uint64_t)m, NULL) == 0, "bpseq rec %d: unbalanced", i);
        } else {
            CHECK(memcmp(gs, es, (size_t)m) == 0, "%s rec %d: structure differs", wname[kind], i);
        }
    }
    CHECK(b.n_with_structure == with_ss, "%s: n_with_structure %llu vs %llu", wname[kind],
          (unsigned long long)b.n_with_structure, (unsigned long long)with_ss);
    free(et); free(es); free(p1); free(p2);
    nv_corpus_free(&b);
    nv_corpus_free(&c);
    free_records(r, n);
    free(r);
    unlink(path);
    unlink(shard);
}

int main(void) {
    tu_seed();
    for (int kind = W_FASTA; kind <= W_BPSEQ; kind++)
        for (int gz = 0; gz <= 1; gz++)
            for (int dg = 0; dg <= 1; dg++) check_one(kind, gz, dg);
    return tu_finish("test_prep_roundtrip");
}
