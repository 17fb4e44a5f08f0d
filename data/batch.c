// data/batch.c: placeholder until written
