// comm_nccl.c - stubs of train/comm_nccl.h for builds without CUDA (the real code is
// train/comm_nccl.cu, compiled only when nvcc is found). Nothing here is reached in a CPU
// run: the trainer asks nv_nccl_available() or only calls these with the cuda backend.
#include "nv_build_config.h"

#if !NV_HAVE_CUDA
#include "train/comm_nccl.h"

#define NO_NCCL(d)                                                                           \
    nv_dist_abort((d), "nvwa was built without CUDA, so without NCCL\n"                      \
                       "---> HINT: meson setup -Dcuda=enabled on a machine with nvcc and NCCL, " \
                       "or set [train] device = cpu")

int nv_nccl_available(void) { return 0; }
nv_nccl *nv_nccl_create(const nv_dist *d) { NO_NCCL(d); }
void nv_nccl_free(nv_nccl *c) { (void)c; }
void nv_nccl_tp_allreduce_act(void *ctx, void *buf, size_t n) { (void)ctx; (void)buf; (void)n; NO_NCCL(NULL); }
void nv_nccl_grad_bucket(nv_nccl *c, float *grad, size_t lo, size_t hi) { (void)c; (void)grad; (void)lo; (void)hi; NO_NCCL(NULL); }
void nv_nccl_grad_wait(nv_nccl *c) { (void)c; NO_NCCL(NULL); }
void nv_nccl_zero1_setup(nv_nccl *c, size_t chunk, size_t total) { (void)c; (void)chunk; (void)total; NO_NCCL(NULL); }
void nv_nccl_zero1_bucket(nv_nccl *c, const float *grad, size_t lo, size_t hi, float *shard,
                          size_t shard_lo, size_t shard_hi) {
    (void)c; (void)grad; (void)lo; (void)hi; (void)shard; (void)shard_lo; (void)shard_hi; NO_NCCL(NULL);
}
void nv_nccl_zero1_allgather(nv_nccl *c, void *w, size_t total, size_t elem_bytes) {
    (void)c; (void)w; (void)total; (void)elem_bytes; NO_NCCL(NULL);
}
#endif
