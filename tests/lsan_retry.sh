#!/usr/bin/env bash
# lsan_retry.sh CMD... - the sanitizer pass's test wrapper (tools/run-tests). LeakSanitizer's
# stop-the-world tracer occasionally crashes by itself at exit ("Tracer caught signal 11",
# "LeakSanitizer has encountered a fatal error") in processes with Open MPI's threads: that
# is a failure of the checker, not a report about the program. Such a run is repeated once;
# every other failure, and any real sanitizer report, stands.
out=$(mktemp)
trap 'rm -f "$out"' EXIT
"$@" > >(tee "$out") 2> >(tee -a "$out" >&2)
rc=$?
wait
if [ $rc -ne 0 ] && grep -q "LeakSanitizer has encountered a fatal error" "$out" &&
   ! grep -qE "ERROR: (AddressSanitizer|LeakSanitizer: detected)|runtime error:" "$out"; then
  echo "lsan_retry: the leak checker itself crashed; running the test once more" >&2
  "$@"
  rc=$?
fi
exit $rc
