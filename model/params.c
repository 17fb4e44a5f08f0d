// model/params.c: placeholder until written
