// comm_nccl.c - stubs of train/comm_nccl.h for builds without CUDA (the real code is
// model/cuda/comm.cu, compiled only when nvcc is found). Nothing here is reached in a CPU
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
void nv_nccl_zero1_reduce_scatter(nv_nccl *c, float *grad, size_t total, float *shard) {
    (void)c; (void)grad; (void)total; (void)shard; NO_NCCL(NULL);
}
void nv_nccl_zero1_allgather(nv_nccl *c, float *w, size_t total) { (void)c; (void)w; (void)total; NO_NCCL(NULL); }
#endif
