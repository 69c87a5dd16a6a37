#!/bin/sh
# A short libFuzzer run of the SigV4 signer (test/fuzz/fuzz_sigv4.c) under
# ASan/UBSan, seeded with the .req files of the AWS SigV4 test suite.
# Everything it writes (binary, corpus, crash-*/leak-*/timeout-* artefacts)
# goes under a temporary directory, removed at the end unless a finding is there.
#   sh test/fuzz/run.sh [SECONDS]        (default 25; DMS_FUZZ_KEEP=1 keeps the directory)
# Ends with one line: "1 passed, 0 failed" (no finding) or "0 passed, 1 failed".
set -u
cd "$(dirname "$0")/../.." || exit 2
SECONDS_=${1:-25}
REF=${DMS_REFERENCE:-../shared/reference}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/dms-fuzz.XXXXXX")
CC_FUZZ=${CC_FUZZ:-clang}

finish() { # passed failed
    echo "$1 passed, $2 failed"
    if [ "$2" -eq 0 ] && [ "${DMS_FUZZ_KEEP:-0}" != 1 ]; then rm -rf "$WORK"; else echo "kept $WORK"; fi
    exit "$2"
}

if ! $CC_FUZZ -std=c99 -D_POSIX_C_SOURCE=200809L -Wall -Wextra -Werror -g -O1 \
        -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer \
        -o "$WORK/fuzz_sigv4" test/fuzz/fuzz_sigv4.c module/sigv4.c -lcrypto; then
    echo "cannot build the harness with $CC_FUZZ"
    finish 0 1
fi

mkdir -p "$WORK/seeds" "$WORK/corpus"
if [ -d "$REF/aws4_testsuite" ]; then
    find "$REF/aws4_testsuite" -name '*.req' -exec cp {} "$WORK/seeds/" \;
else
    echo "no seed corpus ($REF/aws4_testsuite not found): starting from nothing"
fi
echo "seeds: $(ls "$WORK/seeds" | wc -l) .req files; fuzzing for ${SECONDS_}s"

ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
    "$WORK/fuzz_sigv4" -max_total_time="$SECONDS_" -timeout=10 -rss_limit_mb=2048 \
    -artifact_prefix="$WORK/" -print_final_stats=1 "$WORK/corpus" "$WORK/seeds" >"$WORK/fuzz.log" 2>&1
rc=$?
grep -E '^(Done|stat::number_of_executed_units|stat::average_exec_per_sec)' "$WORK/fuzz.log"
if [ "$rc" -ne 0 ] || ls "$WORK"/crash-* "$WORK"/leak-* "$WORK"/timeout-* >/dev/null 2>&1; then
    grep -E 'ERROR|runtime error|invariant broken|SUMMARY|Test unit written' "$WORK/fuzz.log" | head -n 20
    finish 0 1
fi
finish 1 0
