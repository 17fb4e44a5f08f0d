// damage_chunk FILE DATASET CHUNK - flip a few bytes in the middle of stored chunk CHUNK of
// a chunked 1-D dataset, on disk (for tests: a shard whose metadata and offsets are intact
// but whose data fails its Fletcher32 checksum when read).
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: damage_chunk FILE DATASET CHUNK\n");
        return 2;
    }
    hid_t f = H5Fopen(argv[1], H5F_ACC_RDONLY, H5P_DEFAULT);
    hid_t d = f >= 0 ? H5Dopen2(f, argv[2], H5P_DEFAULT) : -1;
    hid_t sp = d >= 0 ? H5Dget_space(d) : -1;
    hsize_t off[1], size = 0;
    unsigned mask;
    haddr_t addr = 0;
    if (sp < 0 || H5Dget_chunk_info(d, sp, (hsize_t)atoll(argv[3]), off, &mask, &addr, &size) < 0 || size < 8) {
        fprintf(stderr, "damage_chunk: %s: no chunk %s of /%s\n", argv[1], argv[3], argv[2]);
        return 1;
    }
    H5Sclose(sp);
    H5Dclose(d);
    H5Fclose(f);
    FILE *fp = fopen(argv[1], "r+b");
    if (!fp) return 1;
    for (hsize_t k = 0; k < 4; k++) {
        fseek(fp, (long)(addr + size / 2 + k), SEEK_SET);
        int c = fgetc(fp);
        fseek(fp, (long)(addr + size / 2 + k), SEEK_SET);
        fputc(c ^ 0x5A, fp);
    }
    if (fclose(fp) != 0) return 1;
    printf("damaged chunk %s of /%s (nucleotides %llu.., %llu stored bytes at %llu)\n", argv[3], argv[2],
           (unsigned long long)off[0], (unsigned long long)size, (unsigned long long)addr);
    return 0;
}
