// log.h - what a running job shows: a progress line every [log] every steps on stdout
// and the same record appended to the JSONL log ([log] file). Rank 0 only.
#pragma once
#include <stdio.h>

typedef struct nv_step_record {
    long step, total_steps;
    double loss, mlm_loss, struct_loss;
    double mlm_acc, struct_acc;
    double lr, grad_norm;
    double tokens_per_s;     // real (non-pad) tokens per second
    double step_time;        // seconds
    double flops_per_s;      // model FLOPs per second (design section 11)
    double mfu;              // < 0 when not meaningful (CPU)
    double mem_gib;          // resident / device memory in GiB
    double eta_s;
    int skipped;             // the step was skipped (non-finite gradients)
} nv_step_record;

typedef struct nv_logger {
    FILE *jsonl; // NULL when no file
    int quiet;
} nv_logger;

int nv_logger_open(nv_logger *lg, const char *path, int append);
void nv_logger_close(nv_logger *lg);
void nv_log_step(nv_logger *lg, const nv_step_record *r, int print);
// A free-form event ({"event": name, ...}) in the JSONL log, e.g. skipped steps.
void nv_log_event(nv_logger *lg, const char *event, const char *json_fields);
// Format seconds as "1h02m03s".
void nv_format_duration(double s, char *buf, size_t n);
