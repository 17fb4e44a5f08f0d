// report.c - what nvwa-fold tells: the estimate (counts, core-hours, time on N cores) and
// summary.json.
#include "tools/fold/fold.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "nv_build_config.h"


static void fmt_hours(double s, char *buf, size_t n) {
    if (s < 90) snprintf(buf, n, "%.0f s", s);
    else if (s < 5400) snprintf(buf, n, "%.0f min", s / 60);
    else if (s < 48 * 3600) snprintf(buf, n, "%.1f h", s / 3600);
    else snprintf(buf, n, "%.1f days", s / 86400);
}

void fold_add_counts(fold_counts *a, const fold_counts *b) {
    a->seqs += b->seqs;
    a->tokens += b->tokens;
    a->folded += b->folded;
    a->kept += b->kept;
    a->too_long += b->too_long;
    a->empty += b->empty;
    a->folded_tokens += b->folded_tokens;
}

void fold_print_estimate(const fold_opts *o, const fold_counts *k, uint32_t n_shards, double cost, double left,
                         uint64_t n_parts, uint64_t parts_done, uint32_t shards_done, int workers, double max_load) {
    char model[768], a[64];
    fold_model_string(&o->s, model, sizeof model);
    if (n_shards) fprintf(stderr, "nvwa-fold: %u shard(s), ", n_shards);
    else fprintf(stderr, "nvwa-fold: %d input file(s), ", o->n_inputs);
    fprintf(stderr,
            "%llu sequences: %llu to fold (%.1f Mnt), %llu kept (known structure), "
            "%llu longer than %ld nt (not folded), %llu empty\n",
            (unsigned long long)k->seqs, (unsigned long long)k->folded, (double)k->folded_tokens / 1e6,
            (unsigned long long)k->kept, (unsigned long long)k->too_long, o->s.max_len, (unsigned long long)k->empty);
    fmt_hours(cost, a, sizeof a);
    fprintf(stderr, "nvwa-fold: cost model: %.2f core-hours (%s) for %s; %llu part(s)", cost / 3600, a, model,
            (unsigned long long)n_parts);
    if (parts_done || shards_done)
        fprintf(stderr, ", %llu already saved, %u shard(s) finished", (unsigned long long)parts_done, shards_done);
    fputc('\n', stderr);
    if (workers > 0 && left > 0) {
        fmt_hours(max_load / o->threads, a, sizeof a);
        fprintf(stderr, "nvwa-fold: this launch: %d worker(s) x %d thread(s): about %s (busiest worker %.2fx the mean)\n",
                workers, o->threads, a, max_load / (left / workers));
    }
    fprintf(stderr, "nvwa-fold: on N cores, ideally:");
    const int cores[] = {64, 256, 1024, 4096};
    for (int i = 0; i < 4; i++) {
        fmt_hours(left / cores[i], a, sizeof a);
        fprintf(stderr, " %d: %s%s", cores[i], a, i < 3 ? "," : "\n");
    }
}

int fold_write_summary(const fold_opts *o, int ranks, const fold_plan *p, const fold_counts *k,
                       const fold_run_stats *st, double seconds, nv_error *err) {
    char *buf = NULL, model[768], path[4300];
    size_t size = 0;
    FILE *f = open_memstream(&buf, &size);
    if (!f) return nv_seterr(err, "cannot build summary.json: %s", strerror(errno));
    fold_model_string(&o->s, model, sizeof model);
    fprintf(f, "{\n  \"program\": \"nvwa-fold\",\n  \"version\": \"%s\",\n  \"viennarna\": \"%s\",\n  \"model\": ", NV_VERSION,
            fold_vienna_version());
    nv_json_str(f, model);
    fprintf(f, ",\n  \"settings\": ");
    nv_json_str(f, p->settings);
    fprintf(f, ",\n  \"inputs\": [");
    for (int i = 0; i < o->n_inputs; i++) {
        if (i) fputs(", ", f);
        nv_json_str(f, o->inputs[i]);
    }
    fprintf(f, "],\n  \"shards\": %u,\n  \"sequences\": %llu,\n  \"tokens\": %llu,\n  \"folded\": %llu,\n"
               "  \"folded_tokens\": %llu,\n  \"kept\": %llu,\n  \"too_long\": %llu,\n  \"empty\": %llu,\n"
               "  \"max_len\": %ld,\n  \"refold\": %s,\n  \"temperature\": %g,\n  \"parts\": %llu,\n",
            p->n_shards, (unsigned long long)k->seqs, (unsigned long long)k->tokens, (unsigned long long)k->folded,
            (unsigned long long)k->folded_tokens, (unsigned long long)k->kept, (unsigned long long)k->too_long,
            (unsigned long long)k->empty, o->s.max_len, o->s.refold ? "true" : "false", o->s.temperature,
            (unsigned long long)p->n_parts);
    fprintf(f, "  \"last_run\": {\"ranks\": %d, \"threads\": %d, \"seconds\": %.3f, \"parts_folded\": %llu, "
               "\"sequences_folded\": %llu, \"tokens_folded\": %llu, \"fold_core_seconds\": %.3f, "
               "\"sequences_per_second\": %.3f}\n}\n",
            ranks, o->threads, seconds, (unsigned long long)st->parts_done, (unsigned long long)st->seqs_folded,
            (unsigned long long)st->tokens_folded, st->fold_seconds, seconds > 0 ? (double)st->seqs_folded / seconds : 0);
    fclose(f);
    snprintf(path, sizeof path, "%s/summary.json", o->outdir);
    int rc = nv_write_file_atomic(path, buf, size, err);
    free(buf);
    return rc;
}

