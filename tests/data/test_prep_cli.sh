#!/bin/bash
# test_prep_cli - nvwa-prep end to end: good runs (synthetic, stdin, gzip, dedup, splitting,
# summary.json), and bad inputs: each must exit non-zero with exactly one stderr line that
# names the file and the record/position, and leave nothing in OUTDIR.
set -u
PREP="${NVWA_BUILD_ROOT:?NVWA_BUILD_ROOT not set}/tools/nvwa-prep"
[ -x "$PREP" ] || { echo "no $PREP"; exit 1; }
T=$(mktemp -d /tmp/nvwa_prep_cli.XXXXXX)
trap 'rm -rf "$T"' EXIT
fail=0
bad() { echo "FAIL: $*" >&2; fail=$((fail + 1)); }

# fresh random inputs, replayable
SEED=${NVWA_TEST_SEED:-$(( (RANDOM << 15) | RANDOM ))}
echo "NVWA_TEST_SEED=$SEED"
RANDOM=$SEED
rand_seq() { local n=$1 s=""; for ((k = 0; k < n; k++)); do s+=${ACGU:$((RANDOM % 4)):1}; done; echo "$s"; }
ACGU=ACGU

# --- good runs -------------------------------------------------------------------------
"$PREP" -q --synthetic 3000 --seed $SEED --shard-size 0.3 -o "$T/syn" || bad "synthetic run failed"
nshards=$(ls "$T/syn" | grep -c '^shard_.....\.h5$')
[ "$nshards" -ge 3 ] || bad "--shard-size 0.3 on ~1.3M tokens gave $nshards shards"
grep -q '"sequences": 3000' "$T/syn/summary.json" || bad "summary.json: $(cat "$T/syn/summary.json")"
[ -z "$(ls -A "$T/syn" | grep -v -e '^shard_' -e '^summary.json$')" ] || bad "stray files: $(ls -A "$T/syn")"
"$PREP" -q --synthetic 10 -o "$T/syn" 2>"$T/err" && bad "second run into a full OUTDIR was accepted"
grep -q "already holds shards" "$T/err" || bad "refusal message: $(cat "$T/err")"
"$PREP" -q --synthetic 10 --force -o "$T/syn" || bad "--force run failed"
[ "$(ls "$T/syn" | grep -c '^shard_')" = 1 ] || bad "--force left stale shards: $(ls "$T/syn")"

# FASTA with duplicates through stdin and gzip, --dedup and length filters
n=$((RANDOM % 40 + 20)); : > "$T/a.fa"
for ((i = 0; i < n; i++)); do
  len=$((RANDOM % 150 + 1)); printf '>r%d desc\n%s\n' $i "$(rand_seq $len)" >> "$T/a.fa"
done
cat "$T/a.fa" "$T/a.fa" | gzip > "$T/aa.fa.gz"
short=$(awk '!/^>/ && length($0) < 30' "$T/a.fa" | wc -l)
"$PREP" -q --dedup --min-len 30 -o "$T/dd" - < "$T/aa.fa.gz" 2>"$T/err" || bad "stdin gzip run: $(cat "$T/err")"
want=$((n - short))
grep -q "\"sequences\": $want," "$T/dd/summary.json" || bad "dedup: want $want sequences: $(cat "$T/dd/summary.json")"
grep -q "\"duplicate\": $want}" "$T/dd/summary.json" || bad "dedup: want $want duplicates"
grep -q "\"too_short\": $((2 * short))," "$T/dd/summary.json" || bad "want $((2 * short)) too short"

# --- bad inputs: exit != 0, one stderr line naming file + record + position, no output ----
check_bad() { # name expected-substring file(s)...
  local name=$1 want=$2; shift 2
  rm -rf "$T/out"
  "$PREP" -q --shard-size 0.001 -o "$T/out" "$@" 2>"$T/err"
  local rc=$?
  [ $rc -ne 0 ] || bad "$name: exit 0"
  [ "$(wc -l < "$T/err")" = 1 ] || bad "$name: stderr is not one line: $(cat "$T/err")"
  grep -q -- "$want" "$T/err" || bad "$name: want '$want' in: $(cat "$T/err")"
  if [ -d "$T/out" ] && [ -n "$(ls -A "$T/out")" ]; then bad "$name: left files: $(ls -A "$T/out")"; fi
  echo "  $name -> $(cat "$T/err")"
}
good="$T/good.fa"; cp "$T/a.fa" "$good"   # written first: shards exist before the error
printf '>ok\nACGU\n>x1 bad\nACGUAC\nACGZU\n' > "$T/c.fa"
check_bad "invalid character" "c.fa: record 2 'x1', line 5, column 4: invalid sequence character 'Z'" "$good" "$T/c.fa"
printf '>s1\nACGUACGU\n((....))\n>s2\nACGUACGUAA\n((....))\n' > "$T/len.dbn"
check_bad "structure length" "len.dbn: record 2 's2', line 6, column 9: structure has 8 columns but the sequence has 10" "$good" "$T/len.dbn"
printf '>s1\nACGUACGUAC\n((....)).)\n' > "$T/unb.dbn"
check_bad "unbalanced bracket" "unb.dbn: record 1 's1', line 3, column 10: unbalanced bracket ')'" "$good" "$T/unb.dbn"
printf '>s1\nACGUACGUAC\n[(....)).]\n' > "$T/unb2.dbn"
check_bad "unbalanced kind" "unb2.dbn: record 1 's1', line 3, column 8: unbalanced bracket ')'" "$T/unb2.dbn"
printf '>s1\nACGUACGU\n((....))\n>s2\nACGUACGU\n>s3\nACGUACGU\n((....))\n' > "$T/trunc.dbn"
check_bad "truncated dbn record" "trunc.dbn: record 2 's2', line 6: missing structure line" "$good" "$T/trunc.dbn"
printf '>s1\nACGUACGU\n((....))\n>s2\nACGUACGU\n' > "$T/trunc2.dbn"
check_bad "dbn ends early" "trunc2.dbn: record 2 's2', line 5: missing structure line" "$T/trunc2.dbn"
printf '>a\nACGU\n>b\n' > "$T/trunc.fa"
check_bad "truncated fasta" "trunc.fa: record 2 'b', line 3: header without sequence" "$T/trunc.fa"
printf '1 A 4\n2 C 0\n3 G 0\n4 U 2\n' > "$T/pair.bpseq"
check_bad "bpseq pair mismatch" "pair.bpseq: record 1 'pair_1', line 1, column 1: base 1 pairs with 4, but that base does not pair back" "$T/pair.bpseq"
head -c 3000 /dev/urandom > "$T/garbage.bin"; printf '\0' >> "$T/garbage.bin"
check_bad "binary garbage" "garbage.bin" "$good" "$T/garbage.bin"
grep -qE "line [0-9]+, column [0-9]+|gzip" "$T/err" || bad "binary garbage: no position: $(cat "$T/err")"
printf '>x\nAC\x01GU\n' > "$T/ctl.fa"
check_bad "control byte" "ctl.fa: record 1, line 2, column 3: byte 0x01 is not text" "$T/ctl.fa"
: > "$T/empty.fa"
check_bad "empty input" "empty.fa: empty input" "$good" "$T/empty.fa"
printf '\n\n' | gzip > "$T/blank.fa.gz"
check_bad "blank gzip input" "blank.fa.gz: empty input" "$T/blank.fa.gz"
gzip -c "$T/a.fa" | head -c 300 > "$T/cut.fa.gz"
check_bad "truncated gzip" "cut.fa.gz" "$T/cut.fa.gz"
check_bad "missing input" "nope.fa: cannot open" "$good" "$T/nope.fa"
check_bad "all filtered" "no sequence left" --min-len 100000 "$good"

# unwritable output: a file where the directory should be, and a path below a file
: > "$T/afile"
"$PREP" -q --synthetic 5 -o "$T/afile" 2>"$T/err" && bad "OUTDIR = file accepted"
[ "$(wc -l < "$T/err")" = 1 ] && grep -q "afile" "$T/err" || bad "OUTDIR = file: $(cat "$T/err")"
echo "  OUTDIR is a file -> $(cat "$T/err")"
"$PREP" -q --synthetic 5 -o "$T/afile/sub" 2>"$T/err" && bad "OUTDIR under a file accepted"
[ "$(wc -l < "$T/err")" = 1 ] && grep -q "cannot create output directory" "$T/err" || bad "OUTDIR under file: $(cat "$T/err")"
echo "  OUTDIR under a file -> $(cat "$T/err")"
if [ "$(id -u)" != 0 ]; then
  mkdir "$T/ro"; chmod 555 "$T/ro"
  "$PREP" -q --synthetic 5 -o "$T/ro" 2>"$T/err" && bad "read-only OUTDIR accepted"
  grep -q "not writable" "$T/err" || bad "read-only OUTDIR: $(cat "$T/err")"
fi
# usage errors exit 2
"$PREP" -o "$T/u" 2>/dev/null; [ $? = 2 ] || bad "no inputs: want exit 2"
"$PREP" --format xyz -o "$T/u" x 2>/dev/null; [ $? = 2 ] || bad "bad --format: want exit 2"
"$PREP" --help | grep -q "usage: nvwa-prep" || bad "--help"

# --- real data, when present ------------------------------------------------------------
D="${NVWA_SOURCE_ROOT:-.}/../shared/data"
[ -d "$D" ] || D=/work/shared/data
if [ -f "$D/archiveii.dbn" ]; then
  "$PREP" -q -o "$T/real" "$D/archiveii.dbn" "$D/rnacentral-sample-1400.fasta" || bad "real data run failed"
  grep -q '"sequences": 5264,' "$T/real/summary.json" || bad "real data: $(cat "$T/real/summary.json")"
  grep -q '"with_structure": 3864,' "$T/real/summary.json" || bad "real data: structures"
else
  echo "  (shared data absent: real-data part skipped)"
fi

[ $fail = 0 ] && echo "test_prep_cli: ok" || { echo "test_prep_cli: $fail check(s) failed"; exit 1; }
