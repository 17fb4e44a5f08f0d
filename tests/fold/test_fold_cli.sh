#!/bin/bash
# test_fold_cli - nvwa-fold end to end against ViennaRNA's own Python module (RNA.fold):
# random sequences made here (and real ones from shared/data when present) fold to the same
# structures and MFEs; known structures are kept (replaced with --refold); --max-len leaves
# long ones unknown and counts them; 2 ranks and 1 thread give the same bytes as 1 rank and
# 2 threads; the structure_source attribute is set; nvwa-prep reads the .dbn output back
# into the same corpus and the loader's masker pulls pair partners (test_fold_roundtrip).
# Bad inputs: one line, exit 1, no shard in OUT.
set -u
B=${NVWA_BUILD_ROOT:?}; S=${NVWA_SOURCE_ROOT:?}
FOLD=$B/tools/nvwa-fold PREP=$B/tools/nvwa-prep
[ -x "$FOLD" ] || { echo "SKIP: nvwa-fold was not built (ViennaRNA missing: tools/install-deps)"; exit 77; }
python3 -c "import RNA" 2>/dev/null || { echo "SKIP: no ViennaRNA Python module (tools/install-viennarna)"; exit 77; }
T=$(mktemp -d /tmp/nvwa_fold_cli.XXXXXX)
trap 'rm -rf "$T"' EXIT
fail=0
bad() { echo "FAIL: $*" >&2; fail=$((fail + 1)); }
REF="python3 $S/tests/fold/fold_ref.py"
LIGHT=${NVWA_TEST_LIGHT:-0}

SEED=${NVWA_TEST_SEED:-$(( (RANDOM << 15) | RANDOM ))}
echo "NVWA_TEST_SEED=$SEED"
RANDOM=$SEED
rand_seq() { local n=$1 a=$2 s=""; for ((k = 0; k < n; k++)); do s+=${a:$((RANDOM % ${#a})):1}; done; echo "$s"; }
json() { sed -n "s/.*\"$2\": \\([0-9]*\\).*/\\1/p" "$1" | head -1; }

# --- random sequences: structures and energies equal RNA.fold's ------------------------
n=$((LIGHT == 1 ? 25 : 60)); : > "$T/r.fa"
for ((i = 0; i < n; i++)); do
  len=$((RANDOM % 220 + 1)); alpha=ACGU; [ $((i % 7)) = 3 ] && alpha=ACGUNacgtRY
  printf '>rand_%d some description\n%s\n' $i "$(rand_seq $len $alpha)" >> "$T/r.fa"
done
"$FOLD" -q --dbn --part-seconds 0.02 -o "$T/r" "$T/r.fa" 2> "$T/err" || bad "random run: $(cat "$T/err")"
$REF --expect $n "$T"/r/*.dbn || bad "random sequences differ from RNA.fold"
[ "$(json "$T/r/summary.json" folded)" = "$n" ] || bad "summary: $(cat "$T/r/summary.json")"
grep -aq "ViennaRNA 2.7.2 MFE, 37C, Turner 2004, dangles=2; predicted for $n of $n sequences" "$T"/r/shard_*.h5 ||
  bad "structure_source attribute missing"
[ -z "$(ls "$T/r/.nvwa-fold/parts")" ] || bad "parts left after assembly: $(ls -R "$T/r/.nvwa-fold/parts")"

# other model settings reach ViennaRNA
"$FOLD" -q --dbn -T 25 -d 0 --noLP -o "$T/r25" "$T/r.fa" 2> "$T/err" || bad "-T 25 run: $(cat "$T/err")"
$REF --temperature 25 --dangles 0 --noLP --expect $n "$T"/r25/*.dbn || bad "-T 25 -d 0 --noLP differ from RNA.fold"
grep -aq "ViennaRNA 2.7.2 MFE, 25C, Turner 2004, dangles=0, noLP" "$T"/r25/shard_*.h5 || bad "structure_source at 25C"

# --- real sequences (shared/data), skipped when absent --------------------------------
for d in "$S/../shared/data" "$S/../../shared/data"; do [ -f "$d/rnacentral-sample-1400.fasta" ] && DATA=$d && break; done
if [ -n "${DATA:-}" ]; then
  k=$((LIGHT == 1 ? 15 : 60))
  awk -v k=$k '/^>/{h=$0; next} {if (length($0) <= 400 && n < k) {print h; print $0; n++}}' \
      "$DATA/rnacentral-sample-1400.fasta" > "$T/real.fa"
  awk -v k=20 '/^>/{h=$0; next} {if (n < k) {print h; print $0; n++}}' "$DATA/RF00005.fasta" >> "$T/real.fa"
  m=$(grep -c '^>' "$T/real.fa")
  "$FOLD" -q --dbn -o "$T/real" "$T/real.fa" 2> "$T/err" || bad "real run: $(cat "$T/err")"
  $REF --expect "$m" "$T"/real/*.dbn || bad "RNAcentral / Rfam sequences differ from RNA.fold"
else
  echo "shared/data absent: real sequences not compared"
fi

# --- shards with known structures, --max-len, --refold, ranks and threads -------------
: > "$T/known.dbn"; : > "$T/u.fa"
nk=$((RANDOM % 4 + 3))
for ((i = 0; i < nk; i++)); do # a hairpin of a random stem: the kept structure
  st=$((RANDOM % 6 + 4)); loop=$((RANDOM % 5 + 3))
  printf '>known_%d\n%s\n%s%s%s\n' $i "$(rand_seq $((2 * st + loop)) ACGU)" \
    "$(printf '(%.0s' $(seq $st))" "$(printf '.%.0s' $(seq $loop))" "$(printf ')%.0s' $(seq $st))" >> "$T/known.dbn"
done
nu=$((LIGHT == 1 ? 20 : 40)); nlong=0
for ((i = 0; i < nu; i++)); do
  len=$((RANDOM % 200 + 5)); [ $len -gt 150 ] && nlong=$((nlong + 1))
  printf '>u_%d\n%s\n' $i "$(rand_seq $len ACGU)" >> "$T/u.fa"
done
"$PREP" -q -o "$T/in" --shard-size 0.002 "$T/known.dbn" "$T/u.fa" || bad "nvwa-prep"
nin=$(ls "$T/in" | grep -c '\.h5$')
"$FOLD" -q --dbn --max-len 150 -t 2 --part-seconds 0.01 -o "$T/k1" "$T/in" 2> "$T/err" || bad "shard run: $(cat "$T/err")"
[ "$(ls "$T/k1" | grep -c '\.h5$')" = "$nin" ] || bad "$nin shards in, $(ls "$T/k1" | grep -c '\.h5$') out"
[ "$(json "$T/k1/summary.json" kept)" = "$nk" ] || bad "kept != $nk: $(cat "$T/k1/summary.json")"
[ "$(json "$T/k1/summary.json" too_long)" = "$nlong" ] || bad "too_long != $nlong: $(cat "$T/k1/summary.json")"
[ "$(json "$T/k1/summary.json" folded)" = "$((nu - nlong))" ] || bad "folded != $((nu - nlong))"
# kept structures unchanged (in the .dbn without an energy), long ones absent (unknown)
for ((i = 0; i < nk; i++)); do
  want=$(grep -A2 "^>known_$i\$" "$T/known.dbn" | sed -n 3p)
  got=$(cat "$T"/k1/*.dbn | grep -A2 "^>known_$i\$" | sed -n 3p)
  [ "$got" = "$want" ] || bad "known_$i: kept structure '$want' came out as '$got'"
done
[ "$(cat "$T"/k1/*.dbn | grep -c '^>u_')" = "$((nu - nlong))" ] || bad "long sequences in the .dbn"
$REF --expect $((nu - nlong)) "$T"/k1/*.dbn || bad "shard input differs from RNA.fold"
# the same bytes from 2 ranks x 1 thread
mpirun --oversubscribe -np 2 --bind-to none "$FOLD" -q --dbn --max-len 150 -t 1 --part-seconds 0.01 -o "$T/k2" "$T/in" \
  2> "$T/err" || bad "2 ranks: $(cat "$T/err")"
for f in $(cd "$T/k1" && ls *.h5 *.dbn); do cmp -s "$T/k1/$f" "$T/k2/$f" || bad "$f: 2 ranks differ from 1 rank"; done
# the same bytes from a SLURM-array-like run: a plan, 3 independent tasks, an assembly
KA=(-q --dbn --max-len 150 --part-seconds 0.01 -o "$T/ka" "$T/in")
"$FOLD" "${KA[@]}" --array 0/3 2> "$T/err" && bad "an array task without a plan was accepted"
grep -q "no plan yet" "$T/err" || bad "array task without plan: $(cat "$T/err")"
"$FOLD" "${KA[@]}" --plan-only 2> "$T/err" || bad "--plan-only: $(cat "$T/err")"
for i in 2 0 1; do "$FOLD" "${KA[@]}" --array $i/3 -t 1 2> "$T/err" || bad "array task $i: $(cat "$T/err")"; done
[ -z "$(ls "$T/ka" | grep '\.h5$')" ] || bad "array tasks wrote shards"
"$FOLD" "${KA[@]}" 2> "$T/err" || bad "assembly after the array: $(cat "$T/err")"
[ "$(json "$T/ka/summary.json" parts_folded)" = 0 ] || bad "the assembly run folded again: $(cat "$T/ka/summary.json")"
for f in $(cd "$T/k1" && ls *.h5 *.dbn); do cmp -s "$T/k1/$f" "$T/ka/$f" || bad "$f: array run differs from 1 rank"; done
# --refold replaces the known structures too
"$FOLD" -q --dbn --refold --max-len 150 -o "$T/k3" "$T/in" 2> "$T/err" || bad "--refold: $(cat "$T/err")"
[ "$(json "$T/k3/summary.json" kept)" = 0 ] && [ "$(json "$T/k3/summary.json" folded)" = "$((nu - nlong + nk))" ] ||
  bad "--refold counts: $(cat "$T/k3/summary.json")"
$REF --expect $((nu - nlong + nk)) "$T"/k3/*.dbn || bad "--refold differs from RNA.fold"

# --- round trip: .dbn -> nvwa-prep -> same corpus; loader and masker see the pairs -----
"$PREP" -q -o "$T/rt" "$T"/r/*.dbn || bad "nvwa-prep of nvwa-fold's .dbn"
"$B/tests/fold/test_fold_roundtrip" "$T/r" "$T/rt" || bad "round trip"

# --- dry run: an estimate, nothing written --------------------------------------------
"$FOLD" --dry-run -o "$T/dry" "$T/in" 2> "$T/err" || bad "--dry-run: $(cat "$T/err")"
grep -q "core-hours" "$T/err" && grep -q "on N cores" "$T/err" || bad "--dry-run output: $(cat "$T/err")"
[ ! -e "$T/dry" ] || bad "--dry-run wrote $T/dry"
"$FOLD" --dry-run -o "$T/dry" "$T/u.fa" 2> "$T/err" || bad "--dry-run of FASTA: $(cat "$T/err")"
grep -q "$nu sequences: $nu to fold" "$T/err" || bad "--dry-run FASTA counts: $(cat "$T/err")"

# --- bad inputs: exit 1, one line naming what is wrong, no shard in OUT ----------------
one_line() { # $1 name, $2 regex of the line, $3 output dir; the command ran into $T/err with status $rc
  [ "$rc" -eq 1 ] || bad "$1: exit $rc, want 1"
  # one error line (a "---> HINT" line or an indented detail may follow it)
  [ "$(grep -c 'nvwa: error' "$T/err")" -eq 1 ] && [ -z "$(grep -v -e 'nvwa: error' -e '^--->' -e '^  ' "$T/err")" ] ||
    bad "$1: want one error line, got: $(cat "$T/err")"
  grep -Eq "$2" "$T/err" || bad "$1: line '$(cat "$T/err")' does not match '$2'"
  [ -z "$(ls "$3" 2>/dev/null | grep -e '\.h5$' -e summary)" ] || bad "$1: output written: $(ls "$3")"
}
printf '>ok\nACGUACGU\n>bad_one\nACGUXACGU\n' > "$T/x.fa"
"$FOLD" -q -o "$T/bx" "$T/x.fa" 2> "$T/err"; rc=$?
one_line "unknown nucleotide" "x\.fa.*bad_one.*(column|col).*5|x\.fa.*record 2.*X" "$T/bx"
mkdir -p "$T/broken" && cp "$T"/in/*.h5 "$T/broken/"
victim=$(ls "$T"/broken/*.h5 | head -1); size=$(stat -c %s "$victim")
dd if=/dev/urandom of="$victim" bs=1 seek=$((size * 2 / 5)) count=$((size / 2)) conv=notrunc 2>/dev/null
"$FOLD" -q -o "$T/bb" "$T/broken" 2> "$T/err"; rc=$?
one_line "damaged shard" "$(basename "$victim")" "$T/bb"
head -c 100 "$T/in/$(ls "$T/in" | head -1)" > "$T/trunc.h5"
"$FOLD" -q -o "$T/bt" "$T/trunc.h5" 2> "$T/err"; rc=$?
one_line "truncated shard" "trunc\.h5" "$T/bt"
"$FOLD" -q -o "$T/in" "$T/in" 2> "$T/err"; rc=$?
one_line "OUT = IN" "is the input directory" /nonexistent
"$FOLD" -q -o "$T/k1" -T 30 "$T/in" 2> "$T/err"; rc=$?
one_line "other settings" "other settings" /nonexistent
"$FOLD" -q -o "$T/bm" "$T/nope.fa" 2> "$T/err"; rc=$?
one_line "missing input" "nope\.fa" "$T/bm"
"$FOLD" -q "$T/in" 2> "$T/err"; [ $? -eq 2 ] && grep -q "missing -o" "$T/err" || bad "no -o: $(cat "$T/err")"
"$FOLD" --help | grep -q "usage: nvwa-fold" || bad "--help"
# a full disk: a small tmpfs, filled up but for 16 KiB (root only; the MPI runtime's own
# files rule out RLIMIT_FSIZE here). One line, no shard; after making room the same
# command finishes, identical to the run above.
mkdir -p "$T/disk"
if [ "$(id -u)" -eq 0 ] && mount -t tmpfs -o size=4m nvwa-fold-test "$T/disk" 2>/dev/null; then
  trap 'umount "$T/disk" 2>/dev/null; rm -rf "$T"' EXIT
  avail=$(df -k --output=avail "$T/disk" | tail -1)
  fallocate -l $(( (avail - 16) * 1024 )) "$T/disk/filler" 2>/dev/null ||
    dd if=/dev/zero of="$T/disk/filler" bs=1k count=$((avail - 16)) 2>/dev/null
  "$FOLD" -q --dbn --max-len 150 -t 2 --part-seconds 0.01 -o "$T/disk/full" "$T/in" 2> "$T/err"; rc=$?
  one_line "full disk" "No space|disk full" "$T/disk/full"
  rm -f "$T/disk/filler"
  "$FOLD" -q --dbn --max-len 150 -t 2 --part-seconds 0.01 -o "$T/disk/full" "$T/in" 2> "$T/err" ||
    bad "rerun after the full disk: $(cat "$T/err")"
  for f in $(cd "$T/k1" && ls *.h5 *.dbn); do cmp -s "$T/k1/$f" "$T/disk/full/$f" || bad "$f: after the full disk differs"; done
  umount "$T/disk"
else
  echo "full disk not checked: cannot mount a tmpfs (not root?)"
fi

[ $fail -eq 0 ] && echo "ok" || { echo "$fail failure(s)"; exit 1; }
