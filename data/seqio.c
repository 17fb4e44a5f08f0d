// seqio.c - streaming FASTA / dot-bracket / bpseq readers (see seqio.h for the formats).
//
// One buffered line reader under all three parsers: zlib's gzread fills a large buffer
// (it reads plain files unchanged), lines are found with memchr and handed out in place,
// so the hot path is one table lookup per nucleotide and no copies besides the output.
#include "data/seqio.h"
#include "data/vocab.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

enum { MAP_BAD = 0, MAP_DROP = 255 }; // entries of the byte -> token table besides 5..15
enum { SS_BAD = 0xFF };               // entry of the byte -> structure table
enum { DROP_MARK = 0 };               // token placeholder for a gap column to be dropped

struct nv_seqreader {
    gzFile gz;
    char *path;       // as given (or "<stdin>"), for messages
    char *base;       // basename without extension: names records that have no header
    nv_seqfmt fmt;
    int drop_gaps;
    // line buffer: [pos, end) unread; lines are returned in place
    char *buf;
    size_t cap, pos, end, scan, line_start;
    size_t nul_at; // the last line's terminator was written here over this byte
    char nul_was;
    int eof;
    uint64_t lineno;
    // tables
    uint8_t map[256], ssmap[256];
    // current record
    uint8_t *tok, *ss;
    uint64_t *aux; // bpseq: partner of each base, then its line; dbn: unused
    size_t rcap;
    char *id;
    size_t idcap;
    uint64_t nrec;
    int after_dbn; // the last record was dot-bracket: RNAfold -p extra lines may follow
};

int nv_seqfmt_parse(const char *s) {
    if (!strcmp(s, "auto")) return NV_FMT_AUTO;
    if (!strcmp(s, "fasta") || !strcmp(s, "fa")) return NV_FMT_FASTA;
    if (!strcmp(s, "dbn") || !strcmp(s, "db") || !strcmp(s, "dot-bracket")) return NV_FMT_DBN;
    if (!strcmp(s, "bpseq")) return NV_FMT_BPSEQ;
    return -1;
}

const char *nv_seqfmt_name(nv_seqfmt f) {
    switch (f) {
    case NV_FMT_FASTA: return "fasta";
    case NV_FMT_DBN: return "dbn";
    case NV_FMT_BPSEQ: return "bpseq";
    default: return "auto";
    }
}

nv_seqfmt nv_seqreader_format(const nv_seqreader *r) { return r->fmt; }

uint64_t nv_seqreader_offset(const nv_seqreader *r) {
    z_off_t o = gzoffset(r->gz);
    return o < 0 ? 0 : (uint64_t)o;
}

int nv_ss_balance(const uint8_t *ss, uint64_t len, uint64_t *bad_pos) {
    int64_t depth[4] = {0, 0, 0, 0};
    for (uint64_t i = 0; i < len; i++) {
        uint8_t s = ss[i];
        if (s == 0 || s > NV_SS_PK_LAST) continue;
        int type = (s - 1) / 2;
        if (s % 2) depth[type]++;
        else if (--depth[type] < 0) {
            if (bad_pos) *bad_pos = i;
            return -1;
        }
    }
    for (int type = 0; type < 4; type++) {
        if (depth[type] == 0) continue;
        // find the last unmatched opener of this type by scanning backwards
        int64_t d = 0;
        for (uint64_t i = len; i-- > 0;) {
            if (ss[i] == 2 * type + 2) d++;
            else if (ss[i] == 2 * type + 1 && --d < 0) {
                if (bad_pos) *bad_pos = i;
                return -1;
            }
        }
    }
    return 0;
}

// ---------------------------------------------------------------------------------------
// line reader

// zlib's messages start with the file name; ours already do.
static const char *gz_msg(nv_seqreader *r, int *code) {
    const char *m = gzerror(r->gz, code);
    size_t n = strlen(r->path);
    if (strncmp(m, r->path, n) == 0 && m[n] == ':') m += n + 1 + (m[n + 1] == ' ');
    return m;
}

// Read more input after `end`, moving the unread part [line_start, end) to the front.
static int refill(nv_seqreader *r, nv_error *err) {
    if (r->line_start > 0) {
        size_t keep = r->end - r->line_start;
        memmove(r->buf, r->buf + r->line_start, keep);
        r->pos -= r->line_start;
        r->scan -= r->line_start;
        r->end = keep;
        r->line_start = 0;
    }
    if (r->end == r->cap) {
        r->cap *= 2;
        r->buf = nv_realloc(r->buf, r->cap + 1);
    }
    int n = gzread(r->gz, r->buf + r->end, (unsigned)(r->cap - r->end > (1u << 30) ? (1u << 30) : r->cap - r->end));
    if (n < 0) {
        int code;
        const char *m = gz_msg(r, &code);
        return nv_seterr(err, "%s: line %llu: read error: %s%s", r->path, (unsigned long long)r->lineno + 1,
                         code == Z_ERRNO ? strerror(errno) : m, code == Z_ERRNO ? "" : " (damaged or truncated gzip file?)");
    }
    if (n == 0) {
        // zlib reports a truncated gzip stream at the end rather than as a read error
        int code;
        const char *m = gz_msg(r, &code);
        if (code != Z_OK && code != Z_STREAM_END)
            return nv_seterr(err, "%s: line %llu: read error: %s (damaged or truncated gzip file?)", r->path,
                             (unsigned long long)r->lineno + 1, m);
        r->eof = 1;
    }
    r->end += (size_t)n;
    return 0;
}

// Next line, without its '\n' and trailing blanks/'\r'. 1: a line; 0: end of input; -1: error.
static int get_line(nv_seqreader *r, char **line, size_t *len, nv_error *err) {
    r->line_start = r->pos;
    r->scan = r->pos;
    for (;;) {
        char *nl = memchr(r->buf + r->scan, '\n', r->end - r->scan);
        size_t stop;
        if (nl) {
            stop = (size_t)(nl - r->buf);
            r->pos = stop + 1;
        } else if (r->eof) {
            if (r->line_start == r->end) return 0;
            stop = r->end;
            r->pos = r->end;
        } else {
            r->scan = r->end;
            if (refill(r, err) != 0) return -1;
            continue;
        }
        char *s = r->buf + r->line_start;
        size_t n = stop - r->line_start;
        while (n > 0 && (s[n - 1] == '\r' || s[n - 1] == ' ' || s[n - 1] == '\t')) n--;
        // terminate in place (buf has one spare byte); unget_line puts the byte back
        r->nul_at = r->line_start + n;
        r->nul_was = s[n];
        s[n] = '\0';
        *line = s;
        *len = n;
        r->lineno++;
        return 1;
    }
}

// Give the last line back: the next get_line returns it again.
static void unget_line(nv_seqreader *r) {
    r->buf[r->nul_at] = r->nul_was;
    r->pos = r->line_start;
    r->lineno--;
}

// ---------------------------------------------------------------------------------------
// helpers shared by the parsers

// aux holds two arrays of rcap entries (bpseq partners, then their lines): when it grows,
// the second half moves to its new start.
static void rec_reserve(nv_seqreader *r, size_t n, int with_aux) {
    if (n <= r->rcap && (!with_aux || r->aux)) return;
    size_t old = r->rcap, cap = r->rcap ? r->rcap : 4096;
    while (cap < n) cap *= 2;
    r->tok = nv_realloc(r->tok, cap);
    r->ss = nv_realloc(r->ss, cap);
    if (with_aux || r->aux) {
        int had = r->aux != NULL;
        r->aux = nv_realloc(r->aux, cap * 2 * sizeof(uint64_t));
        if (had && cap != old) memmove(r->aux + cap, r->aux + old, old * sizeof(uint64_t));
    }
    r->rcap = cap;
}

static void set_id(nv_seqreader *r, const char *s, size_t n) {
    if (n + 1 > r->idcap) {
        r->idcap = n + 64;
        r->id = nv_realloc(r->id, r->idcap);
    }
    memcpy(r->id, s, n);
    r->id[n] = '\0';
}

// Record id: the first word of a header text; a record with none is "<base>_<number>".
static void id_from_header(nv_seqreader *r, const char *h) {
    while (*h == ' ' || *h == '\t') h++;
    size_t n = strcspn(h, " \t");
    if (n == 0) {
        char tmp[64];
        int k = snprintf(tmp, sizeof tmp, "_%llu", (unsigned long long)r->nrec);
        size_t b = strlen(r->base);
        if (b + (size_t)k + 1 > r->idcap) {
            r->idcap = b + (size_t)k + 64;
            r->id = nv_realloc(r->id, r->idcap);
        }
        memcpy(r->id, r->base, b);
        memcpy(r->id + b, tmp, (size_t)k + 1);
        return;
    }
    set_id(r, h, n);
}

// A header line must be text: control bytes mean binary input.
static int check_text(nv_seqreader *r, const char *s, size_t n, nv_error *err) {
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c < 0x20 && c != '\t') || c == 0x7f)
            return nv_seterr(err, "%s: record %llu, line %llu, column %zu: byte 0x%02x is not text (binary input?)",
                             r->path, (unsigned long long)(r->nrec ? r->nrec : 1), (unsigned long long)r->lineno, i + 1, c);
    }
    return 0;
}

static int bad_char(nv_seqreader *r, const char *what, unsigned char c, size_t col, nv_error *err) {
    if (c >= 0x20 && c < 0x7f)
        return nv_seterr(err, "%s: record %llu '%s', line %llu, column %zu: invalid %s character '%c'", r->path,
                         (unsigned long long)r->nrec, r->id, (unsigned long long)r->lineno, col, what, c);
    return nv_seterr(err, "%s: record %llu '%s', line %llu, column %zu: invalid %s byte 0x%02x (binary input?)",
                     r->path, (unsigned long long)r->nrec, r->id, (unsigned long long)r->lineno, col, what, c);
}

// Map one sequence line onto tok[*n ...]. With keep_marks, dropped gaps leave DROP_MARK
// (dot-bracket drops their structure column later); otherwise they vanish.
static int map_seq(nv_seqreader *r, const char *s, size_t len, size_t *n, int keep_marks, nv_error *err) {
    rec_reserve(r, *n + len, 0);
    uint8_t *out = r->tok + *n;
    const uint8_t *map = r->map;
    size_t k = 0;
    for (size_t i = 0; i < len; i++) {
        uint8_t t = map[(uint8_t)s[i]];
        if ((uint8_t)(t - NV_FIRST_NT) <= NV_VOCAB - 1 - NV_FIRST_NT) {
            out[k++] = t;
        } else if (t == MAP_DROP) {
            if (keep_marks) out[k++] = DROP_MARK;
        } else {
            return bad_char(r, "sequence", (uint8_t)s[i], i + 1, err);
        }
    }
    *n += k;
    return 0;
}

static int is_blank(const char *s, size_t n) { return n == 0 || (n == 1 && s[0] == ' '); }

static int starts_with(const char *s, const char *p) { return strncmp(s, p, strlen(p)) == 0; }

// "#Name: X" (bpRNA) or "Filename: X" (CRW bpseq) header: the name, or NULL.
static const char *name_header(const char *s) {
    if (starts_with(s, "#Name:")) return s + 6;
    if (starts_with(s, "# Name:")) return s + 7;
    if (starts_with(s, "Filename:")) return s + 9;
    return NULL;
}

// Length of the structure part of a dot-bracket line: all of it, or the part before
// RNAfold's " (-12.30)" / " [-13.1]" / " {-11.9 d=2.1}". -1 if the line is not one.
static long struct_part(const nv_seqreader *r, const char *s, size_t n, int allow_extra) {
    size_t k = 0;
    while (k < n && s[k] != ' ' && s[k] != '\t') {
        if (r->ssmap[(uint8_t)s[k]] == SS_BAD) return -1;
        k++;
    }
    if (k == n) return (long)k;
    size_t e = k;
    while (e < n && (s[e] == ' ' || s[e] == '\t')) e++;
    char open = s[e], close = s[n - 1];
    if ((open == '(' && close == ')') || (allow_extra && ((open == '[' && close == ']') || (open == '{' && close == '}'))))
        return (long)k;
    return -1;
}

static int is_bpseq_line(const char *s, size_t n) {
    size_t i = 0;
    while (i < n && (s[i] == ' ' || s[i] == '\t')) i++;
    size_t d = i;
    while (i < n && s[i] >= '0' && s[i] <= '9') i++;
    if (i == d || i == n || (s[i] != ' ' && s[i] != '\t')) return 0;
    while (i < n && (s[i] == ' ' || s[i] == '\t')) i++;
    if (i == n) return 0;
    i++; // the base
    if (i == n || (s[i] != ' ' && s[i] != '\t')) return 0;
    while (i < n && (s[i] == ' ' || s[i] == '\t')) i++;
    d = i;
    while (i < n && s[i] >= '0' && s[i] <= '9') i++;
    return i > d && i == n;
}

// ---------------------------------------------------------------------------------------
// FASTA

static int fasta_next(nv_seqreader *r, nv_seqrec *rec, nv_error *err) {
    char *s;
    size_t n;
    int rc;
    for (;;) { // find the header
        if ((rc = get_line(r, &s, &n, err)) <= 0) return rc;
        if (is_blank(s, n) || s[0] == ';') continue;
        if (s[0] == '>') break;
        r->nrec++;
        if (check_text(r, s, n, err) != 0) return -1;
        return nv_seterr(err, "%s: record %llu, line %llu, column 1: expected a '>' header line, found '%.20s'",
                         r->path, (unsigned long long)r->nrec, (unsigned long long)r->lineno, s);
    }
    r->nrec++;
    uint64_t hline = r->lineno;
    if (check_text(r, s, n, err) != 0) return -1;
    id_from_header(r, s + 1);
    size_t len = 0, lines = 0;
    while ((rc = get_line(r, &s, &n, err)) > 0) {
        if (s[0] == '>') {
            unget_line(r);
            break;
        }
        if (n == 0 || s[0] == ';') continue;
        lines++;
        if (map_seq(r, s, n, &len, 0, err) != 0) return -1;
    }
    if (rc < 0) return -1;
    if (lines == 0)
        return nv_seterr(err, "%s: record %llu '%s', line %llu: header without sequence lines (truncated record?)",
                         r->path, (unsigned long long)r->nrec, r->id, (unsigned long long)hline);
    rec->id = r->id;
    rec->tok = r->tok;
    rec->ss = NULL;
    rec->len = len;
    rec->number = r->nrec;
    rec->line = hline;
    return 1;
}

// ---------------------------------------------------------------------------------------
// dot-bracket

static int dbn_next(nv_seqreader *r, nv_seqrec *rec, nv_error *err) {
    char *s;
    size_t n;
    int rc, have_header = 0;
    uint64_t hline = 0;
    for (;;) {
        rc = get_line(r, &s, &n, err);
        if (rc < 0) return -1;
        if (rc == 0) {
            if (have_header)
                return nv_seterr(err, "%s: record %llu '%s', line %llu: header without sequence and structure lines (truncated record)",
                                 r->path, (unsigned long long)r->nrec, r->id, (unsigned long long)hline);
            return 0;
        }
        if (is_blank(s, n)) continue;
        if (s[0] == '#') {
            const char *nm = name_header(s);
            if (nm && !have_header) {
                if (check_text(r, s, n, err) != 0) return -1;
                r->nrec++;
                id_from_header(r, nm);
                have_header = 1;
                hline = r->lineno;
            }
            continue;
        }
        if (s[0] == '>') {
            if (have_header)
                return nv_seterr(err, "%s: record %llu '%s', line %llu: header without sequence and structure lines (truncated record)",
                                 r->path, (unsigned long long)r->nrec, r->id, (unsigned long long)hline);
            r->nrec++;
            if (check_text(r, s, n, err) != 0) return -1;
            id_from_header(r, s + 1);
            have_header = 1;
            hline = r->lineno;
            continue;
        }
        // RNAfold -p prints more structures (" [ensemble energy]", " {centroid ...}") after one
        if (!have_header && r->after_dbn && struct_part(r, s, n, 1) >= 0 && n > 0 && memchr(s, ' ', n)) continue;
        break;
    }
    if (!have_header) { // a sequence line with no header: the record is named by its number
        r->nrec++;
        id_from_header(r, "");
        hline = r->lineno;
    }
    r->after_dbn = 0;
    // sequence line
    size_t len = 0, seq_cols = n;
    uint64_t sline = r->lineno;
    if (map_seq(r, s, n, &len, r->drop_gaps, err) != 0) return -1;
    // structure line
    do {
        rc = get_line(r, &s, &n, err);
    } while (rc > 0 && is_blank(s, n));
    if (rc < 0) return -1;
    if (rc == 0 || s[0] == '>' || s[0] == '#')
        return nv_seterr(err, "%s: record %llu '%s', line %llu: missing structure line after the sequence (truncated record)",
                         r->path, (unsigned long long)r->nrec, r->id, (unsigned long long)(rc == 0 ? sline : r->lineno));
    long k = struct_part(r, s, n, 0);
    if (k < 0) { // name the first offending column
        size_t i = 0;
        while (i < n && r->ssmap[(uint8_t)s[i]] != SS_BAD) i++;
        if (i < n && (s[i] == ' ' || s[i] == '\t'))
            return nv_seterr(err, "%s: record %llu '%s', line %llu, column %zu: unexpected text after the structure "
                                  "(only an RNAfold energy such as ' (-12.30)' may follow)",
                             r->path, (unsigned long long)r->nrec, r->id, (unsigned long long)r->lineno, i + 1);
        return bad_char(r, "structure", (uint8_t)s[i], i + 1, err);
    }
    if ((size_t)k != seq_cols)
        return nv_seterr(err, "%s: record %llu '%s', line %llu, column %zu: structure has %ld columns but the sequence has %zu",
                         r->path, (unsigned long long)r->nrec, r->id, (unsigned long long)r->lineno,
                         (size_t)k < seq_cols ? (size_t)k + 1 : seq_cols + 1, k, seq_cols);
    rec_reserve(r, seq_cols, 0);
    for (size_t i = 0; i < seq_cols; i++) r->ss[i] = r->ssmap[(uint8_t)s[i]];
    uint64_t bad;
    if (nv_ss_balance(r->ss, seq_cols, &bad) != 0)
        return nv_seterr(err, "%s: record %llu '%s', line %llu, column %llu: unbalanced bracket '%c'", r->path,
                         (unsigned long long)r->nrec, r->id, (unsigned long long)r->lineno, (unsigned long long)bad + 1,
                         s[bad]);
    if (r->drop_gaps) { // drop gap columns, which must be unpaired
        size_t w = 0;
        for (size_t i = 0; i < seq_cols; i++) {
            if (r->tok[i] == DROP_MARK) {
                if (r->ss[i] != NV_SS_UNPAIRED)
                    return nv_seterr(err, "%s: record %llu '%s', line %llu, column %zu: gap '%c' is paired, it cannot be dropped",
                                     r->path, (unsigned long long)r->nrec, r->id, (unsigned long long)sline, i + 1, '-');
                continue;
            }
            r->tok[w] = r->tok[i];
            r->ss[w] = r->ss[i];
            w++;
        }
        len = w;
    }
    r->after_dbn = 1;
    rec->id = r->id;
    rec->tok = r->tok;
    rec->ss = r->ss;
    rec->len = len;
    rec->number = r->nrec;
    rec->line = hline;
    return 1;
}

// ---------------------------------------------------------------------------------------
// bpseq

static uint64_t parse_u64(const char **p) {
    uint64_t v = 0;
    while (**p >= '0' && **p <= '9') {
        v = v * 10 + (uint64_t)(**p - '0');
        if (v > (1ull << 40)) v = 1ull << 40; // saturate: any index this large is wrong anyway
        (*p)++;
    }
    return v;
}

// Pairs to brackets: each pair takes the first layer it does not cross ('(' then '[' '{' '<').
static int bpseq_brackets(nv_seqreader *r, size_t n, nv_error *err) {
    uint64_t *partner = r->aux, *lines = r->aux + r->rcap;
    for (size_t i = 0; i < n; i++) {
        uint64_t j = partner[i];
        if (j == 0) continue;
        if (j > n || j == i + 1 || partner[j - 1] != i + 1)
            return nv_seterr(err, "%s: record %llu '%s', line %llu, column 1: base %zu pairs with %llu, %s", r->path,
                             (unsigned long long)r->nrec, r->id, (unsigned long long)lines[i], i + 1,
                             (unsigned long long)j,
                             j > n ? "which is past the end of the record" : j == i + 1 ? "itself" : "but that base does not pair back");
    }
    // four stacks of closing positions, one per layer, stored in tok[]-sized scratch
    size_t *stack = nv_malloc(4 * (n ? n : 1) * sizeof(size_t));
    size_t top[4] = {0, 0, 0, 0};
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        uint64_t j = partner[i];
        if (j == 0) { r->ss[i] = NV_SS_UNPAIRED; continue; }
        if (j - 1 < i) continue; // the closing side: set with its opener
        int layer = -1;
        for (int k = 0; k < 4 && layer < 0; k++) {
            size_t *st = stack + (size_t)k * n;
            while (top[k] > 0 && st[top[k] - 1] < i) top[k]--;
            if (top[k] == 0 || st[top[k] - 1] > j - 1) {
                st[top[k]++] = j - 1;
                layer = k;
            }
        }
        if (layer < 0) {
            rc = nv_seterr(err, "%s: record %llu '%s', line %llu, column 1: pair %zu-%llu crosses four bracket layers "
                                "(dot-bracket has only ( [ { <)",
                           r->path, (unsigned long long)r->nrec, r->id, (unsigned long long)lines[i], i + 1,
                           (unsigned long long)j);
            break;
        }
        r->ss[i] = (uint8_t)(2 * layer + 1);
        r->ss[j - 1] = (uint8_t)(2 * layer + 2);
    }
    free(stack);
    return rc;
}

static int bpseq_next(nv_seqreader *r, nv_seqrec *rec, nv_error *err) {
    char *s;
    size_t n;
    int rc, have_name = 0;
    uint64_t hline = 0;
    size_t len = 0;
    while ((rc = get_line(r, &s, &n, err)) > 0) {
        if (is_blank(s, n)) continue;
        if (!is_bpseq_line(s, n)) {
            if (len > 0) { // a header: the next record starts here
                unget_line(r);
                break;
            }
            if (check_text(r, s, n, err) != 0) return -1;
            const char *nm = s[0] == '>' ? s + 1 : name_header(s);
            if (nm && !have_name) {
                r->nrec++;
                id_from_header(r, nm);
                have_name = 1;
                hline = r->lineno;
            } else if (nm) {
                return nv_seterr(err, "%s: record %llu '%s', line %llu: header without base lines (truncated record)",
                                 r->path, (unsigned long long)r->nrec, r->id, (unsigned long long)hline);
            } else if (s[0] != '#' && !strchr(s, ':')) {
                // not a comment nor a "Key: value" header line of CRW files
                if (!have_name) {
                    r->nrec++;
                    id_from_header(r, "");
                }
                return nv_seterr(err, "%s: record %llu '%s', line %llu, column 1: expected 'index base partner', found '%.20s'",
                                 r->path, (unsigned long long)r->nrec, r->id, (unsigned long long)r->lineno, s);
            }
            continue;
        }
        const char *p = s;
        while (*p == ' ' || *p == '\t') p++;
        size_t icol = (size_t)(p - s) + 1;
        uint64_t idx = parse_u64(&p);
        if (idx == 1 && len > 0) { // index restarts: a new record without a header
            unget_line(r);
            break;
        }
        if (len == 0) {
            if (!have_name) {
                r->nrec++;
                id_from_header(r, "");
                hline = r->lineno;
            }
            have_name = 1;
        }
        if (idx != len + 1)
            return nv_seterr(err, "%s: record %llu '%s', line %llu, column %zu: index %llu, expected %zu", r->path,
                             (unsigned long long)r->nrec, r->id, (unsigned long long)r->lineno, icol,
                             (unsigned long long)idx, len + 1);
        while (*p == ' ' || *p == '\t') p++;
        size_t bcol = (size_t)(p - s) + 1;
        uint8_t t = r->map[(uint8_t)*p];
        if (t == MAP_BAD) return bad_char(r, "base", (uint8_t)*p, bcol, err);
        p++;
        while (*p == ' ' || *p == '\t') p++;
        uint64_t j = parse_u64(&p);
        rec_reserve(r, len + 1, 1);
        r->tok[len] = t == MAP_DROP ? DROP_MARK : t;
        r->aux[len] = j;
        r->aux[r->rcap + len] = r->lineno;
        len++;
    }
    if (rc < 0) return -1;
    if (len == 0) {
        if (have_name)
            return nv_seterr(err, "%s: record %llu '%s', line %llu: header without base lines (truncated record)",
                             r->path, (unsigned long long)r->nrec, r->id, (unsigned long long)hline);
        return 0;
    }
    if (bpseq_brackets(r, len, err) != 0) return -1;
    size_t w = 0;
    for (size_t i = 0; i < len; i++) {
        if (r->tok[i] == DROP_MARK) {
            if (r->ss[i] != NV_SS_UNPAIRED)
                return nv_seterr(err, "%s: record %llu '%s', line %llu, column 1: gap base %zu is paired, it cannot be dropped",
                                 r->path, (unsigned long long)r->nrec, r->id,
                                 (unsigned long long)r->aux[r->rcap + i], i + 1);
            continue;
        }
        r->tok[w] = r->tok[i];
        r->ss[w] = r->ss[i];
        w++;
    }
    rec->id = r->id;
    rec->tok = r->tok;
    rec->ss = r->ss;
    rec->len = w;
    rec->number = r->nrec;
    rec->line = hline;
    return 1;
}

// ---------------------------------------------------------------------------------------
// detection, open, next, close

// Guess the format from the first records in the buffer (read ahead up to 4 MiB).
static int detect(nv_seqreader *r, nv_error *err) {
    while (!r->eof && r->end < (4u << 20)) {
        r->scan = r->end;
        if (refill(r, err) != 0) return -1;
    }
    // walk lines in place (without consuming them)
    const char *lines[8];
    size_t lens[8];
    int nl = 0, seen_content = 0;
    size_t p = 0;
    while (p < r->end && nl < 8) {
        const char *s = r->buf + p;
        const char *e = memchr(s, '\n', r->end - p);
        size_t n = e ? (size_t)(e - s) : r->end - p;
        p += n + 1;
        while (n > 0 && (s[n - 1] == '\r' || s[n - 1] == ' ' || s[n - 1] == '\t')) n--;
        if (n == 0) continue;
        for (size_t i = 0; i < n; i++) {
            unsigned char c = (unsigned char)s[i];
            if ((c < 0x20 && c != '\t') || c == 0x7f)
                return nv_seterr(err, "%s: record 1, line %d, column %zu: byte 0x%02x is not text (binary input?)",
                                 r->path, nl + 1, i + 1, c);
        }
        seen_content = 1;
        if (is_bpseq_line(s, n)) { r->fmt = NV_FMT_BPSEQ; return 0; }
        if (s[0] == '#' || name_header(s) || (nl == 0 && s[0] != '>' && memchr(s, ':', n))) {
            if (name_header(s) && starts_with(s, "Filename:")) { r->fmt = NV_FMT_BPSEQ; return 0; }
            continue;
        }
        lines[nl] = s;
        lens[nl] = n;
        nl++;
    }
    if (!seen_content) return nv_seterr(err, "%s: empty input (no records)", r->path);
    int first_seq = (nl > 0 && lines[0][0] == '>') ? 1 : 0;
    if (nl > first_seq + 1) {
        long k = struct_part(r, lines[first_seq + 1], lens[first_seq + 1], 0);
        // a dot-bracket record is one sequence line then a structure line of the same length
        const char *third = nl > first_seq + 2 ? lines[first_seq + 2] : NULL;
        if (k >= 0 && (size_t)k == lens[first_seq] && lines[first_seq][0] != '>' &&
            (!third || third[0] == '>' || !first_seq || struct_part(r, third, lens[first_seq + 2], 1) >= 0)) {
            r->fmt = NV_FMT_DBN;
            return 0;
        }
    }
    if (first_seq) { r->fmt = NV_FMT_FASTA; return 0; }
    return nv_seterr(err, "%s: record 1, line 1: cannot tell the format (FASTA, dot-bracket or bpseq) from '%.20s'; "
                          "use --format", r->path, nl > 0 ? lines[0] : "");
}

nv_seqreader *nv_seqreader_open(const char *path, nv_seqfmt fmt, int drop_gaps, nv_error *err) {
    int is_stdin = strcmp(path, "-") == 0;
    gzFile gz;
    if (is_stdin) {
        int fd = dup(0);
        gz = fd >= 0 ? gzdopen(fd, "rb") : NULL;
    } else {
        gz = gzopen(path, "rb");
    }
    if (!gz) {
        nv_seterr(err, "%s: cannot open: %s", is_stdin ? "<stdin>" : path, errno ? strerror(errno) : "out of memory");
        return NULL;
    }
    gzbuffer(gz, 1 << 18);
    nv_seqreader *r = nv_calloc(1, sizeof *r);
    r->gz = gz;
    r->path = nv_strdup(is_stdin ? "<stdin>" : path);
    const char *b = strrchr(r->path, '/');
    r->base = nv_strdup(b ? b + 1 : r->path);
    char *dot = strchr(r->base, '.');
    if (dot && dot != r->base) *dot = '\0';
    r->fmt = fmt;
    r->drop_gaps = drop_gaps;
    r->cap = 1 << 20;
    r->buf = nv_malloc(r->cap + 1);
    for (int c = 0; c < 256; c++) {
        int t = nv_tok_from_char(c);
        r->map[c] = t < 0 ? MAP_BAD : (drop_gaps && nv_is_gap_char(c)) ? MAP_DROP : (uint8_t)t;
        int ss = nv_ss_from_char(c);
        r->ssmap[c] = ss < 0 ? SS_BAD : (uint8_t)ss;
    }
    r->id = nv_strdup("");
    r->idcap = 1;
    if (fmt == NV_FMT_AUTO && detect(r, err) != 0) {
        nv_seqreader_close(r);
        return NULL;
    }
    return r;
}

int nv_seqreader_next(nv_seqreader *r, nv_seqrec *rec, nv_error *err) {
    int rc;
    switch (r->fmt) {
    case NV_FMT_FASTA: rc = fasta_next(r, rec, err); break;
    case NV_FMT_DBN: rc = dbn_next(r, rec, err); break;
    case NV_FMT_BPSEQ: rc = bpseq_next(r, rec, err); break;
    default: return nv_seterr(err, "%s: no format set", r->path);
    }
    if (rc == 0 && r->nrec == 0) return nv_seterr(err, "%s: empty input (no %s records)", r->path, nv_seqfmt_name(r->fmt));
    return rc;
}

void nv_seqreader_close(nv_seqreader *r) {
    if (!r) return;
    if (r->gz) gzclose(r->gz);
    free(r->path);
    free(r->base);
    free(r->buf);
    free(r->tok);
    free(r->ss);
    free(r->aux);
    free(r->id);
    free(r);
}
