#!/usr/bin/env bash
# gpu_check.sh: the one script to run on the GPU machine (see ../shared/GPU.md and the device tool).
# Build here first (`make -j2`), then run it there with build/ carried along:
#     tools/gpu_check.sh            # writes $OUT/gpu_check.json (or ./gpu_check_out/ without $OUT)
# It runs, in order: `rusca info`; every GPU test (GoogleTest filter *Cuda*); the same tests under
# compute-sanitizer memcheck; then each GPU benchmark that exists (`rusca bench <name>`, each with
# its PyTorch baseline in the same run). A short table is printed last; the full numbers go to JSON.
set -uo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-gpu_check_out}"
mkdir -p "$out"
results="$out/gpu_check.json"
step() { echo; echo "== $*"; }

step "rusca info"
build/rusca info | tee "$out/info.txt"

step "GPU tests"
build/rusca_tests --gtest_filter='*Cuda*' --gtest_output="json:$out/gpu_tests.json" 2>&1 | tee "$out/gpu_tests.txt" | tail -25
tests_rc=${PIPESTATUS[0]}

step "compute-sanitizer memcheck on the GPU tests"
if command -v compute-sanitizer >/dev/null; then
    compute-sanitizer --tool memcheck --error-exitcode 9 build/rusca_tests --gtest_filter='*Cuda*' \
        > "$out/memcheck.txt" 2>&1
    memcheck_rc=$?
    tail -5 "$out/memcheck.txt"
else
    memcheck_rc=-1; echo "compute-sanitizer not found"
fi

step "benchmarks"
benches=()
for b in $(build/rusca bench --help 2>/dev/null | awk '/^Subcommands:/{s=1;next} s&&NF{print $1}'); do
    [ "$b" = cpu-train ] && continue
    echo "-- rusca bench $b"
    build/rusca bench "$b" --json "$out/bench_$b.json" 2>&1 | tail -8
    benches+=("$b")
done

python3 - "$out" "$tests_rc" "$memcheck_rc" "${benches[@]}" <<'PY'
import json, os, sys
out, tests_rc, memcheck_rc, benches = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4:]
res = {"gpu_tests_rc": tests_rc, "memcheck_rc": memcheck_rc, "info": open(f"{out}/info.txt").read()}
try:
    t = json.load(open(f"{out}/gpu_tests.json"))
    res["gpu_tests"] = {"tests": t.get("tests"), "failures": t.get("failures"), "disabled": t.get("disabled")}
except Exception as e:
    res["gpu_tests"] = {"error": str(e)}
res["benchmarks"] = {b: json.load(open(f"{out}/bench_{b}.json")) for b in benches if os.path.exists(f"{out}/bench_{b}.json")}
json.dump(res, open(f"{out}/gpu_check.json", "w"), indent=2)
print("\n== summary")
print(f"GPU tests rc={tests_rc}  memcheck rc={memcheck_rc}  benchmarks: {', '.join(benches) or 'none'}")
PY
