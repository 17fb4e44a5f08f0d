// test_config.c - the config of design section 10: every key round-trips through
// nv_config_write and the parser; each error class names FILE:LINE and what is wrong;
// overrides; cross-key validation; the shipped configs/ load and validate at their world size.
#include <glob.h>
#include <string.h>

#include "data/batch.h" // NV_CURSOR_MAX
#include "tests/testutil.h"
#include "train/config.h"

// Every key of design section 10 (plus the trainer's max-skipped-steps), written out here
// independently of the table in config.c.
static const char *const all_keys[] = {
    "[model] num-layers", "[model] hidden-size", "[model] ffn-hidden-size",
    "[model] num-attn-heads", "[model] vocab-size", "[model] local-window",
    "[model] global-attn-every", "[model] rope-theta-global", "[model] rope-theta-local",
    "[model] structure-input", "[model] first-attn-norm", "[model] struct-loss-weight",
    "[data] train", "[data] valid", "[data] seq-length", "[data] micro-batch",
    "[data] global-batch", "[data] mask-rate", "[data] span-fraction", "[data] span-p",
    "[data] span-max", "[data] pair-mask-rate", "[data] struct-hide-rate", "[data] seed",
    "[optim] lr", "[optim] min-lr", "[optim] warmup-steps", "[optim] weight-decay",
    "[optim] beta1", "[optim] beta2", "[optim] eps", "[optim] grad-clip",
    "[parallel] tensor", "[parallel] zero1", "[parallel] overlap",
    "[train] steps", "[train] device", "[train] precision", "[train] recompute", "[train] attention",
    "[train] exit-after-minutes", "[train] seed", "[train] max-skipped-steps",
    "[checkpoint] dir", "[checkpoint] every", "[checkpoint] keep", "[checkpoint] resume",
    "[log] every", "[log] file", "[log] eval-every",
};
#define N_ALL ((int)(sizeof all_keys / sizeof all_keys[0]))

// Field-by-field equality (strings by content: bytes after the NUL do not matter).
static int config_equal(const nv_config *a, const nv_config *b, char *which, size_t n) {
#define EQ(f)                                                                               \
    if (a->f != b->f) { snprintf(which, n, "%s", #f); return 0; }
#define EQS(f)                                                                              \
    if (strcmp(a->f, b->f)) { snprintf(which, n, "%s ('%.200s' vs '%.200s')", #f, a->f, b->f); return 0; }
    EQ(model.num_layers) EQ(model.hidden_size) EQ(model.ffn_hidden_size)
    EQ(model.num_attn_heads) EQ(model.vocab_size) EQ(model.local_window)
    EQ(model.global_attn_every) EQ(model.rope_theta_global) EQ(model.rope_theta_local)
    EQ(model.structure_input) EQ(model.struct_loss_weight)
    EQS(data.train) EQS(data.valid) EQ(data.seq_length) EQ(data.micro_batch)
    EQ(data.global_batch) EQ(data.mask_rate) EQ(data.span_fraction) EQ(data.span_p)
    EQ(data.span_max) EQ(data.pair_mask_rate) EQ(data.struct_hide_rate) EQ(data.seed)
    EQ(optim.lr) EQ(optim.min_lr) EQ(optim.warmup_steps) EQ(optim.weight_decay)
    EQ(optim.beta1) EQ(optim.beta2) EQ(optim.eps) EQ(optim.grad_clip)
    EQ(parallel.tensor) EQ(parallel.zero1)
    EQ(train.steps) EQ(train.device) EQ(train.precision) EQ(train.recompute)
    EQ(train.exit_after_minutes) EQ(train.seed) EQ(train.max_skipped_steps)
    EQS(checkpoint.dir) EQ(checkpoint.every) EQ(checkpoint.keep) EQS(checkpoint.resume)
    EQ(log.every) EQS(log.file) EQ(log.eval_every)
#undef EQ
#undef EQS
    return 1;
}

// noinline: inlined, gcc takes the returned buffer for a pointer to the local `buf`
__attribute__((noinline)) static char *write_to_string(const nv_config *c) {
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    REQUIRE(f, "open_memstream");
    nv_config_write(c, f);
    fclose(f);
    return buf;
}

static void random_string(char *s, int maxlen) {
    // path-like, with characters that must survive: spaces, '=', '#', ':', '[' (not ';')
    static const char cs[] = "abcXYZ019_-./ =#:[]{}";
    // sometimes as long as the field allows: lines beyond libinih's 200-byte buffer
    int n = tu_int(0, 3) == 0 ? NV_PATH_MAX - 1 : tu_int(0, maxlen);
    for (int i = 0; i < n; i++) s[i] = cs[tu_int(0, (int)sizeof cs - 2)];
    s[n] = 0;
    // inih strips surrounding white space; keep the ends solid
    if (n) { s[0] = 'p'; s[n - 1] = 'q'; }
}

static void randomize(nv_config *c) {
    nv_config_defaults(c);
    c->model.num_layers = tu_int(1, 1024);
    c->model.hidden_size = tu_int(1, 65536);
    c->model.ffn_hidden_size = tu_int(1, 262144);
    c->model.num_attn_heads = tu_int(1, 1024);
    c->model.local_window = tu_int(2, 100000);
    c->model.global_attn_every = tu_int(1, 1024);
    c->model.rope_theta_global = tu_uniform(1.5, 1e9);
    c->model.rope_theta_local = tu_uniform(1.5, 1e6);
    c->model.structure_input = tu_int(0, 1);
    c->model.struct_loss_weight = tu_uniform(0, 10);
    random_string(c->data.train, 150);
    random_string(c->data.valid, 150);
    c->data.seq_length = tu_int(8, 1 << 20);
    c->data.micro_batch = tu_int(1, 1000);
    c->data.global_batch = tu_int(1, 100000);
    c->data.mask_rate = tu_uniform(1e-6, 0.999);
    c->data.span_fraction = tu_uniform(0, 1);
    c->data.span_p = tu_uniform(1e-6, 1);
    c->data.span_max = tu_int(1, 1024);
    c->data.pair_mask_rate = tu_uniform(0, 1);
    c->data.struct_hide_rate = tu_uniform(0, 1);
    c->data.seed = tu_u64() | (1ull << 63); // above INT64_MAX
    c->optim.lr = tu_uniform(0, 1) * pow(10, -tu_int(0, 6));
    c->optim.min_lr = c->optim.lr * tu_uniform(0, 1);
    c->optim.warmup_steps = tu_int(0, 1 << 30);
    c->optim.weight_decay = tu_uniform(0, 1);
    c->optim.beta1 = tu_uniform(0, 0.999);
    c->optim.beta2 = tu_uniform(0, 0.999);
    c->optim.eps = tu_uniform(1e-12, 1e-6);
    c->optim.grad_clip = tu_uniform(0, 100);
    c->parallel.tensor = tu_int(1, 1024);
    c->parallel.zero1 = tu_int(0, 1);
    c->train.steps = (long)(tu_u64() % 1000000000000ull);
    c->train.device = (nv_device_kind)tu_int(0, 2);
    c->train.precision = (nv_precision)tu_int(0, 1);
    c->train.recompute = tu_int(0, 1);
    c->train.exit_after_minutes = tu_uniform(0, 10000);
    c->train.seed = tu_u64();
    c->train.max_skipped_steps = tu_int(0, 1000000);
    random_string(c->checkpoint.dir, 150);
    c->checkpoint.every = tu_int(0, 1 << 30);
    c->checkpoint.keep = tu_int(1, 1000);
    random_string(c->checkpoint.resume, 150);
    c->log.every = tu_int(1, 1 << 30);
    random_string(c->log.file, 150);
    c->log.eval_every = tu_int(0, 1 << 30);
}

static void test_round_trip(void) {
    for (int rep = 0; rep < 200; rep++) {
        nv_config a, b;
        if (rep == 0) nv_config_defaults(&a); // defaults too, with their empty strings
        else randomize(&a);
        char *text = write_to_string(&a);
        // b starts from other values, so a key the writer forgot cannot pass by default
        randomize(&b);
        nv_error err = {{0}};
        int rc = nv_config_parse_string(&b, text, "rt.ini", &err);
        CHECK(rc == 0, "rep %d: %s\n%s", rep, err.msg, text);
        char which[1024];
        CHECK(rc != 0 || config_equal(&a, &b, which, sizeof which), "rep %d: %s differs\n%s",
              rep, which, text);
        // every key written exactly once
        int key_lines = 0;
        for (char *line = text; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL)
            if (*line != '[' && *line != '\n' && *line != '#' && *line != ';') key_lines++;
        CHECK(key_lines == N_ALL, "%d key lines written, expected %d", key_lines, N_ALL);
        if (rep == 0) {
            for (int i = 0; i < N_ALL; i++) {
                char sec[32], key[64], needle[128];
                REQUIRE(sscanf(all_keys[i], "[%31[^]]] %63s", sec, key) == 2, "%s", all_keys[i]);
                snprintf(needle, sizeof needle, "\n%s = ", key);
                char header[48];
                snprintf(header, sizeof header, "[%s]\n", sec);
                const char *h = strstr(text, header);
                CHECK(h != NULL, "no section %s written", header);
                const char *next = h ? strstr(h + 1, "\n[") : NULL;
                const char *k = h ? strstr(h, needle) : NULL;
                CHECK(k && (!next || k < next), "%s not written in its section", all_keys[i]);
            }
        }
        free(text);
    }
}

// Parse `text` and expect failure with "NAME:LINE: " followed by a message containing frag.
static void expect_error(const char *text, int line, const char *frag) {
    nv_config c;
    nv_config_defaults(&c);
    nv_error err = {{0}};
    int rc = nv_config_parse_string(&c, text, "bad.ini", &err);
    char prefix[64];
    snprintf(prefix, sizeof prefix, "bad.ini:%d: ", line);
    CHECK(rc == -1, "accepted, expected '%s' at line %d", frag, line);
    CHECK(strncmp(err.msg, prefix, strlen(prefix)) == 0, "got '%s', expected prefix '%s'",
          err.msg, prefix);
    CHECK(strstr(err.msg, frag) != NULL, "got '%s', expected '%s'", err.msg, frag);
    CHECK(strchr(err.msg, '\n') == NULL, "message is not one line: '%s'", err.msg);
}

static void test_errors(void) {
    const char *head = "# a comment\n"        // 1
                       "[model]\n"            // 2
                       "num-layers = 3\n"     // 3
                       "\n"                   // 4
                       "; another comment\n"; // 5
    char text[4096];
#define AT6(s) (snprintf(text, sizeof text, "%s%s", head, s), text)
    expect_error(AT6("[bogus]\nx = 1\n"), 6, "[bogus]: unknown section (expected one of [model]");
    expect_error(AT6("[bogus]\n"), 6, "unknown section");
    expect_error(AT6("num-layer = 3\n"), 6, "[model] num-layer: unknown key (expected one of: num-layers");
    expect_error(AT6("hidden-size = 64x\n"), 6, "[model] hidden-size: bad value '64x' (expected an integer");
    expect_error(AT6("hidden-size =\n"), 6, "bad value '' (expected an integer");
    expect_error(AT6("hidden-size = 99999999999999999999\n"), 6, "bad value");
    expect_error(AT6("num-layers = 4\n"), 6, "[model] num-layers: duplicate key (first set on line 3");
    expect_error(AT6("num-attn-heads = 0\n"), 6, "[model] num-attn-heads: 0 is out of range (expected 1 <= x <= 1024)");
    expect_error(AT6("vocab-size = 32\n"), 6, "[model] vocab-size: 32 is out of range (expected 16)");
    expect_error(AT6("rope-theta-local = 1\n"), 6, "out of range (expected 1 < x <= 1e+12)");
    expect_error(AT6("rope-theta-local = nan\n"), 6, "bad value 'nan' (expected a number");
    expect_error(AT6("struct-loss-weight = 1,5\n"), 6, "bad value '1,5' (expected a number");
    expect_error(AT6("structure-input = maybe\n"), 6, "[model] structure-input: bad value 'maybe' (expected true, false");
    expect_error(AT6("[data]\nmask-rate = 1\n"), 7, "[data] mask-rate: 1 is out of range (expected 0 < x < 1)");
    expect_error(AT6("[data]\nseed = -1\n"), 7, "[data] seed: bad value '-1' (expected an unsigned 64-bit integer)");
    expect_error(AT6("[data]\nseed = 18446744073709551616\n"), 7, "[data] seed: bad value");
    expect_error(AT6("[train]\ndevice = tpu\n"), 7, "[train] device: bad value 'tpu' (expected cpu, cuda or auto)");
    expect_error(AT6("[train]\nprecision = fp16\n"), 7, "(expected fp32 or bf16)");
    expect_error(AT6("[optim]\nbeta2 = 1.0\n"), 7, "[optim] beta2: 1.0 is out of range (expected 0 <= x < 1)");
    expect_error(AT6("this is not ini\n"), 6, "syntax error");
    expect_error(AT6("[model\n"), 6, "syntax error");
    expect_error(AT6("  continued\n"), 6, "indented line continues the value");
    // the first of several errors is the one reported
    expect_error(AT6("num-attn-heads = 0\nnope = 1\n"), 6, "num-attn-heads");
    expect_error(AT6("nope = 1\nthis is not ini\n"), 6, "unknown key");
    expect_error(AT6("\n\nthis is not ini\nnope = 1\n"), 8, "syntax error");
    // keys before any section
    expect_error("\nnum-layers = 2\n[model]\n", 2, "num-layers: key outside any section");
    // CRLF line ends and an inline comment do not disturb the count
    expect_error("[model]\r\nnum-layers = 2 ; two\r\n\r\nhidden-size = big\r\n", 4,
                 "bad value 'big'");
    // lines beyond libinih's buffer: a long value is read whole, other long lines are
    // refused rather than split into two lines
    char longline[3000];
    snprintf(longline, sizeof longline, "[data]\n%0400d\n", 7);
    expect_error(longline, 2, "line too long");
    snprintf(longline, sizeof longline, "[data]\ntrain = %02000d\n", 7);
    expect_error(longline, 2, "[data] train: value too long");
    snprintf(longline, sizeof longline, "[data]\n# %0300d\nvalid = \"%0900d\" ; note\nseq-length = x\n", 1, 2);
    expect_error(longline, 4, "[data] seq-length: bad value 'x'");
    {
        nv_config c;
        nv_config_defaults(&c);
        nv_error err = {{0}};
        snprintf(longline, sizeof longline, "[data]\n# %0300d\nvalid = \"%0900d\" ; note\n", 1, 2);
        CHECK(nv_config_parse_string(&c, longline, "long.ini", &err) == 0, "%s", err.msg);
        CHECK(strlen(c.data.valid) == 900 && c.data.valid[899] == '2', "%zu", strlen(c.data.valid));
    }
#undef AT6

    // a good file: comments, inline comments, quotes, case-insensitive bools and enums
    nv_config c;
    nv_config_defaults(&c);
    nv_error err = {{0}};
    const char *good = "# header\n[model]\nnum-layers = 5 ; five\nstructure-input = OFF\n"
                       "[train]\ndevice = CUDA\nprecision=fp32\n[checkpoint]\ndir = \"\"\n"
                       "resume = \"/a b/c\"\n[data]\nseed = 18446744073709551615\ntrain = x;y\n";
    CHECK(nv_config_parse_string(&c, good, "good.ini", &err) == 0, "%s", err.msg);
    CHECK(c.model.num_layers == 5, "%d", c.model.num_layers);
    CHECK(c.model.structure_input == 0, "%d", c.model.structure_input);
    CHECK(c.train.device == NV_DEVICE_CUDA && c.train.precision == NV_PREC_FP32, "enums");
    CHECK(c.checkpoint.dir[0] == 0 && !strcmp(c.checkpoint.resume, "/a b/c"), "'%s' '%s'",
          c.checkpoint.dir, c.checkpoint.resume);
    CHECK(c.data.seed == UINT64_MAX, "%llu", (unsigned long long)c.data.seed);
    CHECK(!strcmp(c.data.train, "x;y"), "'%s'", c.data.train);
    CHECK(!strcmp(c.source, "good.ini"), "%s", c.source);
    CHECK(c.model.hidden_size == 64, "untouched keys keep their defaults");
}

static void expect_override_error(const char *arg, const char *frag) {
    nv_config c;
    nv_config_defaults(&c);
    nv_error err = {{0}};
    char prefix[256];
    snprintf(prefix, sizeof prefix, "override '%s': ", arg);
    CHECK(nv_config_override(&c, arg, &err) == -1, "'%s' accepted", arg);
    CHECK(strncmp(err.msg, prefix, strlen(prefix)) == 0, "got '%s'", err.msg);
    CHECK(strstr(err.msg, frag) != NULL, "got '%s', expected '%s'", err.msg, frag);
}

static void test_overrides(void) {
    nv_config c;
    nv_config_defaults(&c);
    nv_error err = {{0}};
    CHECK(nv_config_override(&c, "model.num-layers=7", &err) == 0, "%s", err.msg);
    CHECK(nv_config_override(&c, "train.device=cpu", &err) == 0, "%s", err.msg);
    CHECK(nv_config_override(&c, "data.train=/data/a=b", &err) == 0, "%s", err.msg);
    CHECK(nv_config_override(&c, "optim.lr=5e-4", &err) == 0, "%s", err.msg);
    CHECK(nv_config_override(&c, "parallel.zero1=yes", &err) == 0, "%s", err.msg);
    CHECK(c.model.num_layers == 7 && c.train.device == NV_DEVICE_CPU && c.optim.lr == 5e-4 &&
          c.parallel.zero1 == 1, "values");
    CHECK(!strcmp(c.data.train, "/data/a=b"), "'%s'", c.data.train);
    expect_override_error("model.num-layer=7", "[model] num-layer: unknown key");
    expect_override_error("modle.num-layers=7", "[modle]: unknown section");
    expect_override_error("num-layers=7", "expected section.key=value");
    expect_override_error("model.num-layers", "expected section.key=value");
    expect_override_error("model.num-layers=seven", "bad value 'seven'");
    expect_override_error("model.num-layers=0", "0 is out of range");

    // load: the file, then overrides in order (a later one wins)
    char path[] = "/tmp/nvwa_test_config_XXXXXX";
    int fd = mkstemp(path);
    REQUIRE(fd >= 0, "mkstemp");
    FILE *f = fdopen(fd, "w");
    fputs("[model]\nnum-layers = 4\nhidden-size = 128\n[train]\nsteps = 10\n", f);
    fclose(f);
    char *ov[] = {"train.steps=20", "model.hidden-size=256", "train.steps=30"};
    memset(&c, 0xAB, sizeof c); // load starts from the defaults, whatever c held
    CHECK(nv_config_load(&c, path, 3, ov, &err) == 0, "%s", err.msg);
    nv_config dflt;
    nv_config_defaults(&dflt);
    CHECK(c.model.ffn_hidden_size == dflt.model.ffn_hidden_size && c.optim.lr == dflt.optim.lr &&
          !strcmp(c.checkpoint.resume, "auto") && c.data.train[0] == 0, "defaults not applied");
    CHECK(c.model.num_layers == 4 && c.model.hidden_size == 256 && c.train.steps == 30,
          "%d %d %ld", c.model.num_layers, c.model.hidden_size, c.train.steps);
    CHECK(!strcmp(c.source, path), "source '%s'", c.source);
    char *bad[] = {"train.nope=1"};
    CHECK(nv_config_load(&c, path, 1, bad, &err) == -1 && strstr(err.msg, "override 'train.nope=1'"),
          "%s", err.msg);
    // file errors carry the path
    f = fopen(path, "w");
    fputs("[model]\n\nnum-layers = x\n", f);
    fclose(f);
    char want[128];
    snprintf(want, sizeof want, "%s:3: [model] num-layers: bad value 'x'", path);
    CHECK(nv_config_load(&c, path, 0, NULL, &err) == -1 && strstr(err.msg, want), "%s", err.msg);
    remove(path);
    CHECK(nv_config_load(&c, path, 0, NULL, &err) == -1 && strstr(err.msg, "cannot open"),
          "%s", err.msg);
}

static void expect_invalid(const char *overrides, int world, const char *frag) {
    nv_config c;
    nv_config_defaults(&c);
    nv_error err = {{0}};
    char buf[512];
    snprintf(buf, sizeof buf, "%s", overrides);
    for (char *tok = strtok(buf, " "); tok; tok = strtok(NULL, " "))
        REQUIRE(nv_config_override(&c, tok, &err) == 0, "%s", err.msg);
    int rc = nv_config_validate(&c, world, &err);
    CHECK(rc == -1, "'%s' at world %d validated, expected '%s'", overrides, world, frag);
    CHECK(rc == 0 || strstr(err.msg, frag), "'%s': got '%s', expected '%s'", overrides, err.msg,
          frag);
}

static void test_validate(void) {
    nv_config c;
    nv_config_defaults(&c);
    nv_error err = {{0}};
    CHECK(nv_config_validate(&c, 1, &err) == 0, "defaults: %s", err.msg);
    expect_invalid("model.hidden-size=66", 1, "hidden-size: 66 is not divisible by num-attn-heads 4");
    expect_invalid("model.hidden-size=60 model.num-attn-heads=4", 1, "head dim 60/4 = 15 is odd");
    expect_invalid("parallel.tensor=8", 8, "num-attn-heads: 4 is not divisible by [parallel] tensor 8");
    expect_invalid("parallel.tensor=4 model.ffn-hidden-size=170", 4, "ffn-hidden-size: 170 is not divisible by [parallel] tensor 4");
    expect_invalid("parallel.tensor=2", 3, "world size 3 is not divisible by tensor 2");
    expect_invalid("data.global-batch=12 data.micro-batch=4", 2, "global-batch: 12 is not divisible by micro-batch 4 x data ranks 2 = 8");
    expect_invalid("data.global-batch=12 data.micro-batch=4 parallel.tensor=2", 4, "data ranks 2 = 8");
    expect_invalid("optim.lr=1e-4 optim.min-lr=2e-4", 1, "min-lr");
    expect_invalid("model.local-window=33", 1, "local-window: 33 is odd");
    char slots[128], most[32];
    snprintf(slots, sizeof slots, "data.global-batch=%d data.micro-batch=1", NV_CURSOR_MAX + 1);
    snprintf(most, sizeof most, "at most %d", NV_CURSOR_MAX);
    expect_invalid(slots, 1, most); // the loader's cursor holds NV_CURSOR_MAX slots
    expect_invalid("data.seq-length=8 data.span-max=10", 1, "span-max");
    expect_invalid("", 0, "world size 0");
    // consistent layouts pass: global-batch = micro-batch x data x accum
    nv_config_defaults(&c);
    c.model.num_attn_heads = 8;
    c.parallel.tensor = 4;
    c.model.ffn_hidden_size = 176;
    c.data.micro_batch = 2;
    c.data.global_batch = 2 * 4 * 3;
    CHECK(nv_config_validate(&c, 16, &err) == 0, "%s", err.msg);
    // a struct filled in code gets the single-key range checks too
    nv_config_defaults(&c);
    c.data.mask_rate = 1.5;
    CHECK(nv_config_validate(&c, 1, &err) == -1 && strstr(err.msg, "[data] mask-rate"), "%s",
          err.msg);
}

static int world_of(const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    char line[512];
    int world = -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "# world: %d", &world) == 1) break;
    fclose(f);
    return world;
}

static void test_shipped(void) {
    const char *root = getenv("NVWA_SOURCE_ROOT");
    char pattern[1024];
    snprintf(pattern, sizeof pattern, "%s/configs/*.ini", root ? root : ".");
    glob_t g;
    int rc = glob(pattern, 0, NULL, &g);
    REQUIRE(rc == 0, "no configs at %s", pattern);
    static const char *const expected[] = {"tiny.ini", "rna-fm-100m.ini", "650m.ini", "1.6b.ini",
                                           "30b.ini"};
    for (int i = 0; i < 5; i++) {
        int found = 0;
        for (size_t j = 0; j < g.gl_pathc; j++) {
            const char *b = strrchr(g.gl_pathv[j], '/');
            found |= !strcmp(b ? b + 1 : g.gl_pathv[j], expected[i]);
        }
        CHECK(found, "configs/%s missing", expected[i]);
    }
    for (size_t j = 0; j < g.gl_pathc; j++) {
        const char *path = g.gl_pathv[j];
        int world = world_of(path);
        CHECK(world > 0, "%s: no '# world: N' comment", path);
        if (world <= 0) continue;
        nv_config c;
        nv_config_defaults(&c);
        nv_error err = {{0}};
        CHECK(nv_config_load(&c, path, 0, NULL, &err) == 0, "%s", err.msg);
        CHECK(nv_config_validate(&c, world, &err) == 0, "%s at world %d: %s", path, world, err.msg);
        const char *b = strrchr(path, '/');
        b = b ? b + 1 : path;
        if (!strcmp(b, "1.6b.ini")) {
            const nv_model_config *m = &c.model;
            CHECK(m->num_layers == 32 && m->hidden_size == 2048 && m->ffn_hidden_size == 5440 &&
                  m->num_attn_heads == 32 && m->vocab_size == 16 && c.data.seq_length == 1024 &&
                  m->global_attn_every == 3 && m->local_window == 128 &&
                  m->rope_theta_global == 160000 && m->rope_theta_local == 10000,
                  "1.6b.ini does not match the model card");
            CHECK(world == 16, "1.6b is laid out for 16 GPUs, comment says %d", world);
        }
        if (!strcmp(b, "tiny.ini"))
            CHECK(c.train.device == NV_DEVICE_CPU && c.train.steps <= 1000, "tiny must be a CPU run");
        if (!strcmp(b, "30b.ini")) CHECK(c.parallel.tensor == 8 && world >= 64, "30b layout");
        // and the resolved config of each round-trips too
        char *text = write_to_string(&c);
        nv_config d;
        nv_config_defaults(&d);
        char which[1024];
        CHECK(nv_config_parse_string(&d, text, "resolved", &err) == 0, "%s", err.msg);
        CHECK(config_equal(&c, &d, which, sizeof which), "%s: %s differs", path, which);
        free(text);
    }
    globfree(&g);
}

int main(void) {
    tu_seed();
    test_round_trip();
    test_errors();
    test_overrides();
    test_validate();
    test_shipped();
    return tu_finish("test_config");
}
