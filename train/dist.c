// dist.c - MPI start-up, process groups, checked collectives.
#include "train/dist.h"

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// The launcher's node-local rank: Open MPI, PMIx, MPICH/Hydra, MVAPICH, then SLURM's.
// SLURM_LOCALID comes last: a batch script exports it (= 0) to everything it starts, so
// under an mpirun inside an allocation only the MPI launcher's own variable is right.
int nv_env_local_rank(void) {
    const char *keys[] = {"OMPI_COMM_WORLD_LOCAL_RANK", "PMIX_LOCAL_RANK", "MPI_LOCALRANKID",
                          "MV2_COMM_WORLD_LOCAL_RANK", "SLURM_LOCALID"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        const char *v = getenv(keys[i]);
        if (v && *v) return atoi(v);
    }
    return -1;
}

int nv_dist_init(nv_dist *d, int *argc, char ***argv, int tensor, nv_error *err) {
    memset(d, 0, sizeof *d);
    int inited = 0, provided = 0;
    MPI_Initialized(&inited);
    if (!inited) {
        if (MPI_Init_thread(argc, argv, MPI_THREAD_MULTIPLE, &provided) != MPI_SUCCESS)
            return nv_seterr(err, "MPI_Init_thread failed\n---> HINT: run under mpirun or srun, or check the Open MPI installation");
    } else {
        MPI_Query_thread(&provided);
    }
    d->thread_multiple = provided >= MPI_THREAD_MULTIPLE;
    d->comm_world = MPI_COMM_WORLD;
    MPI_Comm_rank(MPI_COMM_WORLD, &d->rank);
    MPI_Comm_size(MPI_COMM_WORLD, &d->world);
    if (tensor < 1 || d->world % tensor != 0)
        return nv_seterr(err, "[parallel] tensor = %d does not divide the world of %d ranks"
                              "\n---> HINT: launch a multiple of %d ranks or change [parallel] tensor",
                         tensor, d->world, tensor);
    d->tp_size = tensor;
    d->dp_size = d->world / tensor;
    d->tp_rank = d->rank % tensor; // consecutive ranks form a tensor group
    d->dp_rank = d->rank / tensor;
    MPI_Comm_split(MPI_COMM_WORLD, d->dp_rank, d->tp_rank, &d->comm_tp);
    MPI_Comm_split(MPI_COMM_WORLD, d->tp_rank, d->dp_rank, &d->comm_dp);
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    MPI_Comm_set_errhandler(d->comm_tp, MPI_ERRORS_RETURN);
    MPI_Comm_set_errhandler(d->comm_dp, MPI_ERRORS_RETURN);
    // local rank: the launcher's word, else ranks sharing this node by a split
    d->local_rank = nv_env_local_rank();
    MPI_Comm node;
    MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, d->rank, MPI_INFO_NULL, &node);
    MPI_Comm_size(node, &d->local_size);
    // The launcher's word counts only if it numbers this node's ranks 0..n-1 (an inherited
    // SLURM_LOCALID = 0 on every rank does not); else this rank's place on its node.
    int *all = nv_malloc(sizeof(int) * (size_t)d->local_size), ok = 1;
    MPI_Allgather(&d->local_rank, 1, MPI_INT, all, 1, MPI_INT, node);
    for (int i = 0; i < d->local_size && ok; i++) {
        ok = all[i] >= 0 && all[i] < d->local_size;
        for (int j = 0; j < i && ok; j++) ok = all[i] != all[j];
    }
    free(all);
    if (!ok) MPI_Comm_rank(node, &d->local_rank);
    MPI_Comm_free(&node);
    return 0;
}

void nv_dist_finalize(nv_dist *d) {
    int fin = 0;
    MPI_Finalized(&fin);
    if (fin) return;
    if (d->comm_tp != MPI_COMM_NULL && d->comm_tp) MPI_Comm_free(&d->comm_tp);
    if (d->comm_dp != MPI_COMM_NULL && d->comm_dp) MPI_Comm_free(&d->comm_dp);
    MPI_Finalize();
}

void nv_dist_abort(const nv_dist *d, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "nvwa: error: rank %d: ", d ? d->rank : -1);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    fflush(stderr);
    int inited = 0, fin = 0;
    MPI_Initialized(&inited);
    MPI_Finalized(&fin);
    if (inited && !fin && d && d->world > 1) MPI_Abort(MPI_COMM_WORLD, 1);
    exit(1);
}

// MPI counts are int: large buffers go in chunks.
#define CHUNK ((size_t)1 << 30)
static void allreduce(const nv_dist *d, MPI_Comm c, void *buf, size_t n, size_t esize,
                      MPI_Datatype t, MPI_Op op) {
    for (size_t o = 0; o < n; o += CHUNK) {
        size_t k = n - o < CHUNK ? n - o : CHUNK;
        NV_MPI_CHECK(d, MPI_Allreduce(MPI_IN_PLACE, (char *)buf + o * esize, (int)k, t, op, c));
    }
}

void nv_allreduce_sum_f32(const nv_dist *d, MPI_Comm c, float *buf, size_t n) {
    allreduce(d, c, buf, n, 4, MPI_FLOAT, MPI_SUM);
}
void nv_allreduce_sum_f64(const nv_dist *d, MPI_Comm c, double *buf, size_t n) {
    allreduce(d, c, buf, n, 8, MPI_DOUBLE, MPI_SUM);
}
void nv_allreduce_sum_long(const nv_dist *d, MPI_Comm c, long *buf, size_t n) {
    allreduce(d, c, buf, n, sizeof(long), MPI_LONG, MPI_SUM);
}
void nv_allreduce_max_int(const nv_dist *d, MPI_Comm c, int *buf, size_t n) {
    allreduce(d, c, buf, n, sizeof(int), MPI_INT, MPI_MAX);
}
void nv_barrier(const nv_dist *d, MPI_Comm c) { NV_MPI_CHECK(d, MPI_Barrier(c)); }
void nv_bcast(const nv_dist *d, MPI_Comm c, void *buf, size_t bytes, int root) {
    for (size_t o = 0; o < bytes; o += CHUNK) {
        size_t k = bytes - o < CHUNK ? bytes - o : CHUNK;
        NV_MPI_CHECK(d, MPI_Bcast((char *)buf + o, (int)k, MPI_BYTE, root, c));
    }
}
