// st_close.c - compare two safetensors files (as nvwa-ckpt export writes them) tensor by
// tensor: same names, shapes and dtypes, and ||a - b|| / max(||a||, FLOOR * sqrt(n)) <= TOL
// for each tensor of n elements. Its own small parser (not the exporter's code), so it checks
// the export as well.
//   st_close A.safetensors B.safetensors TOL [FLOOR]
// FLOOR (default 0) is the smallest per-element scale a tensor is measured at. Pass how far
// the optimizer can move an element (for AdamW, about the sum of the learning rates): a
// zero-initialised tensor (a bias) whose steps cancel can end with a norm far below that, and
// the same small per-element difference that every tensor shows is then a large fraction of
// its norm. Measured on cpu-bf16, TP=2 vs TP=1, head.struct.bias (3 values): norm 3.9e-3,
// difference 4.6e-5 (1.2e-2 relative); in the weight matrices about 4e-5 per element too.
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct tensor {
    char name[128];
    long shape[4];
    int ndim;
    long begin, end;
} tensor;

typedef struct stfile {
    unsigned char *data; // file bytes
    size_t size;
    const unsigned char *payload;
    tensor t[4096];
    int n;
} stfile;

static int fail(const char *what, const char *path) {
    fprintf(stderr, "st_close: %s: %s\n", path, what);
    exit(2);
}

// Minimal parser for the header shape nvwa writes: {"name": {"dtype": "F32", "shape": [..],
// "data_offsets": [b, e]}, ..., "__metadata__": {...}}
static void load(stfile *f, const char *path) {
    FILE *fp = fopen(path, "rb");
    if (!fp) fail("cannot open", path);
    fseek(fp, 0, SEEK_END);
    f->size = (size_t)ftell(fp);
    fseek(fp, 0, SEEK_SET);
    f->data = malloc(f->size + 1);
    if (fread(f->data, 1, f->size, fp) != f->size) fail("short read", path);
    fclose(fp);
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--) hl = hl << 8 | f->data[i];
    if (8 + hl > f->size) fail("header length past the end", path);
    char *h = malloc(hl + 1);
    memcpy(h, f->data + 8, hl);
    h[hl] = 0;
    f->payload = f->data + 8 + hl;
    f->n = 0;
    char *p = h;
    while ((p = strstr(p, "\"dtype\"")) != NULL) {
        // the name is the last quoted string before `{` preceding "dtype"
        char *brace = p;
        while (brace > h && *brace != '{') brace--;
        char *q2 = brace;
        while (q2 > h && *q2 != '"') q2--;
        char *q1 = q2 - 1;
        while (q1 > h && *q1 != '"') q1--;
        tensor *t = &f->t[f->n];
        size_t nl = (size_t)(q2 - q1 - 1);
        if (nl >= sizeof t->name) fail("name too long", path);
        memcpy(t->name, q1 + 1, nl);
        t->name[nl] = 0;
        if (strncmp(strchr(p + 7, '"'), "\"F32\"", 5) != 0) fail("not an F32 tensor", path);
        char *s = strstr(p, "\"shape\"");
        s = strchr(s, '[') + 1;
        t->ndim = 0;
        while (*s != ']') {
            t->shape[t->ndim++] = strtol(s, &s, 10);
            while (*s == ',' || *s == ' ') s++;
        }
        char *o = strstr(p, "\"data_offsets\"");
        o = strchr(o, '[') + 1;
        t->begin = strtol(o, &o, 10);
        while (*o == ',' || *o == ' ') o++;
        t->end = strtol(o, &o, 10);
        if (t->end < t->begin || (size_t)t->end > f->size - 8 - hl) fail("bad offsets", path);
        f->n++;
        p = o;
    }
    free(h);
}

int main(int argc, char **argv) {
    if (argc != 4 && argc != 5) {
        fprintf(stderr, "usage: st_close A B TOL [FLOOR]\n");
        return 2;
    }
    static stfile a, b;
    load(&a, argv[1]);
    load(&b, argv[2]);
    double tol = atof(argv[3]), floor_scale = argc == 5 ? atof(argv[4]) : 0, worst = 0;
    const char *worst_name = "";
    int bad = 0;
    if (a.n != b.n || a.n == 0) {
        fprintf(stderr, "st_close: %d vs %d tensors\n", a.n, b.n);
        return 1;
    }
    for (int i = 0; i < a.n; i++) {
        const tensor *x = &a.t[i], *y = NULL;
        for (int j = 0; j < b.n; j++)
            if (!strcmp(b.t[j].name, x->name)) y = &b.t[j];
        if (!y || y->end - y->begin != x->end - x->begin || y->ndim != x->ndim) {
            fprintf(stderr, "st_close: %s: missing or shaped differently in B\n", x->name);
            bad = 1;
            continue;
        }
        long n = (x->end - x->begin) / 4;
        const float *u = (const float *)(a.payload + x->begin), *v = (const float *)(b.payload + y->begin);
        double na = 0, nd = 0;
        for (long k = 0; k < n; k++) {
            na += (double)u[k] * u[k];
            nd += ((double)u[k] - v[k]) * ((double)u[k] - v[k]);
        }
        const double floor_norm = floor_scale * sqrt((double)n);
        const double rel = sqrt(nd) / fmax(fmax(sqrt(na), floor_norm), 1e-30);
        if (!(rel <= tol)) {
            fprintf(stderr, "st_close: %s: ||a-b||/max(||a||, floor) = %.3e > %.1e (||a|| %.3e, floor %.3e)\n",
                    x->name, rel, tol, sqrt(na), floor_norm);
            bad = 1;
        }
        if (rel > worst) {
            worst = rel;
            worst_name = x->name;
        }
    }
    printf("%d tensors, worst relative difference %.3e (%s), tolerance %.1e, floor %.2e\n", a.n, worst,
           worst_name, tol, floor_scale);
    return bad;
}
