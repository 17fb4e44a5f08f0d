// model/cpu/cpu_f32.c: placeholder until written
