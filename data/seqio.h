// seqio.h - streaming readers of sequence files: FASTA, dot-bracket, bpseq.
//
// Input may be plain or gzip-compressed (detected by zlib), "-" reads stdin. A reader
// hands out one record at a time, already mapped to token ids (design section 4) and
// stored structure bytes; its buffers are reused, so a record is valid until the next call.
//
// Formats (detected from the content unless forced):
//   fasta  '>' header, then any number of sequence lines; ';' lines are comments. No structure.
//   dbn    three-line dot-bracket: '>' header, one sequence line, one structure line of
//          . ( ) [ ] { } < >. The structure line may end with RNAfold's energy, e.g.
//          " (-12.30)"; extra RNAfold -p lines (structure + " [..]" / " {..}") are skipped.
//          bpRNA .dbn files are read too: '#' lines are comments, and "#Name: X" names the
//          record when there is no '>' header (then sequence and structure lines follow).
//   bpseq  lines "index base partner" (partner 0 = unpaired), indices 1..n in order. One file
//          may hold several records: a record starts at index 1 or after a header line.
//          Header lines: '>' id, "Filename: X", "#Name: X" (they name the next record); other
//          non-numeric lines and '#' comments are skipped. A record without a name is called
//          "<file basename>_<record number>". Pairs become brackets: nested pairs '(' ')',
//          each crossing layer the next of '[' ']', '{' '}', '<' '>' (4 layers at most).
// The id of a record is the first word of its header (RNAcentral "URS..._taxid" stays whole).
// Errors name the file, the record (number and id) and the line and column.
#pragma once
#include <stdint.h>
#include "data/nv_util.h"

typedef enum nv_seqfmt {
    NV_FMT_AUTO = 0,
    NV_FMT_FASTA,
    NV_FMT_DBN,
    NV_FMT_BPSEQ,
} nv_seqfmt;

// "auto", "fasta", "dbn", "bpseq" (also "fa", "dot-bracket", "db"); -1 if unknown.
int nv_seqfmt_parse(const char *name);
const char *nv_seqfmt_name(nv_seqfmt fmt);

typedef struct nv_seqrec {
    const char *id;     // first word of the header (never NULL)
    const uint8_t *tok; // [len] token ids 5..15
    const uint8_t *ss;  // [len] structure bytes 0..8, or NULL when the format has none
    uint64_t len;
    uint64_t number;    // 1-based record number in its file
    uint64_t line;      // line of the record's first line (its header)
} nv_seqrec;

typedef struct nv_seqreader nv_seqreader;

// Open `path` ("-" = stdin). fmt NV_FMT_AUTO detects the format from the first records.
// drop_gaps: '.' and '-' in sequences are removed (with their structure column) instead
// of read as N. Returns NULL and fills err on failure (missing file, undetectable format,
// empty input).
nv_seqreader *nv_seqreader_open(const char *path, nv_seqfmt fmt, int drop_gaps, nv_error *err);
// 1: *rec holds the next record; 0: end of input; -1: error (err names file, record, line, column).
int nv_seqreader_next(nv_seqreader *r, nv_seqrec *rec, nv_error *err);
void nv_seqreader_close(nv_seqreader *r);
nv_seqfmt nv_seqreader_format(const nv_seqreader *r);
// Bytes consumed from the file so far (compressed bytes for gzip input), for progress.
uint64_t nv_seqreader_offset(const nv_seqreader *r);

// Is a structure (stored bytes of design section 4) balanced per bracket type? 0 if so;
// else -1 and *bad_pos = the position of an unmatched closing bracket, or of the last
// unmatched opening one. 255 (unknown) and 0 are neutral.
int nv_ss_balance(const uint8_t *ss, uint64_t len, uint64_t *bad_pos);
