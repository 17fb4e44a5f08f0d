// data/loader.c: placeholder until written
