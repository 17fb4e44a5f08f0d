#!/usr/bin/env bash
# lsan_retry.sh CMD... - the sanitizer pass's test wrapper (tools/run-tests). LeakSanitizer's
# stop-the-world tracer sometimes crashes by itself at exit ("Tracer caught signal 11",
# "LeakSanitizer has encountered a fatal error") in processes that ran Open MPI, mostly when
# other MPI jobs run beside them: a failure of the checker, not a report about the program,
# and one that repeats under the same conditions. Such a test is run again with the leak
# check off (AddressSanitizer and UBSan still on), and says so. Every other failure, and any
# real sanitizer report, stands.
out=$(mktemp)
err=$(mktemp)
trap 'rm -f "$out" "$err"' EXIT
"$@" > "$out" 2> "$err"
rc=$?
cat "$out"
cat "$err" >&2
if [ $rc -ne 0 ] && grep -q "LeakSanitizer has encountered a fatal error" "$out" "$err" &&
   ! grep -qE "ERROR: (AddressSanitizer|LeakSanitizer: detected)|runtime error:" "$out" "$err"; then
  echo "lsan_retry: the leak checker itself crashed; running the test again without the leak check" >&2
  ASAN_OPTIONS="${ASAN_OPTIONS:-}:detect_leaks=0" "$@"
  rc=$?
fi
exit $rc
