// vocab.h - tokens and structure labels of design section 4 (fixed contracts).
#pragma once
#include <stdint.h>

enum {
    NV_TOK_PAD = 0, NV_TOK_CLS = 1, NV_TOK_EOS = 2, NV_TOK_MASK = 3, NV_TOK_UNK = 4,
    NV_TOK_A = 5, NV_TOK_C = 6, NV_TOK_G = 7, NV_TOK_U = 8, NV_TOK_N = 9,
    NV_TOK_R = 10, NV_TOK_Y = 11, NV_TOK_K = 12, NV_TOK_M = 13, NV_TOK_S = 14, NV_TOK_W = 15,
    NV_VOCAB = 16,
    NV_FIRST_NT = NV_TOK_A, // nucleotide ids are 5..15
};

// Stored structure byte: 0 '.', 1 '(', 2 ')', 3..8 '[' ']' '{' '}' '<' '>', 255 unknown.
enum {
    NV_SS_UNPAIRED = 0, NV_SS_OPEN = 1, NV_SS_CLOSE = 2,
    NV_SS_PK_FIRST = 3, NV_SS_PK_LAST = 8,
    NV_SS_UNKNOWN = 255,
};

// The structure head's 3 classes and the structure-input ids (0 = hidden).
enum { NV_SCLASS_UNPAIRED = 0, NV_SCLASS_OPEN = 1, NV_SCLASS_CLOSE = 2, NV_NSCLASS = 3 };
enum { NV_SIN_HIDDEN = 0, NV_SIN_ROWS = 4 };

// Token id of an input character, or -1 if it is not allowed. 'T' reads as U;
// B D H V and the gap characters '.' '-' read as N. Case-insensitive.
int nv_tok_from_char(int c);
// Is c a gap character ('.' or '-')? (nvwa-prep --drop-gaps removes them.)
int nv_is_gap_char(int c);
// Letter of a token id ('A', ..., or '?' for specials).
char nv_char_from_tok(int tok);
// Stored structure byte of a bracket character, or -1.
int nv_ss_from_char(int c);
char nv_char_from_ss(int ss);
// 3-class label of a stored structure byte, or -1 when unknown.
static inline int nv_sclass(uint8_t ss) {
    if (ss == NV_SS_UNKNOWN) return -1;
    if (ss == 0) return NV_SCLASS_UNPAIRED;
    return (ss % 2) ? NV_SCLASS_OPEN : NV_SCLASS_CLOSE; // 1,3,5,7 open; 2,4,6,8 close
}
