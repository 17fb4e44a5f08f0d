#!/usr/bin/env bash
# lsan_retry.sh CMD... - the sanitizer pass's test wrapper (tools/run-tests). LeakSanitizer's
# stop-the-world tracer occasionally crashes by itself at exit ("Tracer caught signal 11",
# "LeakSanitizer has encountered a fatal error") in processes with Open MPI's threads: that
# is a failure of the checker, not a report about the program. Such a run is repeated (at
# most twice); every other failure, and any real sanitizer report, stands.
out=$(mktemp)
err=$(mktemp)
trap 'rm -f "$out" "$err"' EXIT
for attempt in 1 2 3; do
  "$@" > "$out" 2> "$err"
  rc=$?
  cat "$out"
  cat "$err" >&2
  [ $rc -ne 0 ] && grep -q "LeakSanitizer has encountered a fatal error" "$out" "$err" &&
    ! grep -qE "ERROR: (AddressSanitizer|LeakSanitizer: detected)|runtime error:" "$out" "$err" || break
  [ $attempt -lt 3 ] && echo "lsan_retry: the leak checker itself crashed; running the test again" >&2
done
exit $rc
