// model/cuda/no_cuda.c: placeholder until written
