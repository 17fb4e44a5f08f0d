// train/log.c: placeholder until written
