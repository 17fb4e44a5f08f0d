// vocab.c - character <-> id mappings of design section 4.
#include "data/vocab.h"

int nv_tok_from_char(int c) {
    if (c >= 'a' && c <= 'z') c -= 'a' - 'A';
    switch (c) {
    case 'A': return NV_TOK_A;
    case 'C': return NV_TOK_C;
    case 'G': return NV_TOK_G;
    case 'U': case 'T': return NV_TOK_U;
    case 'N': case 'B': case 'D': case 'H': case 'V': case '.': case '-': return NV_TOK_N;
    case 'R': return NV_TOK_R;
    case 'Y': return NV_TOK_Y;
    case 'K': return NV_TOK_K;
    case 'M': return NV_TOK_M;
    case 'S': return NV_TOK_S;
    case 'W': return NV_TOK_W;
    default: return -1;
    }
}

int nv_is_gap_char(int c) { return c == '.' || c == '-'; }

char nv_char_from_tok(int tok) {
    static const char letters[] = "?????ACGUNRYKMSW";
    return (tok >= 0 && tok < NV_VOCAB) ? letters[tok] : '?';
}

int nv_ss_from_char(int c) {
    static const char br[] = ".()[]{}<>";
    for (int i = 0; br[i]; i++)
        if (br[i] == c) return i;
    return -1;
}

char nv_char_from_ss(int ss) {
    static const char br[] = ".()[]{}<>";
    return (ss >= 0 && ss <= 8) ? br[ss] : '?';
}
