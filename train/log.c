// log.c - progress lines and the JSONL log.
#include "train/log.h"

#include <errno.h>
#include <math.h>
#include <string.h>

int nv_logger_open(nv_logger *lg, const char *path, int append) {
    memset(lg, 0, sizeof *lg);
    if (!path || !path[0]) return 0;
    lg->jsonl = fopen(path, append ? "a" : "w");
    if (!lg->jsonl) {
        fprintf(stderr, "nvwa: error: [log] file %s: cannot open: %s\n", path, strerror(errno));
        return -1;
    }
    return 0;
}

void nv_logger_close(nv_logger *lg) {
    if (lg->jsonl) fclose(lg->jsonl);
    lg->jsonl = NULL;
}

void nv_format_duration(double s, char *buf, size_t n) {
    if (!(s >= 0) || s > 1e8) {
        snprintf(buf, n, "?");
        return;
    }
    long t = (long)(s + 0.5);
    if (t >= 3600) snprintf(buf, n, "%ldh%02ldm%02lds", t / 3600, (t / 60) % 60, t % 60);
    else if (t >= 60) snprintf(buf, n, "%ldm%02lds", t / 60, t % 60);
    else snprintf(buf, n, "%lds", t);
}

// JSON has no NaN/Inf: write null for them.
static void jnum(FILE *f, const char *key, double v, int last) {
    if (isfinite(v)) fprintf(f, "\"%s\": %.9g%s", key, v, last ? "" : ", ");
    else fprintf(f, "\"%s\": null%s", key, last ? "" : ", ");
}

void nv_log_step(nv_logger *lg, const nv_step_record *r, int print) {
    if (print && !lg->quiet) {
        char eta[32];
        nv_format_duration(r->eta_s, eta, sizeof eta);
        printf("step %6ld/%ld | loss %.4f (mlm %.4f, struct %.4f) | acc %.3f/%.3f | lr %.3e | "
               "gnorm %.3f | %.0f tok/s",
               r->step, r->total_steps, r->loss, r->mlm_loss, r->struct_loss, r->mlm_acc,
               r->struct_acc, r->lr, r->grad_norm, r->tokens_per_s);
        if (r->mfu >= 0) printf(" | MFU %.1f%%", 100.0 * r->mfu);
        else printf(" | %.1f GFLOP/s", r->flops_per_s * 1e-9);
        printf(" | mem %.2f GiB | ETA %s%s\n", r->mem_gib, eta, r->skipped ? " | SKIPPED" : "");
        fflush(stdout);
    }
    if (lg->jsonl) {
        FILE *f = lg->jsonl;
        fprintf(f, "{\"step\": %ld, \"total_steps\": %ld, ", r->step, r->total_steps);
        jnum(f, "loss", r->loss, 0);
        jnum(f, "mlm_loss", r->mlm_loss, 0);
        jnum(f, "struct_loss", r->struct_loss, 0);
        jnum(f, "mlm_acc", r->mlm_acc, 0);
        jnum(f, "struct_acc", r->struct_acc, 0);
        jnum(f, "lr", r->lr, 0);
        jnum(f, "grad_norm", r->grad_norm, 0);
        jnum(f, "tokens_per_s", r->tokens_per_s, 0);
        jnum(f, "step_time", r->step_time, 0);
        jnum(f, "flops_per_s", r->flops_per_s, 0);
        if (r->mfu >= 0) jnum(f, "mfu", r->mfu, 0);
        jnum(f, "mem_gib", r->mem_gib, 0);
        fprintf(f, "\"skipped\": %s}\n", r->skipped ? "true" : "false");
        fflush(f);
    }
}

void nv_log_event(nv_logger *lg, const char *event, const char *json_fields) {
    if (!lg->jsonl) return;
    fprintf(lg->jsonl, "{\"event\": \"%s\"%s%s}\n", event, json_fields && json_fields[0] ? ", " : "",
            json_fields ? json_fields : "");
    fflush(lg->jsonl);
}
