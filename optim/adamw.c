// optim/adamw.c: placeholder until written
