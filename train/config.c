// train/config.c: placeholder until written
