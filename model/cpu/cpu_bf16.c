// cpu_bf16.c - the bf16 instance of the CPU backend: the CUDA backend's twin on CPU
// (design section 3, "cpu-bf16"). Act tensors are stored as bf16 and rounded to nearest even
// exactly where the CUDA kernels round (model/backend.h lists the rounding points); every
// op computes in fp32; state tensors are fp32. Its name is not "cpu", so every path a GPU
// run takes (staged host copies of the state, act != state sizes) runs on it in CI, and
// every op checks its arguments' buffer types (typecheck.h).
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

#include "model/cpu/bf16.h"
#include "model/cpu/typecheck.h"

typedef float real;   // compute and state type
typedef uint16_t act; // storage of act tensors: bf16 bits
#define ACT_IS_REAL 0
#define LDA(x) nv_bf16_to_f32(x)
#define STA(x) nv_f32_to_bf16(x)
#define RB(x) nv_bf16_round(x)
#define CK(p, bytes, type, op, arg) nv_typecheck((p), (bytes), (type), (op), (arg))
#define FN(x) x##_bf16
#define GEMM cblas_sgemm
#define R_EXP expf
#define R_LOG logf
#define R_TANH tanhf
// vectorizable exp and tanh for the hot loops (float: inline polynomials, common.inc)
#define R_VEXP nv_vexpf
#define R_VTANH nv_vtanhf
#define CPU_NAME "cpu-bf16"

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

const nv_backend *nv_backend_cpu_bf16(void) { return &FN(cpu_backend); }
