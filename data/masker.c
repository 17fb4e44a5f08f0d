// data/masker.c: placeholder until written
