// model/model.c: placeholder until written
