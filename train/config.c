// config.c - the config of design section 10: defaults, INI parsing (libinih), overrides,
// validation and canonical output, all driven by one table of keys.
//
// libinih (Debian's build) calls the handler without a line number, so the text is fed to
// ini_parse_stream through our own line reader, which counts lines: the handler runs for a
// line before the next one is read, so the reader's count is the handler's line.
#include "train/config.h"

#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "data/batch.h" // NV_CURSOR_MAX: the loader's limit on micro-batch slots per step

// ----------------------------------------------------------------------------
// the key table

typedef enum { T_INT, T_LONG, T_DOUBLE, T_BOOL, T_STR, T_U64, T_ENUM } key_type;

// Range bounds are inclusive unless the OPEN_* flag says otherwise.
enum { OPEN_LO = 1, OPEN_HI = 2 };

typedef struct key_def {
    const char *section, *key;
    key_type type;
    size_t offset;
    double min, max; // numeric types only
    int open;        // OPEN_LO | OPEN_HI
    const char *const *names; // T_ENUM: value names, index = enum value, NULL-terminated
} key_def;

static const char *const device_names[] = {"cpu", "cuda", "auto", NULL};
static const char *const precision_names[] = {"fp32", "bf16", NULL};
static const char *const attention_names[] = {"auto", "cudnn", "native", NULL};

#define OFF(field) offsetof(nv_config, field)
#define BIG 1e15
static const key_def keys[] = {
    {"model", "num-layers", T_INT, OFF(model.num_layers), 1, 1024, 0, NULL},
    {"model", "hidden-size", T_INT, OFF(model.hidden_size), 1, 65536, 0, NULL},
    {"model", "ffn-hidden-size", T_INT, OFF(model.ffn_hidden_size), 1, 262144, 0, NULL},
    {"model", "num-attn-heads", T_INT, OFF(model.num_attn_heads), 1, 1024, 0, NULL},
    {"model", "vocab-size", T_INT, OFF(model.vocab_size), 16, 16, 0, NULL},
    {"model", "local-window", T_INT, OFF(model.local_window), 2, 1 << 20, 0, NULL},
    {"model", "global-attn-every", T_INT, OFF(model.global_attn_every), 1, 1024, 0, NULL},
    {"model", "rope-theta-global", T_DOUBLE, OFF(model.rope_theta_global), 1, 1e12, OPEN_LO, NULL},
    {"model", "rope-theta-local", T_DOUBLE, OFF(model.rope_theta_local), 1, 1e12, OPEN_LO, NULL},
    {"model", "structure-input", T_BOOL, OFF(model.structure_input), 0, 1, 0, NULL},
    {"model", "first-attn-norm", T_BOOL, OFF(model.first_attn_norm), 0, 1, 0, NULL},
    {"model", "struct-loss-weight", T_DOUBLE, OFF(model.struct_loss_weight), 0, 1e6, 0, NULL},

    {"data", "train", T_STR, OFF(data.train), 0, 0, 0, NULL},
    {"data", "valid", T_STR, OFF(data.valid), 0, 0, 0, NULL},
    {"data", "seq-length", T_INT, OFF(data.seq_length), 8, 1 << 20, 0, NULL},
    {"data", "micro-batch", T_INT, OFF(data.micro_batch), 1, 1 << 20, 0, NULL},
    {"data", "global-batch", T_INT, OFF(data.global_batch), 1, 1 << 30, 0, NULL},
    {"data", "mask-rate", T_DOUBLE, OFF(data.mask_rate), 0, 1, OPEN_LO | OPEN_HI, NULL},
    {"data", "span-fraction", T_DOUBLE, OFF(data.span_fraction), 0, 1, 0, NULL},
    {"data", "span-p", T_DOUBLE, OFF(data.span_p), 0, 1, OPEN_LO, NULL},
    {"data", "span-max", T_INT, OFF(data.span_max), 1, 1024, 0, NULL},
    {"data", "pair-mask-rate", T_DOUBLE, OFF(data.pair_mask_rate), 0, 1, 0, NULL},
    {"data", "struct-hide-rate", T_DOUBLE, OFF(data.struct_hide_rate), 0, 1, 0, NULL},
    {"data", "seed", T_U64, OFF(data.seed), 0, 0, 0, NULL},

    {"optim", "lr", T_DOUBLE, OFF(optim.lr), 0, 10, 0, NULL},
    {"optim", "min-lr", T_DOUBLE, OFF(optim.min_lr), 0, 10, 0, NULL},
    {"optim", "warmup-steps", T_INT, OFF(optim.warmup_steps), 0, INT_MAX, 0, NULL},
    {"optim", "weight-decay", T_DOUBLE, OFF(optim.weight_decay), 0, 10, 0, NULL},
    {"optim", "beta1", T_DOUBLE, OFF(optim.beta1), 0, 1, OPEN_HI, NULL},
    {"optim", "beta2", T_DOUBLE, OFF(optim.beta2), 0, 1, OPEN_HI, NULL},
    {"optim", "eps", T_DOUBLE, OFF(optim.eps), 0, 1, OPEN_LO, NULL},
    {"optim", "grad-clip", T_DOUBLE, OFF(optim.grad_clip), 0, 1e9, 0, NULL},

    {"parallel", "tensor", T_INT, OFF(parallel.tensor), 1, 1024, 0, NULL},
    {"parallel", "zero1", T_BOOL, OFF(parallel.zero1), 0, 1, 0, NULL},
    {"parallel", "overlap", T_BOOL, OFF(parallel.overlap), 0, 1, 0, NULL},

    {"train", "steps", T_LONG, OFF(train.steps), 0, BIG, 0, NULL},
    {"train", "device", T_ENUM, OFF(train.device), 0, 0, 0, device_names},
    {"train", "precision", T_ENUM, OFF(train.precision), 0, 0, 0, precision_names},
    {"train", "recompute", T_BOOL, OFF(train.recompute), 0, 1, 0, NULL},
    {"train", "attention", T_ENUM, OFF(train.attention), 0, 0, 0, attention_names},
    {"train", "exit-after-minutes", T_DOUBLE, OFF(train.exit_after_minutes), 0, 1e8, 0, NULL},
    {"train", "seed", T_U64, OFF(train.seed), 0, 0, 0, NULL},
    {"train", "max-skipped-steps", T_INT, OFF(train.max_skipped_steps), 0, 1000000, 0, NULL},

    {"checkpoint", "dir", T_STR, OFF(checkpoint.dir), 0, 0, 0, NULL},
    {"checkpoint", "every", T_LONG, OFF(checkpoint.every), 0, BIG, 0, NULL},
    {"checkpoint", "keep", T_INT, OFF(checkpoint.keep), 1, 1000000, 0, NULL},
    {"checkpoint", "resume", T_STR, OFF(checkpoint.resume), 0, 0, 0, NULL},

    {"log", "every", T_INT, OFF(log.every), 1, INT_MAX, 0, NULL},
    {"log", "file", T_STR, OFF(log.file), 0, 0, 0, NULL},
    {"log", "eval-every", T_LONG, OFF(log.eval_every), 0, BIG, 0, NULL},
};
#define N_KEYS ((int)(sizeof keys / sizeof keys[0]))
static const char *const sections[] = {"model", "data", "optim", "parallel", "train",
                                       "checkpoint", "log"};
#define N_SECTIONS ((int)(sizeof sections / sizeof sections[0]))

void nv_config_defaults(nv_config *c) {
    memset(c, 0, sizeof *c);
    nv_model_config *m = &c->model;
    m->num_layers = 2;
    m->hidden_size = 64;
    m->ffn_hidden_size = 172;
    m->num_attn_heads = 4;
    m->vocab_size = 16;
    m->local_window = 128;
    m->global_attn_every = 3;
    m->rope_theta_global = 160000;
    m->rope_theta_local = 10000;
    m->structure_input = 1;
    m->first_attn_norm = 0; // ModernBERT; configs saved before the key existed mean 1
    m->struct_loss_weight = 0.5;
    nv_data_config *d = &c->data;
    d->seq_length = 256;
    d->micro_batch = 4;
    d->global_batch = 4;
    d->mask_rate = 0.15;
    d->span_fraction = 0.5;
    d->span_p = 0.2;
    d->span_max = 10;
    d->pair_mask_rate = 0.5;
    d->struct_hide_rate = 0.5;
    d->seed = 1234;
    nv_optim_config *o = &c->optim;
    o->lr = 1e-3;
    o->min_lr = 1e-4;
    o->warmup_steps = 100;
    o->weight_decay = 0.01;
    o->beta1 = 0.9;
    o->beta2 = 0.98;
    o->eps = 1e-8;
    o->grad_clip = 1.0;
    c->parallel.tensor = 1;
    c->parallel.zero1 = 0;
    c->parallel.overlap = 1;
    nv_train_config *t = &c->train;
    t->steps = 1000;
    t->device = NV_DEVICE_AUTO;
    t->precision = NV_PREC_BF16;
    t->recompute = 0;
    t->attention = NV_ATTN_AUTO;
    t->exit_after_minutes = 0;
    t->seed = 42;
    t->max_skipped_steps = 5;
    c->checkpoint.every = 1000;
    c->checkpoint.keep = 3;
    strcpy(c->checkpoint.resume, "auto");
    c->log.every = 10;
    c->log.eval_every = 0;
}

// ----------------------------------------------------------------------------
// values

static const key_def *find_key(const char *section, const char *key) {
    for (int i = 0; i < N_KEYS; i++)
        if (!strcmp(keys[i].section, section) && !strcmp(keys[i].key, key)) return &keys[i];
    return NULL;
}

static int is_section(const char *s) {
    for (int i = 0; i < N_SECTIONS; i++)
        if (!strcmp(sections[i], s)) return 1;
    return 0;
}

static void list_sections(char *buf, size_t n) {
    size_t len = 0;
    buf[0] = 0;
    for (int i = 0; i < N_SECTIONS && len < n; i++)
        len += snprintf(buf + len, n - len, "%s[%s]", i ? " " : "", sections[i]);
}

static void list_keys(const char *section, char *buf, size_t n) {
    size_t len = 0;
    buf[0] = 0;
    for (int i = 0; i < N_KEYS && len < n; i++)
        if (!strcmp(keys[i].section, section))
            len += snprintf(buf + len, n - len, "%s%s", len ? " " : "", keys[i].key);
}

// Shortest %g form that reads back to the same double, so written configs stay readable.
static void fmt_double(char *buf, size_t n, double v) {
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, n, "%.*g", prec, v);
        if (strtod(buf, NULL) == v) return;
    }
}

static void describe_range(const key_def *k, char *buf, size_t n) {
    char lo[32], hi[32];
    if (k->type == T_DOUBLE) {
        fmt_double(lo, sizeof lo, k->min);
        fmt_double(hi, sizeof hi, k->max);
    } else {
        snprintf(lo, sizeof lo, "%.0f", k->min);
        snprintf(hi, sizeof hi, "%.0f", k->max);
    }
    if (k->min == k->max) snprintf(buf, n, "%s", lo);
    else snprintf(buf, n, "%s %s x %s %s", lo, (k->open & OPEN_LO) ? "<" : "<=",
                  (k->open & OPEN_HI) ? "<" : "<=", hi);
}

static int in_range(const key_def *k, double v) {
    if ((k->open & OPEN_LO) ? !(v > k->min) : !(v >= k->min)) return 0;
    if ((k->open & OPEN_HI) ? !(v < k->max) : !(v <= k->max)) return 0;
    return 1;
}

// Parse `text` into the field of k. On failure fills why (what is wrong + expected ...).
static int set_value(nv_config *c, const key_def *k, const char *text, char *why, size_t n) {
    char *p = (char *)c + k->offset;
    char *end;
    char range[96];
    describe_range(k, range, sizeof range);
    switch (k->type) {
    case T_INT:
    case T_LONG: {
        errno = 0;
        long long v = strtoll(text, &end, 10);
        if (!*text || *end || errno == ERANGE) {
            snprintf(why, n, "bad value '%s' (expected an integer %s)", text, range);
            return -1;
        }
        if (!in_range(k, (double)v)) {
            snprintf(why, n, "%lld is out of range (expected %s)", v, range);
            return -1;
        }
        if (k->type == T_INT) *(int *)p = (int)v;
        else *(long *)p = (long)v;
        return 0;
    }
    case T_DOUBLE: {
        double v = strtod(text, &end);
        if (!*text || *end || !isfinite(v)) {
            snprintf(why, n, "bad value '%s' (expected a number %s)", text, range);
            return -1;
        }
        if (!in_range(k, v)) {
            snprintf(why, n, "%s is out of range (expected %s)", text, range);
            return -1;
        }
        *(double *)p = v;
        return 0;
    }
    case T_BOOL: {
        static const char *const yes[] = {"true", "1", "yes", "on"};
        static const char *const no[] = {"false", "0", "no", "off"};
        for (int i = 0; i < 4; i++) {
            if (!strcasecmp(text, yes[i])) { *(int *)p = 1; return 0; }
            if (!strcasecmp(text, no[i])) { *(int *)p = 0; return 0; }
        }
        snprintf(why, n, "bad value '%s' (expected true, false, yes, no, on, off, 1 or 0)", text);
        return -1;
    }
    case T_U64: {
        errno = 0;
        unsigned long long v = strtoull(text, &end, 10);
        // strtoull accepts and negates "-1": refuse any sign
        if (!*text || *end || errno == ERANGE || text[0] == '-' || text[0] == '+') {
            snprintf(why, n, "bad value '%s' (expected an unsigned 64-bit integer)", text);
            return -1;
        }
        *(uint64_t *)p = (uint64_t)v;
        return 0;
    }
    case T_ENUM: {
        for (int i = 0; k->names[i]; i++)
            if (!strcasecmp(text, k->names[i])) { *(int *)p = i; return 0; }
        size_t len = (size_t)snprintf(why, n, "bad value '%s' (expected ", text);
        for (int i = 0; k->names[i] && len < n; i++)
            len += snprintf(why + len, n - len, "%s%s", i == 0 ? "" : k->names[i + 1] ? ", " : " or ",
                            k->names[i]);
        if (len < n) snprintf(why + len, n - len, ")");
        return -1;
    }
    case T_STR: {
        size_t len = strlen(text);
        // one pair of surrounding double quotes is syntax ("" = empty), not content
        if (len >= 2 && text[0] == '"' && text[len - 1] == '"') {
            text++;
            len -= 2;
        }
        if (len >= NV_PATH_MAX) {
            snprintf(why, n, "value too long (%zu characters; expected at most %d)", len,
                     NV_PATH_MAX - 1);
            return -1;
        }
        // what nv_config_write could not write back (the config is saved in every
        // checkpoint): a line break, or " ;" (an inline comment to libinih); only an override
        // can hold them (found by tests/fuzz/fuzz_config)
        for (size_t i = 0; i < len; i++)
            if (text[i] == '\n' || text[i] == '\r' || (text[i] == ';' && i > 0 && isspace((unsigned char)text[i - 1]))) {
                snprintf(why, n, "bad value: a line break or ' ;' cannot be stored in the saved config");
                return -1;
            }
        memcpy(p, text, len);
        p[len] = 0;
        return 0;
    }
    }
    return -1;
}

static void write_value(const nv_config *c, const key_def *k, FILE *f) {
    const char *p = (const char *)c + k->offset;
    char buf[64];
    switch (k->type) {
    case T_INT: fprintf(f, "%d", *(const int *)p); break;
    case T_LONG: fprintf(f, "%ld", *(const long *)p); break;
    case T_DOUBLE: fmt_double(buf, sizeof buf, *(const double *)p); fputs(buf, f); break;
    case T_BOOL: fputs(*(const int *)p ? "true" : "false", f); break;
    case T_U64: fprintf(f, "%llu", (unsigned long long)*(const uint64_t *)p); break;
    case T_ENUM: {
        int v = *(const int *)p, n = 0;
        while (k->names[n]) n++;
        fputs(v >= 0 && v < n ? k->names[v] : "?", f);
        break;
    }
    case T_STR: fprintf(f, "\"%s\"", p); break;
    }
}

// Strings are written in double quotes; one holding a newline or " ;" (an inline comment
// to libinih) would not read back, so the parser refuses those.
void nv_config_write(const nv_config *c, FILE *f) {
    const char *section = "";
    for (int i = 0; i < N_KEYS; i++) {
        if (strcmp(section, keys[i].section)) {
            section = keys[i].section;
            fprintf(f, "%s[%s]\n", i ? "\n" : "", section);
        }
        fprintf(f, "%s = ", keys[i].key);
        write_value(c, &keys[i], f);
        fputc('\n', f);
    }
}

// ----------------------------------------------------------------------------
// parsing

typedef struct parse_ctx {
    nv_config *c;
    const char *name;       // file name for messages
    const char *pos;        // reader cursor in the text
    int line;               // lines handed to libinih so far = line of the current handler call
    int line_indented;      // current line starts with white space (a continuation line)
    int seen[N_KEYS];       // line where each key was set, 0 = not yet
    int prev_key;           // key of the previous handler call (continuation lines)
    int err_line;           // first error's line, 0 = none
    int long_line;          // line whose value sits in long_value (see long_line())
    size_t long_size;       // its untruncated length
    char long_value[NV_PATH_MAX + 2]; // + the quotes
    nv_error *err;
} parse_ctx;

static void fail(parse_ctx *x, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail(parse_ctx *x, const char *fmt, ...) {
    if (x->err_line) return; // keep the first error only
    x->err_line = x->line;
    char msg[900];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    nv_seterr(x->err, "%s:%d: %s", x->name, x->line, msg);
}

// libinih's line buffer is ~200 bytes, but paths (and configs written back into checkpoints)
// can be longer. A long `key = value` line reaches libinih as `key = \x01` while the value,
// trimmed and with its inline comment cut as libinih would, waits in x->long_value.
// Comment lines are cut (harmless); anything else long is an error. Returns 1 if handled.
static int long_line(parse_ctx *x, const char *s, size_t len, char *str, size_t num) {
    size_t i = 0;
    while (i < len && (s[i] == ' ' || s[i] == '\t')) i++;
    if (i < len && (s[i] == ';' || s[i] == '#')) {
        memcpy(str, s, num - 1);
        str[num - 1] = 0;
        return 1;
    }
    size_t eq = i;
    while (eq < len && s[eq] != '=' && s[eq] != ':' && s[eq] != '[') eq++;
    if (eq == len || s[eq] == '[' || eq + 4 > num) {
        fail(x, "line too long (%zu characters; libinih reads at most %zu)", len, num - 1);
        str[0] = 0;
        return 1;
    }
    const char *v = s + eq + 1, *end = s + len;
    while (v < end && (*v == ' ' || *v == '\t')) v++;
    for (const char *c = v; c < end; c++)
        if (*c == ';' && c > v && (c[-1] == ' ' || c[-1] == '\t')) { end = c; break; }
    while (end > v && (end[-1] == ' ' || end[-1] == '\t')) end--;
    size_t n = (size_t)(end - v);
    x->long_size = n; // the handler refuses it with section and key if it does not fit
    if (n >= sizeof x->long_value) n = sizeof x->long_value - 1;
    memcpy(x->long_value, v, n);
    x->long_value[n] = 0;
    x->long_line = x->line;
    memcpy(str, s, eq + 1);
    str[eq + 1] = '\x01';
    str[eq + 2] = 0;
    return 1;
}

// fgets-style reader over the text: one whole line per call (no newline), counting lines.
// A line that does not fit libinih's buffer is an error here rather than silently split.
static char *read_line(char *str, int num, void *stream) {
    parse_ctx *x = stream;
    if (!*x->pos) return NULL;
    const char *eol = strchr(x->pos, '\n');
    size_t len = eol ? (size_t)(eol - x->pos) : strlen(x->pos);
    x->line++;
    const char *s = x->pos;
    x->pos += len + (eol ? 1 : 0);
    if (len > 0 && s[len - 1] == '\r') len--;
    if (len + 1 > (size_t)num && long_line(x, s, len, str, (size_t)num)) {
        x->line_indented = 0;
        return str;
    }
    memcpy(str, s, len);
    str[len] = 0;
    x->line_indented = len > 0 && (s[0] == ' ' || s[0] == '\t');
    // Section headers never reach the handler: check them here, so an unknown (even empty)
    // section is reported at its own line.
    const char *h = str;
    if (x->line == 1 && !strncmp(h, "\xEF\xBB\xBF", 3)) h += 3;
    while (*h == ' ' || *h == '\t') h++;
    const char *close = *h == '[' ? strchr(h, ']') : NULL;
    if (close) {
        char sec[128];
        size_t n = (size_t)(close - h - 1);
        if (n >= sizeof sec) n = sizeof sec - 1;
        memcpy(sec, h + 1, n);
        sec[n] = 0;
        // trim like libinih does
        char *a = sec;
        while (*a == ' ' || *a == '\t') a++;
        size_t m = strlen(a);
        while (m && (a[m - 1] == ' ' || a[m - 1] == '\t')) a[--m] = 0;
        if (!is_section(a)) {
            char list[256];
            list_sections(list, sizeof list);
            fail(x, "[%s]: unknown section (expected one of %s)", a, list);
        }
        x->prev_key = -1;
    }
    return str;
}

static int handler(void *user, const char *section, const char *name, const char *value) {
    parse_ctx *x = user;
    if (x->err_line) return 1; // report only the first error
    if (!*section) {
        fail(x, "%s: key outside any section (expected a [section] line before it)", name);
        return 0;
    }
    if (!is_section(section)) return 0; // already reported at the header
    const key_def *k = find_key(section, name);
    if (!k) {
        char list[512];
        list_keys(section, list, sizeof list);
        fail(x, "[%s] %s: unknown key (expected one of: %s)", section, name, list);
        return 0;
    }
    int ki = (int)(k - keys);
    if (x->line_indented && ki == x->prev_key) {
        fail(x, "[%s] %s: indented line continues the value (multi-line values are not "
                "supported; expected key = value on one line)", section, name);
        return 0;
    }
    if (x->seen[ki]) {
        fail(x, "[%s] %s: duplicate key (first set on line %d; expected each key once)", section,
             name, x->seen[ki]);
        return 0;
    }
    if (!strcmp(value, "\x01") && x->long_line == x->line) {
        if (x->long_size >= sizeof x->long_value) {
            fail(x, "[%s] %s: value too long (%zu characters; expected at most %d)", section,
                 name, x->long_size, NV_PATH_MAX - 1);
            return 0;
        }
        value = x->long_value;
    }
    x->seen[ki] = x->line;
    x->prev_key = ki;
    char why[512];
    if (set_value(x->c, k, value, why, sizeof why)) {
        fail(x, "[%s] %s: %s", section, name, why);
        return 0;
    }
    return 1;
}

int nv_config_parse_string(nv_config *c, const char *text, const char *name, nv_error *err) {
    parse_ctx x = {.c = c, .name = name, .pos = text, .prev_key = -1, .err = err};
    int r = ini_parse_stream(read_line, &x, handler, &x);
    if (x.err_line && (r <= 0 || x.err_line <= r)) return -1;
    if (r > 0)
        return nv_seterr(err, "%s:%d: syntax error (expected [section], key = value, or a "
                              "comment starting with ; or #)", name, r);
    if (r < 0) return nv_seterr(err, "%s: libinih failed (%d)", name, r);
    snprintf(c->source, sizeof c->source, "%s", name);
    return 0;
}

int nv_config_override(nv_config *c, const char *arg, nv_error *err) {
    const char *eq = strchr(arg, '=');
    const char *dot = strchr(arg, '.');
    if (!eq || !dot || dot > eq)
        return nv_seterr(err, "override '%s': expected section.key=value", arg);
    char section[64], key[64];
    size_t ns = (size_t)(dot - arg), nk = (size_t)(eq - dot - 1);
    if (ns >= sizeof section || nk >= sizeof key)
        return nv_seterr(err, "override '%s': section or key too long", arg);
    memcpy(section, arg, ns);
    section[ns] = 0;
    memcpy(key, dot + 1, nk);
    key[nk] = 0;
    char list[512];
    if (!is_section(section)) {
        list_sections(list, sizeof list);
        return nv_seterr(err, "override '%s': [%s]: unknown section (expected one of %s)", arg,
                         section, list);
    }
    const key_def *k = find_key(section, key);
    if (!k) {
        list_keys(section, list, sizeof list);
        return nv_seterr(err, "override '%s': [%s] %s: unknown key (expected one of: %s)", arg,
                         section, key, list);
    }
    char why[512];
    if (set_value(c, k, eq + 1, why, sizeof why))
        return nv_seterr(err, "override '%s': [%s] %s: %s", arg, section, key, why);
    return 0;
}

int nv_config_load(nv_config *c, const char *path, int n_overrides, char *const *overrides,
                   nv_error *err) {
    nv_config_defaults(c); // callers pass an uninitialized struct (see config.h)
    FILE *f = fopen(path, "rb");
    if (!f) return nv_seterr(err, "%s: cannot open config: %s", path, strerror(errno));
    size_t cap = 4096, len = 0;
    char *text = nv_malloc(cap);
    size_t got;
    while ((got = fread(text + len, 1, cap - len - 1, f)) > 0) {
        len += got;
        if (cap - len - 1 == 0) text = nv_realloc(text, cap *= 2);
    }
    int read_err = ferror(f);
    fclose(f);
    text[len] = 0;
    if (read_err) {
        free(text);
        return nv_seterr(err, "%s: read error", path);
    }
    if (memchr(text, 0, len)) {
        free(text);
        return nv_seterr(err, "%s: not a text file (NUL byte; expected an INI config)", path);
    }
    int r = nv_config_parse_string(c, text, path, err);
    free(text);
    if (r) return r;
    for (int i = 0; i < n_overrides; i++)
        if (nv_config_override(c, overrides[i], err)) return -1;
    return 0;
}

// ----------------------------------------------------------------------------
// cross-key checks

int nv_config_validate(const nv_config *c, int world_size, nv_error *err) {
    const nv_model_config *m = &c->model;
    const nv_data_config *d = &c->data;
    const char *src = c->source[0] ? c->source : "config";
    int tp = c->parallel.tensor;
    // Single keys again: a struct filled in code never went through the table's checks.
    for (int i = 0; i < N_KEYS; i++) {
        const key_def *k = &keys[i];
        const char *p = (const char *)c + k->offset;
        double v;
        if (k->type == T_INT) v = *(const int *)p;
        else if (k->type == T_LONG) v = (double)*(const long *)p;
        else if (k->type == T_DOUBLE) v = *(const double *)p;
        else if (k->type == T_BOOL || k->type == T_ENUM) {
            int n = 2, e = *(const int *)p;
            if (k->type == T_ENUM)
                for (n = 0; k->names[n];) n++;
            if (e < 0 || e >= n)
                return nv_seterr(err, "%s: [%s] %s: invalid value %d", src, k->section, k->key, e);
            continue;
        } else continue;
        if (!in_range(k, v)) {
            char range[96];
            describe_range(k, range, sizeof range);
            return nv_seterr(err, "%s: [%s] %s: %.17g is out of range (expected %s)", src,
                             k->section, k->key, v, range);
        }
    }
    if (world_size < 1) return nv_seterr(err, "%s: world size %d (expected >= 1)", src, world_size);
    if (m->hidden_size % m->num_attn_heads)
        return nv_seterr(err, "%s: [model] hidden-size: %d is not divisible by num-attn-heads %d",
                         src, m->hidden_size, m->num_attn_heads);
    if ((m->hidden_size / m->num_attn_heads) % 2)
        return nv_seterr(err, "%s: [model] hidden-size: head dim %d/%d = %d is odd (expected "
                              "even: RoPE rotates pairs)", src, m->hidden_size,
                         m->num_attn_heads, m->hidden_size / m->num_attn_heads);
    if (m->local_window % 2)
        return nv_seterr(err, "%s: [model] local-window: %d is odd (expected an even window; "
                              "radius = window/2)", src, m->local_window);
    if (m->num_attn_heads % tp)
        return nv_seterr(err, "%s: [model] num-attn-heads: %d is not divisible by [parallel] "
                              "tensor %d", src, m->num_attn_heads, tp);
    if (m->ffn_hidden_size % tp)
        return nv_seterr(err, "%s: [model] ffn-hidden-size: %d is not divisible by [parallel] "
                              "tensor %d", src, m->ffn_hidden_size, tp);
    if (world_size % tp)
        return nv_seterr(err, "%s: [parallel] tensor: world size %d is not divisible by tensor %d",
                         src, world_size, tp);
    int dp = world_size / tp;
    long per_step = (long)d->micro_batch * dp;
    if (d->global_batch % per_step)
        return nv_seterr(err, "%s: [data] global-batch: %d is not divisible by micro-batch %d x "
                              "data ranks %d = %ld", src, d->global_batch, d->micro_batch, dp,
                         per_step);
    if (d->global_batch / d->micro_batch > NV_CURSOR_MAX)
        return nv_seterr(err, "%s: [data] global-batch: %d / micro-batch %d = %d micro-batch "
                              "slots per step (expected at most %d; raise micro-batch)", src,
                         d->global_batch, d->micro_batch, d->global_batch / d->micro_batch,
                         NV_CURSOR_MAX);
    if (c->optim.min_lr > c->optim.lr)
        return nv_seterr(err, "%s: [optim] min-lr: %g is above lr %g (expected min-lr <= lr)", src,
                         c->optim.min_lr, c->optim.lr);
    if (d->span_max > d->seq_length - 2)
        return nv_seterr(err, "%s: [data] span-max: %d is longer than seq-length - 2 = %d", src,
                         d->span_max, d->seq_length - 2);
    if (!c->checkpoint.resume[0])
        return nv_seterr(err, "%s: [checkpoint] resume: empty (expected auto, none or a "
                              "checkpoint directory)", src);
    return 0;
}
