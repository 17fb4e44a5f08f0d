// cpu_f64.c - the double instance of the CPU backend: the same op code in
// double, for the finite-difference gradient tests.
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

typedef double real; // compute and state type
typedef double act;  // storage of act tensors
#define ACT_IS_REAL 1
#define LDA(x) (x)
#define STA(x) (x)
#define RB(x) (x)
#define CK(p, bytes, type, op, arg) ((void)(p), (void)(bytes))
#define FN(x) x##_f64
#define GEMM cblas_dgemm
#define R_EXP exp
#define R_LOG log
#define R_TANH tanh
// vectorizable exp and tanh for the hot loops (float: inline polynomials, common.inc)
#define R_VEXP exp
#define R_VTANH tanh
#define CPU_NAME "cpu-f64"

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

const nv_backend *nv_backend_cpu_f64(void) { return &FN(cpu_backend); }
