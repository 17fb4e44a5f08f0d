// data/shard.c: placeholder until written
