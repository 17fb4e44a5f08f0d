// synth.h - synthetic RNA-like data: the data of the tests and the demo.
//
// Sequences with valid secondary structures: stems (Watson-Crick and GU pairs) closing
// hairpin, interior and multi-loops, some pseudoknotted ('[' ']' ...), a realistic spread
// of lengths. A pure function of (n, seed): the same arguments give the same corpus.
#pragma once
#include <stdint.h>
#include "data/corpus.h"

typedef struct nv_synth_params {
    uint64_t n_seqs;
    uint64_t seed;
    int min_len, max_len;       // length range (defaults 20 .. 2000)
    double mean_len;            // target mean (default ~445, RNAcentral-like)
    double frac_structure;      // fraction of sequences with a known structure (default 0.7)
    double frac_pseudoknot;     // of those, fraction with a pseudoknot (default 0.15)
} nv_synth_params;

void nv_synth_defaults(nv_synth_params *p, uint64_t n_seqs, uint64_t seed);
// Append p->n_seqs sequences to c (ids "synth_<index>").
void nv_synth_corpus(nv_corpus *c, const nv_synth_params *p);
// Append sequences first .. first+count-1 (of any n): sequence i depends only on (seed, i)
// and the length/fraction parameters, so a large corpus can be written in pieces.
void nv_synth_range(nv_corpus *c, const nv_synth_params *p, uint64_t first, uint64_t count);
