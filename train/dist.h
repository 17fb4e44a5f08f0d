// dist.h - the one place that owns processes and process groups (design section 8).
//
// World = tensor x data. Tensor groups are consecutive ranks (same node); data groups are
// ranks with the same tensor rank. Every rank of one tensor group sees the same rows.
// On CPU the collectives go through MPI; on GPU through NCCL communicators made from a
// unique id broadcast over MPI (model/cuda). nvwa-train without a launcher is a world of 1.
#pragma once
#include <mpi.h>
#include <stddef.h>

#include "data/nv_util.h"

typedef struct nv_dist {
    int rank, world;          // world rank and size
    int local_rank, local_size; // within the node (Open MPI, SLURM or PMIx environment)
    int tp_rank, tp_size;
    int dp_rank, dp_size;
    MPI_Comm comm_world, comm_tp, comm_dp;
    int thread_multiple;      // MPI_THREAD_MULTIPLE granted (communication thread allowed)
} nv_dist;

// MPI_Init (if not yet), then the groups for `tensor`. A layout that cannot work
// (world not divisible by tensor) fails here with one line, before any work.
int nv_dist_init(nv_dist *d, int *argc, char ***argv, int tensor, nv_error *err);
void nv_dist_finalize(nv_dist *d);

// One line on stderr naming the rank, then MPI_Abort: a failure on any rank ends the job.
void nv_dist_abort(const nv_dist *d, const char *fmt, ...) __attribute__((format(printf, 2, 3), noreturn));

// Local rank from the launcher's environment (OMPI_COMM_WORLD_LOCAL_RANK, SLURM_LOCALID,
// PMIX_LOCAL_RANK, MPI_LOCALRANKID), or -1.
int nv_env_local_rank(void);

// Checked MPI wrappers on host buffers (float sums in a fixed algorithm for a fixed layout).
void nv_allreduce_sum_f32(const nv_dist *d, MPI_Comm c, float *buf, size_t n);
void nv_allreduce_sum_f64(const nv_dist *d, MPI_Comm c, double *buf, size_t n);
void nv_allreduce_sum_long(const nv_dist *d, MPI_Comm c, long *buf, size_t n);
void nv_allreduce_max_int(const nv_dist *d, MPI_Comm c, int *buf, size_t n);
void nv_barrier(const nv_dist *d, MPI_Comm c);
void nv_bcast(const nv_dist *d, MPI_Comm c, void *buf, size_t bytes, int root);

#define NV_MPI_CHECK(d, call)                                                                  \
    do {                                                                                       \
        int nv_mpi_rc_ = (call);                                                               \
        if (nv_mpi_rc_ != MPI_SUCCESS) {                                                       \
            char nv_mpi_msg_[MPI_MAX_ERROR_STRING];                                            \
            int nv_mpi_len_ = 0;                                                               \
            MPI_Error_string(nv_mpi_rc_, nv_mpi_msg_, &nv_mpi_len_);                           \
            nv_dist_abort((d), "%s:%d: %s failed: %s\n---> HINT: check the launcher and the "  \
                          "network (mpirun --mca btl self,vader,tcp)", __FILE__, __LINE__,     \
                          #call, nv_mpi_msg_);                                                 \
        }                                                                                      \
    } while (0)
