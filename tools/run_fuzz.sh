#!/usr/bin/env bash
# run_fuzz.sh SECONDS TARGET...: runs each libFuzzer target (build/fuzz/fuzz_<target>, `make fuzz-bins`)
# for SECONDS (or, with FUZZ_RUNS=N in the environment, until N executions if that comes first: issue
# 13's bar is 10 million or an hour) on its committed corpus (copied into build/fuzz/corpus/<target>, where new inputs go)
# plus tests/fuzz/regressions/<target>. Prints one line per target with libFuzzer's final numbers
# (executions, coverage edges, features, corpus size) and appends them to build/fuzz/stats.tsv.
# A crash leaves its input in build/fuzz/crashes/<target>/ and makes the exit status non-zero.
set -uo pipefail
cd "$(dirname "$0")/.."
secs=$1
shift
status=0
mkdir -p build/fuzz
for t in "$@"; do
    corpus=build/fuzz/corpus/$t crashes=build/fuzz/crashes/$t log=build/fuzz/$t.log
    mkdir -p "$corpus" "$crashes" "tests/fuzz/regressions/$t"
    cp -n tests/fuzz/corpus/"$t"/* "$corpus"/ 2>/dev/null
    # One thread (OpenMP off), bounded memory: a target that allocates past -rss_limit_mb is a finding.
    OMP_NUM_THREADS=1 ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=0 UBSAN_OPTIONS=print_stacktrace=1 \
        nice -n 10 build/fuzz/fuzz_"$t" -max_total_time="$secs" -print_final_stats=1 -rss_limit_mb=2048 \
        -malloc_limit_mb=1024 -timeout=20 -max_len=65536 -artifact_prefix="$crashes/" ${FUZZ_RUNS:+-runs=$FUZZ_RUNS} \
        "$corpus" "tests/fuzz/regressions/$t" >"$log" 2>&1
    rc=$?
    seconds=$(grep -oE 'Done [0-9]+ runs in [0-9]+ second' "$log" | grep -oE '[0-9]+ second' | grep -oE '[0-9]+')
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
    done_line=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -1)
    cov=$(grep -oE 'cov: [0-9]+' <<<"$done_line" | grep -oE '[0-9]+')
    ft=$(grep -oE 'ft: [0-9]+' <<<"$done_line" | grep -oE '[0-9]+')
    units=$(grep -oE 'corp: [0-9]+' <<<"$done_line" | grep -oE '[0-9]+')
    if [ "$rc" -ne 0 ]; then
        status=1
        echo "fuzz $t: FINDING (exit $rc) after ${execs:-?} executions; input in $crashes/, log $log"
        grep -E 'ERROR|SUMMARY|FuzzFinding|terminate|what\(\)' "$log" | head -5 | sed 's/^/    /'
    else
        echo "fuzz $t: ${execs:-?} executions in ${seconds:-$secs} s, cov ${cov:-?} edges, ft ${ft:-?}, corpus ${units:-?}, no crash"
    fi
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$(date -u +%FT%TZ)" "$t" "${seconds:-$secs}" "${execs:-}" "${cov:-}" "${ft:-}" "$rc" \
        >>build/fuzz/stats.tsv
done
exit $status
