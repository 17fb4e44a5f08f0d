// model/cpu/cpu_f64.c: placeholder until written
