// fuzz_config.c - libFuzzer target: train/config.c. The input is INI text, optionally
// followed by a line "%%" and override lines ("section.key=value", one per line). After a
// successful parse and overrides: nv_config_validate for a few world sizes, and the
// resolved config written by nv_config_write must parse back to the same text (the
// checkpoint manifest stores configs this way).
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "train/config.h"

static char *write_config(const nv_config *c) {
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f) abort();
    nv_config_write(c, f);
    fclose(f);
    return buf;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *text = fuzz_strndup(data, size);
    char *ovr = NULL;
    char *sep = strstr(text, "\n%%\n");
    if (sep) {
        *sep = 0;
        ovr = sep + 4;
    }
    nv_config *c = malloc(sizeof *c);
    if (!c) abort();
    nv_config_defaults(c);
    nv_error err = {{0}};
    int rc = nv_config_parse_string(c, text, "fuzz.ini", &err);
    if (rc != 0) assert(err.msg[0]);
    if (rc == 0 && ovr) {
        char *save = NULL;
        for (char *line = strtok_r(ovr, "\n", &save); line && rc == 0; line = strtok_r(NULL, "\n", &save)) {
            rc = nv_config_override(c, line, &err);
            if (rc != 0) assert(err.msg[0]);
        }
    }
    if (rc == 0) {
        for (int world = 1; world <= 4; world++) (void)nv_config_validate(c, world, &err);
        // round trip: write, parse back over the defaults, write again: same text
        char *w1 = write_config(c);
        nv_config *c2 = malloc(sizeof *c2);
        if (!c2) abort();
        nv_config_defaults(c2);
        int rc2 = nv_config_parse_string(c2, w1, "written.ini", &err);
        if (rc2 != 0) {
            fprintf(stderr, "written config does not parse back: %s\n%s\n", err.msg, w1);
            abort();
        }
        char *w2 = write_config(c2);
        if (strcmp(w1, w2) != 0) {
            fprintf(stderr, "written config changes on a round trip:\n--- first\n%s\n--- second\n%s\n", w1, w2);
            abort();
        }
        free(w1);
        free(w2);
        free(c2);
    }
    free(c);
    free(text);
    return 0;
}
