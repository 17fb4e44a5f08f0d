// typecheck.h - the cpu-bf16 backend's check that every op argument has the type its op
// reads (model/backend.h: [act], [state], [f64], [i32]). The model declares the type of
// each buffer it carves; an op given a buffer of another type stops the program with the
// op and argument named. This is what catches the review's C1 (fp32 masters handed to
// kernels that read bf16) on a machine without a GPU. Pointers never declared (test
// buffers) are not checked. NVWA_TYPECHECK=0 turns the checks off.
#pragma once
#include <stddef.h>

void nv_typecheck_declare(const void *p, size_t bytes, int type);
void nv_typecheck_forget(const void *p, size_t bytes);
// Stops (exit 70) when [p, p + bytes) lies in a declared buffer of another type, or runs
// past the end of the declared buffer it starts in.
void nv_typecheck(const void *p, size_t bytes, int type, const char *op, const char *arg);
