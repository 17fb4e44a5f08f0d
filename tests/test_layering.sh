#!/usr/bin/env bash
# test_layering.sh - the floors of docs/architecture.md hold: data/ -> model/ -> optim/ ->
# train/, each including only its own floor and those below it (tools/, bench/ and tests/
# may include anything), and no two source modules (x.c + x.h) include each other, directly
# or around a longer circle. Usage: test_layering.sh [SOURCE_ROOT]
set -uo pipefail
root=${1:-${NVWA_SOURCE_ROOT:-$(dirname "$0")/..}}
cd "$root" || exit 1
fail=0
floors=(data model optim train)
# the quoted project includes of one file, one per line
includes() { sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"\([^"]*\)".*/\1/p' "$1"; }

for i in "${!floors[@]}"; do
  f=${floors[$i]}
  above=("${floors[@]:$((i + 1))}" tools bench tests)
  while IFS= read -r src; do
    while IFS= read -r inc; do
      for a in "${above[@]}"; do
        if [[ $inc == "$a/"* ]]; then
          echo "FAIL: $src includes $inc: $f/ is below $a/ (docs/architecture.md, 'Floors')"
          fail=1
        fi
      done
    done < <(includes "$src")
  done < <(find "$f" -type f \( -name '*.c' -o -name '*.h' -o -name '*.cu' -o -name '*.cuh' \) | sort)
done

# module graph: "x y" when a file of module x includes module y's header (x != y)
edges=$(for src in $(find "${floors[@]}" -type f \( -name '*.c' -o -name '*.h' -o -name '*.cu' -o -name '*.cuh' \) | sort); do
  m=${src%.*}
  while IFS= read -r inc; do
    t=${inc%.*}
    [ -e "$inc" ] || continue        # generated (nv_build_config.h) or system-like
    [ "$t" = "$m" ] && continue
    echo "$m $t"
  done < <(includes "$src")
done | sort -u)
n=$(printf '%s\n' "$edges" | grep -c . || true)
if ! out=$(printf '%s\n' "$edges" | tsort 2>&1 > /dev/null); then
  echo "FAIL: the source modules include each other in a circle:"
  printf '%s\n' "$out" | sed 's/^tsort: /  /'
  fail=1
fi
[ $fail = 0 ] && echo "layering ok: ${#floors[@]} floors, $n module dependencies, no circle"
exit $fail
