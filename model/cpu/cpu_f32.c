// cpu_f32.c - the float instance of the CPU backend: the reference that
// trains (design: fp32 throughout on CPU). act = state = float.
// The op files are written once over `real` (compute and state type), `act` (storage of act
// tensors, with LDA/STA/RB converting) and FN(); this file fixes the types and builds the table. They
// are included, not compiled on their own, so the instances cannot drift apart.
// No FP-exception side effects are observed anywhere, so let GCC if-convert the clamps and
// compares of the hot loops (exp, tanh, masks) into vector code. Values are unchanged.
#pragma GCC optimize("no-trapping-math")
#include <cblas.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/backend.h"

typedef float real; // compute and state type
typedef float act;  // storage of act tensors
#define ACT_IS_REAL 1
#define LDA(x) (x)  // act -> real
#define STA(x) (x)  // real -> act (rounding)
#define RB(x) (x)   // a real rounded to act precision
#define CK(p, bytes, type, op, arg) ((void)(p), (void)(bytes)) // act = state: nothing to check
#define FN(x) x##_f32
#define GEMM cblas_sgemm
#define R_EXP expf
#define R_LOG logf
#define R_TANH tanhf
// vectorizable exp and tanh for the hot loops (float: inline polynomials, common.inc)
#define R_VEXP nv_vexpf
#define R_VTANH nv_vtanhf
#define CPU_NAME "cpu"

#include "common.inc"
#include "memory.c"
#include "embed.c"
#include "layernorm.c"
#include "matmul.c"
#include "rope.c"
#include "attention.c"
#include "activations.c"
#include "select.c"
#include "optim_ops.c"
#include "table.inc"

const nv_backend *nv_backend_cpu(void) { return &FN(cpu_backend); }
