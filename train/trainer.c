// train/trainer.c: placeholder until written
