#!/usr/bin/env bash
# run_tests.sh: run each test binary given (build/rusca_tests, build/rusca_emu_tests) and end with
# ONE line adding up their "N passed, N failed, N skipped" lines, the line CI reads. Exits non-zero
# when a test failed or a binary did not finish with its summary line.
set -uo pipefail
passed=0 failed=0 skipped=0 status=0 start=$SECONDS
# Without a GPU the nvcc binary's CUDA tests would only skip: they run on the emulator binary
# instead, so they are left out here rather than counted twice (once skipped, once run).
emu_given=0
for bin in "$@"; do case "$bin" in *emu*) emu_given=1 ;; esac; done
for bin in "$@"; do
    args=()
    case "$bin" in
    *emu*) ;;
    *) if [ "$emu_given" = 1 ] && ! "$(dirname "$bin")/rusca" info 2>/dev/null | grep -q '^GPU 0: '; then
           args=(--gtest_filter='-*Cuda*')
           echo "run_tests: no GPU here: $bin runs its CPU tests; the CUDA tests run on the emulator"
       fi ;;
    esac
    log=$(mktemp)
    # The emulator runs kernels on one thread; idle OpenMP workers (CPU twins, emulated cuBLASLt)
    # would spin-wait beside it and take the CPU it needs.
    policy=${OMP_WAIT_POLICY:-}
    case "$bin" in *emu*) policy=${policy:-passive} ;; esac
    OMP_WAIT_POLICY=$policy "$bin" "${args[@]}" 2>&1 | tee "$log"
    rc=${PIPESTATUS[0]}
    line=$(grep -E '^[0-9]+ passed, [0-9]+ failed, [0-9]+ skipped$' "$log" | tail -1)
    rm -f "$log"
    if [ -z "$line" ]; then
        echo "run_tests: $bin ended without its summary line (exit status $rc)" >&2
        status=1
        continue
    fi
    read -r p _ f _ s _ <<<"${line//,/}"
    passed=$((passed + p)) failed=$((failed + f)) skipped=$((skipped + s))
    [ "$rc" -eq 0 ] || status=1
done
echo "tests: $* in $((SECONDS - start)) s"
[ "$failed" -eq 0 ] || status=1
echo "$passed passed, $failed failed, $skipped skipped"
exit $status
