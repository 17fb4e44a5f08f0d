// model/flops.c: placeholder until written
