// placeholder until the CUDA backend is written
