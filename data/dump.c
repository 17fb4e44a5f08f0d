// data/dump.c: placeholder until written
