// data/seqio.c: placeholder until written
