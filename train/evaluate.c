// evaluate.c - held-out MLM loss, accuracy, perplexity and structure accuracy over a corpus,
// with the unigram and majority-class baselines (rules in evaluate.h).
#include "train/evaluate.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "data/batch.h"
#include "data/dataset.h"
#include "data/rng.h"
#include "data/vocab.h"

typedef struct eval_acc {
    double mlm_sum, st_sum, uni_sum;
    long mlm_count, mlm_correct, st_count, st_correct, uni_correct, maj_correct;
    long cls_count[3], cls_correct[3];
} eval_acc;

// Nucleotide frequencies (add-one smoothed over the 11 nucleotide ids, so a rare letter in
// the evaluated corpus never costs an infinite loss) and structure-class counts of ref.
static int reference_stats(nv_dataset *ref, double p[16], int *top, int *maj, nv_error *err) {
    uint64_t cnt[16], cls[3];
    if (nv_dataset_counts(ref, cnt, cls, err) != 0) return -1;
    double tot = 0;
    for (int v = NV_FIRST_NT; v < NV_VOCAB; v++) tot += (double)cnt[v] + 1.0;
    *top = NV_FIRST_NT;
    for (int v = 0; v < NV_VOCAB; v++) {
        p[v] = v >= NV_FIRST_NT ? ((double)cnt[v] + 1.0) / tot : 0.0;
        if (v >= NV_FIRST_NT && cnt[v] > cnt[*top]) *top = v;
    }
    *maj = 0;
    for (int c = 1; c < 3; c++)
        if (cls[c] > cls[*maj]) *maj = c;
    return 0;
}

static inline void put_special(nv_batch *b, size_t k, int tok, int seg, int pos) {
    b->input[k] = tok; b->target[k] = tok;
    b->struct_in[k] = NV_SIN_HIDDEN; b->struct_target[k] = -1;
    b->mlm_mask[k] = 0; b->struct_mask[k] = 0;
    b->segment[k] = seg; b->position[k] = pos;
}

static void clear_batch(nv_batch *b) {
    const size_t n = (size_t)b->rows * b->seq_len;
    for (size_t k = 0; k < n; k++) {
        put_special(b, k, NV_TOK_PAD, 0, 0);
        b->seq_index[k] = -1;
    }
}

static int argmax(const double *x, int n) {
    int best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

// Forward over the filled batch and accumulate.
static void run_batch(nv_model *m, nv_batch *b, const double uni_p[16], int uni_top, int maj,
                      double *st_logits, eval_acc *a) {
    nv_batch_count(b);
    if (b->n_real == 0) return;
    nv_losses l;
    nv_model_step(m, b, 1.0, 1.0, 0, &l);
    a->mlm_sum += l.mlm_sum;
    a->mlm_count += l.mlm_count;
    a->mlm_correct += l.mlm_correct;
    a->st_sum += l.struct_sum;
    a->st_count += l.struct_count;
    a->st_correct += l.struct_correct;
    if (l.struct_count > 0) nv_model_get_logits(m, NULL, st_logits);
    const size_t n = (size_t)b->rows * b->seq_len;
    long j = 0;
    for (size_t k = 0; k < n; k++) {
        if (b->mlm_mask[k]) {
            a->uni_sum -= log(uni_p[b->target[k] & 15]);
            a->uni_correct += b->target[k] == uni_top;
        }
        if (b->struct_mask[k] && b->struct_target[k] >= 0) {
            int t = b->struct_target[k];
            int pred = argmax(st_logits + 3 * j, 3);
            a->cls_count[t]++;
            a->cls_correct[t] += pred == t;
            a->maj_correct += t == maj;
            j++;
        }
    }
    if (j != l.struct_count) nv_die("evaluate: %ld structure rows, the model scored %ld", j, l.struct_count);
}

int nv_evaluate(nv_model *m, nv_dataset *c, nv_dataset *ref, const nv_config *cfg,
                uint64_t max_seqs, nv_eval_result *out, nv_error *err) {
    const double t0 = nv_now();
    memset(out, 0, sizeof *out);
    if (!ref) ref = c;
    uint64_t ns = nv_dataset_n_seqs(c);
    if (max_seqs > 0 && max_seqs < ns) ns = max_seqs;
    if (ns == 0) return nv_seterr(err, "evaluation corpus is empty");
    const int L = cfg->data.seq_length, W = L - 2, rows = cfg->data.micro_batch;
    if (W < 1) return nv_seterr(err, "[data] seq-length %d leaves no room for nucleotides", L);

    nv_mask_params mp;
    nv_mask_params_from_config(&mp, &cfg->data, cfg->model.structure_input);
    mp.seed = nv_mix64(cfg->data.seed, nv_hash_str("eval"));
    if (reference_stats(ref, out->uni_p, &out->uni_top, &out->maj_class, err) != 0) return -1;

    nv_batch b;
    nv_batch_alloc(&b, rows, L);
    clear_batch(&b);
    double *st_logits = nv_malloc((size_t)rows * L * 3 * sizeof(double));
    uint8_t *tok = nv_malloc((size_t)W), *ss = nv_malloc((size_t)W);
    eval_acc a;
    memset(&a, 0, sizeof a);
    int r = 0, f = 0, seg = 0, rc = 0; // current row, its fill, its last segment number
    for (uint64_t i = 0; i < ns && rc == 0; i++) {
        const uint64_t len = nv_dataset_len(c, i);
        out->n_tokens += len;
        for (uint64_t start = 0, chunk = 0; start < len; start += (uint64_t)W, chunk++) {
            const int cl = (int)(len - start < (uint64_t)W ? len - start : (uint64_t)W);
            if (f + cl + 2 > L) { // next row, and a forward when the batch is full
                r++;
                f = seg = 0;
                if (r == rows) {
                    run_batch(m, &b, out->uni_p, out->uni_top, out->maj_class, st_logits, &a);
                    clear_batch(&b);
                    r = 0;
                }
            }
            const size_t base = (size_t)r * L, k0 = base + (size_t)f;
            if ((rc = nv_dataset_read(c, i, start, (uint64_t)cl, tok, ss, err)) != 0) break;
            seg++;
            put_special(&b, k0, NV_TOK_CLS, seg, 0);
            nv_mask_sequence(&mp, chunk, i, tok, ss, cl, b.input + k0 + 1, b.target + k0 + 1, b.struct_in + k0 + 1,
                             b.struct_target + k0 + 1, b.mlm_mask + k0 + 1, b.struct_mask + k0 + 1);
            for (int t = 1; t <= cl; t++) {
                b.segment[k0 + t] = seg;
                b.position[k0 + t] = t;
            }
            put_special(&b, k0 + cl + 1, NV_TOK_EOS, seg, cl + 1);
            b.seq_index[base + seg - 1] = (int64_t)i;
            f += cl + 2;
            out->n_chunks++;
        }
    }
    if (rc == 0) run_batch(m, &b, out->uni_p, out->uni_top, out->maj_class, st_logits, &a);
    nv_batch_free(&b);
    free(st_logits);
    free(tok);
    free(ss);
    if (rc != 0) return -1;
    out->n_seqs = ns;
    if (a.mlm_count == 0)
        return nv_seterr(err, "evaluation: no masked positions in %llu sequences", (unsigned long long)ns);

    out->mlm_count = a.mlm_count;
    out->mlm_correct = a.mlm_correct;
    out->mlm_loss = a.mlm_sum / (double)a.mlm_count;
    out->mlm_acc = (double)a.mlm_correct / (double)a.mlm_count;
    out->perplexity = exp(out->mlm_loss);
    out->st_count = a.st_count;
    out->st_correct = a.st_correct;
    out->st_loss = a.st_count ? a.st_sum / (double)a.st_count : NAN;
    out->st_acc = a.st_count ? (double)a.st_correct / (double)a.st_count : NAN;
    int present = 0;
    double macro = 0;
    for (int k = 0; k < 3; k++) {
        out->st_class_count[k] = a.cls_count[k];
        out->st_class_correct[k] = a.cls_correct[k];
        out->st_class_acc[k] = a.cls_count[k] ? (double)a.cls_correct[k] / (double)a.cls_count[k] : NAN;
        if (a.cls_count[k]) {
            present++;
            macro += out->st_class_acc[k];
        }
    }
    out->st_macro_acc = present ? macro / present : NAN;
    out->loss = out->mlm_loss + (a.st_count ? cfg->model.struct_loss_weight * out->st_loss : 0.0);
    out->uni_loss = a.uni_sum / (double)a.mlm_count;
    out->uni_acc = (double)a.uni_correct / (double)a.mlm_count;
    out->maj_acc = a.st_count ? (double)a.maj_correct / (double)a.st_count : NAN;
    out->maj_macro_acc = present ? (a.cls_count[out->maj_class] ? 1.0 : 0.0) / present : NAN;
    out->seconds = nv_now() - t0;
    return 0;
}

// ---- output ------------------------------------------------------------------------------

typedef struct jbuf {
    char *p;
    size_t n, len;
} jbuf;

static void jput(jbuf *j, const char *fmt, double v, const char *key) {
    size_t room = j->len < j->n ? j->n - j->len : 0;
    int w;
    if (fmt) w = snprintf(j->p + (j->len < j->n ? j->len : j->n), room, "%s\"%s\": %s", j->len ? ", " : "", key, fmt);
    else if (isfinite(v)) w = snprintf(j->p + (j->len < j->n ? j->len : j->n), room, "%s\"%s\": %.9g", j->len ? ", " : "", key, v);
    else w = snprintf(j->p + (j->len < j->n ? j->len : j->n), room, "%s\"%s\": null", j->len ? ", " : "", key);
    if (w > 0) j->len += (size_t)w;
}

int nv_eval_json_fields(const nv_eval_result *r, char *buf, size_t n) {
    jbuf j = {buf, n, 0};
    if (n) buf[0] = 0;
    char tmp[64];
    static const char *cls[3] = {"unpaired", "open", "close"};
    snprintf(tmp, sizeof tmp, "%llu", (unsigned long long)r->n_seqs);
    jput(&j, tmp, 0, "n_seqs");
    snprintf(tmp, sizeof tmp, "%llu", (unsigned long long)r->n_tokens);
    jput(&j, tmp, 0, "n_tokens");
    snprintf(tmp, sizeof tmp, "%ld", r->mlm_count);
    jput(&j, tmp, 0, "mlm_count");
    jput(&j, NULL, r->loss, "loss");
    jput(&j, NULL, r->mlm_loss, "mlm_loss");
    jput(&j, NULL, r->mlm_acc, "mlm_acc");
    jput(&j, NULL, r->perplexity, "perplexity");
    snprintf(tmp, sizeof tmp, "%ld", r->st_count);
    jput(&j, tmp, 0, "struct_count");
    jput(&j, NULL, r->st_loss, "struct_loss");
    jput(&j, NULL, r->st_acc, "struct_acc");
    for (int k = 0; k < 3; k++) {
        char key[48];
        snprintf(key, sizeof key, "struct_acc_%s", cls[k]);
        jput(&j, NULL, r->st_class_acc[k], key);
    }
    jput(&j, NULL, r->st_macro_acc, "struct_macro_acc");
    jput(&j, NULL, r->uni_loss, "unigram_mlm_loss");
    jput(&j, NULL, r->uni_acc, "unigram_mlm_acc");
    jput(&j, NULL, exp(r->uni_loss), "unigram_perplexity");
    jput(&j, NULL, r->maj_acc, "majority_struct_acc");
    jput(&j, NULL, r->maj_macro_acc, "majority_struct_macro_acc");
    snprintf(tmp, sizeof tmp, "\"%s\"", cls[r->maj_class]);
    jput(&j, tmp, 0, "majority_class");
    jput(&j, NULL, r->seconds, "eval_seconds");
    return (int)(j.len < n ? j.len : (n ? n - 1 : 0));
}

void nv_eval_write_json(const nv_eval_result *r, FILE *f) {
    char buf[4096];
    nv_eval_json_fields(r, buf, sizeof buf);
    fprintf(f, "{%s}\n", buf);
}

static void pct(FILE *f, double v) {
    if (isfinite(v)) fprintf(f, "%9.2f%%", 100.0 * v);
    else fprintf(f, "%10s", "-");
}

void nv_eval_print_table(const nv_eval_result *r, FILE *f) {
    fprintf(f, "evaluated %llu sequences (%llu segments), %llu nucleotides, %.1f s\n",
            (unsigned long long)r->n_seqs, (unsigned long long)r->n_chunks,
            (unsigned long long)r->n_tokens, r->seconds);
    fprintf(f, "%-28s %12s %12s\n", "metric", "model", "baseline");
    fprintf(f, "%-28s %12.4f %12.4f   (unigram)\n", "MLM loss (nats)", r->mlm_loss, r->uni_loss);
    fprintf(f, "%-28s %12.4f %12.4f\n", "MLM perplexity", r->perplexity, exp(r->uni_loss));
    fprintf(f, "%-28s  ", "MLM accuracy");
    pct(f, r->mlm_acc);
    fprintf(f, "   ");
    pct(f, r->uni_acc);
    fprintf(f, "   (most frequent: %c)\n", nv_char_from_tok(r->uni_top));
    fprintf(f, "%-28s %12ld\n", "MLM positions", r->mlm_count);
    if (r->st_count) {
        static const char *names[3] = {"unpaired", "open", "close"};
        fprintf(f, "%-28s %12.4f %12s\n", "structure loss (nats)", r->st_loss, "-");
        fprintf(f, "%-28s  ", "structure accuracy");
        pct(f, r->st_acc);
        fprintf(f, "   ");
        pct(f, r->maj_acc);
        fprintf(f, "   (majority: %s)\n", names[r->maj_class]);
        for (int k = 0; k < 3; k++) {
            char label[48];
            snprintf(label, sizeof label, "  %s (%ld)", names[k], r->st_class_count[k]);
            fprintf(f, "%-28s  ", label);
            pct(f, r->st_class_acc[k]);
            fprintf(f, "   ");
            pct(f, r->st_class_count[k] ? (k == r->maj_class ? 1.0 : 0.0) : NAN);
            fprintf(f, "\n");
        }
        fprintf(f, "%-28s  ", "structure macro accuracy");
        pct(f, r->st_macro_acc);
        fprintf(f, "   ");
        pct(f, r->maj_macro_acc);
        fprintf(f, "\n");
        fprintf(f, "%-28s %12ld\n", "structure positions", r->st_count);
    } else {
        fprintf(f, "%-28s %12s\n", "structure", "no labels");
    }
    fprintf(f, "%-28s %12.4f\n", "total loss", r->loss);
}

// ---- loading a trained model ---------------------------------------------------------------

#include "train/checkpoint.h"

int nv_ckpt_read_config(const char *path, nv_config *cfg, long *step, nv_error *err) {
    char dir[NV_PATH_MAX];
    nv_ckpt_manifest man;
    if (nv_ckpt_resolve(path, dir, sizeof dir, err) != 0) return -1;
    if (nv_ckpt_manifest_read(dir, &man, err) != 0) return -1;
    *cfg = man.cfg;
    if (step) *step = man.step;
    nv_ckpt_manifest_free(&man);
    return 0;
}

int nv_model_load_ckpt(nv_model *m, const char *path, const nv_dist *d, char *loaded,
                       nv_error *err) {
    const nv_param_table *t = nv_model_params(m);
    nv_ckpt_state s;
    memset(&s, 0, sizeof s);
    s.t = t;
    s.master = nv_calloc(t->total + 1, sizeof(float));
    s.shard_lo = 0;
    s.shard_hi = t->total;
    int rc = nv_ckpt_load(path, d, NULL, &s, err);
    if (rc == 0) {
        double *host = nv_malloc((t->total + 1) * sizeof(double));
        for (size_t i = 0; i < t->total; i++) host[i] = s.master[i];
        nv_model_set_weights(m, host);
        free(host);
        if (loaded) snprintf(loaded, NV_PATH_MAX, "%s", s.loaded);
    }
    free(s.master);
    return rc;
}

// ---- the trainer's hook ----------------------------------------------------------------------

void nv_eval_hook_init(nv_eval_hook *h, const nv_config *cfg, const nv_dist *d) {
    memset(h, 0, sizeof *h);
    if (!cfg->data.valid[0] || cfg->log.eval_every <= 0) return;
    if (d->tp_size > 1) {
        if (d->rank == 0)
            fprintf(stderr, "nvwa: warning: [log] eval-every: evaluation needs [parallel] tensor = 1 "
                            "for now; no evaluation in this run\n---> HINT: evaluate checkpoints with nvwa-eval\n");
        return;
    }
    if (d->rank != 0) return;
    nv_error err;
    const char *spec = cfg->data.valid;
    if (nv_dataset_open(&spec, 1, &h->valid, &err) != 0) nv_dist_abort(d, "[data] valid: %s", err.msg);
    if (nv_dataset_n_seqs(h->valid) == 0) nv_dist_abort(d, "[data] valid %s: no sequences", cfg->data.valid);
    printf("valid: %s: %llu sequences, %llu tokens (streamed); evaluated every %ld steps\n", cfg->data.valid,
           (unsigned long long)nv_dataset_n_seqs(h->valid), (unsigned long long)nv_dataset_n_tokens(h->valid),
           cfg->log.eval_every);
    h->active = 1;
}

double nv_eval_hook_step(nv_eval_hook *h, nv_model *m, nv_dataset *train,
                         const nv_config *cfg, const nv_dist *d, nv_logger *lg, long done) {
    if (!h->active) return 0.0;
    if (done % cfg->log.eval_every != 0 && done != cfg->train.steps) return 0.0;
    const double t0 = nv_now();
    nv_eval_result r;
    nv_error err;
    if (nv_evaluate(m, h->valid, train, cfg, 0, &r, &err) != 0) {
        fprintf(stderr, "nvwa: warning: evaluation at step %ld: %s\n", done, err.msg);
        return nv_now() - t0;
    }
    if (!lg->quiet) {
        printf("eval %6ld | loss %.4f | mlm %.4f (ppl %.3f, acc %.3f; unigram %.4f, acc %.3f) | "
               "struct acc %.3f, macro %.3f (majority %.3f) | %.1f s\n",
               done, r.loss, r.mlm_loss, r.perplexity, r.mlm_acc, r.uni_loss, r.uni_acc, r.st_acc,
               r.st_macro_acc, r.maj_acc, r.seconds);
        fflush(stdout);
    }
    char f[4096];
    int k = snprintf(f, sizeof f, "\"step\": %ld, ", done);
    nv_eval_json_fields(&r, f + k, sizeof f - (size_t)k);
    nv_log_event(lg, "eval", f);
    return nv_now() - t0;
}

void nv_eval_hook_free(nv_eval_hook *h) {
    nv_dataset_free(h->valid);
    h->valid = NULL;
    h->active = 0;
}
