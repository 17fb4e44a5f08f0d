// data/corpus.c: placeholder until written
