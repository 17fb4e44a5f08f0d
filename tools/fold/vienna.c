// vienna.c - the ViennaRNA calls of nvwa-fold: parameters, model details, one MFE fold.
//
// Each fold gets its own fold compound (ViennaRNA's new API is thread-safe that way); the
// energy parameter set is loaded once per process before the threads start.
#include "tools/fold/fold.h"

#include <ViennaRNA/fold_compound.h>
#include <ViennaRNA/mfe/global.h>
#include <ViennaRNA/model.h>
#include <ViennaRNA/params/io.h>
#include <ViennaRNA/utils/basic.h>
#include <ViennaRNA/vrna_config.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "data/vocab.h"

typedef struct named_params {
    const char *name, *label;
    int (*load)(void);
} named_params;

static const named_params builtin[] = {
    {"turner2004", "Turner 2004", vrna_params_load_RNA_Turner2004},
    {"turner1999", "Turner 1999", vrna_params_load_RNA_Turner1999},
    {"andronescu2007", "Andronescu 2007", vrna_params_load_RNA_Andronescu2007},
    {"langdon2018", "Langdon 2018", vrna_params_load_RNA_Langdon2018},
};

static const named_params *find_builtin(const char *name) {
    for (size_t i = 0; i < sizeof builtin / sizeof builtin[0]; i++)
        if (strcmp(builtin[i].name, name) == 0) return &builtin[i];
    return NULL;
}

const char *fold_vienna_version(void) { return VRNA_VERSION; }

int fold_vienna_init(const fold_settings *s, nv_error *err) {
    const named_params *b = find_builtin(s->params);
    if (b) {
        if (!b->load()) return nv_seterr(err, "ViennaRNA: cannot load the built-in %s parameters", b->label);
        return 0;
    }
    if (!vrna_params_load(s->params, VRNA_PARAMETER_FORMAT_DEFAULT))
        return nv_seterr(err, "%s: ViennaRNA cannot read this energy parameter file\n"
                              "---> HINT: --params takes turner2004, turner1999, andronescu2007, langdon2018 "
                              "or a ViennaRNA .par file (RNAfold -P)",
                         s->params);
    return 0;
}

void fold_model_string(const fold_settings *s, char *buf, size_t n) {
    const named_params *b = find_builtin(s->params);
    const char *base = strrchr(s->params, '/');
    snprintf(buf, n, "ViennaRNA %s MFE, %gC, %s%s, dangles=%d%s", VRNA_VERSION, s->temperature,
             b ? b->label : (base ? base + 1 : s->params), b ? "" : " (parameter file)", s->dangles,
             s->no_lp ? ", noLP" : "");
}

void fold_settings_string(const fold_settings *s, char *buf, size_t n) {
    char model[768];
    fold_model_string(s, model, sizeof model);
    snprintf(buf, n, "%s; params-crc=%08x; max-len=%ld; refold=%d; part-seconds=%g", model, s->params_crc,
             s->max_len, s->refold, s->part_seconds);
}

static void model_details(const fold_settings *s, vrna_md_t *md) {
    vrna_md_set_default(md);
    md->temperature = s->temperature;
    md->dangles = s->dangles;
    md->noLP = s->no_lp;
}

int fold_one(const fold_settings *s, const uint8_t *tok, uint64_t n, uint8_t *ss, int32_t *energy, char *scratch,
             nv_error *err) {
    char *seq = scratch, *st = scratch + n + 1;
    for (uint64_t i = 0; i < n; i++) {
        // A C G U fold as themselves; N and R Y K M S W (ambiguous) as N, which pairs with nothing
        int t = tok[i];
        seq[i] = t == NV_TOK_A ? 'A' : t == NV_TOK_C ? 'C' : t == NV_TOK_G ? 'G' : t == NV_TOK_U ? 'U' : 'N';
    }
    seq[n] = '\0';
    vrna_md_t md;
    model_details(s, &md);
    vrna_fold_compound_t *fc = vrna_fold_compound(seq, &md, VRNA_OPTION_MFE);
    if (!fc) return nv_seterr(err, "ViennaRNA could not set up a fold of %llu nt", (unsigned long long)n);
    float e = vrna_mfe(fc, st);
    vrna_fold_compound_free(fc);
    if (!(e < 1e6f)) // INF: no structure at all (cannot happen for plain RNA, checked anyway)
        return nv_seterr(err, "ViennaRNA found no structure for a sequence of %llu nt", (unsigned long long)n);
    for (uint64_t i = 0; i < n; i++) {
        int c = nv_ss_from_char(st[i]);
        if (c < 0 || c > NV_SS_CLOSE)
            return nv_seterr(err, "ViennaRNA returned '%c' at position %llu (expected . ( ))", st[i],
                             (unsigned long long)i);
        ss[i] = (uint8_t)c;
    }
    *energy = (int32_t)lrint((double)e * 100.0); // ViennaRNA's energies are integers in dcal/mol
    return 0;
}
