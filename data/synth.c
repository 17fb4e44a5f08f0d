// data/synth.c: placeholder until written
