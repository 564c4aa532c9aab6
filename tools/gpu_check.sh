#!/usr/bin/env bash
# gpu_check.sh: the one script to run on the GPU machine (see ../shared/GPU.md and the device tool).
# Build here first (`make -j2 test-bins`), then run it there with build/ carried along:
#     tools/gpu_check.sh            # writes $OUT/gpu_check.json (or ./gpu_check_out/ without $OUT)
# In order, each step bounded in time so the whole script fits in about 8 minutes:
#   1. `rusca info`: fails unless a real GPU is seen (not the SIMT emulator, not "none").
#   2. Every GPU test (GoogleTest filter *Cuda*), including tests/test_cuda_ptx.cu, which checks the
#      hardware's mma.sync/ldmatrix against the PTX ISA tables the emulator is checked against on the
#      same random inputs. Fails if any test fails or any CUDA test was skipped.
#   3. compute-sanitizer: memcheck on the GPU tests, racecheck and synccheck on small attention and
#      kv-attention cases. Where the tool refuses the device, it says so plainly (not a failure).
#   4. Each GPU benchmark (`rusca bench <name>`, each with its PyTorch baseline in the same run).
# A short table is printed last; the full results go to JSON. Exit status 1 when a check failed.
set -uo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-gpu_check_out}"
mkdir -p "$out"
export OMP_WAIT_POLICY=passive PATH="$PATH:/usr/local/cuda/bin"
step() { echo; echo "== $*"; }
status=0
fail() { echo "gpu_check: FAIL: $*"; status=1; }

step "rusca info"
build/rusca info 2>&1 | tee "$out/info.txt"
if grep -q '^GPU 0: ' "$out/info.txt" && ! grep -qi 'emulat' "$out/info.txt"; then gpu_seen=1; else gpu_seen=0; fi
[ "$gpu_seen" = 1 ] || fail "rusca info sees no GPU"

step "GPU tests (*Cuda*)"
timeout 240 build/rusca_tests --gtest_filter='*Cuda*' --gtest_output="json:$out/gpu_tests.json" \
    > "$out/gpu_tests.txt" 2>&1
tests_rc=$?
tail -15 "$out/gpu_tests.txt"
[ "$tests_rc" = 0 ] || fail "GPU tests exited with status $tests_rc (124: timed out)"
skipped=$(awk '/^[0-9]+ passed, [0-9]+ failed, [0-9]+ skipped$/{n=$5} END{print n+0}' "$out/gpu_tests.txt")
[ "$skipped" = 0 ] || fail "$skipped CUDA tests skipped: every CUDA test must run on a GPU"

# Runs compute-sanitizer with tool $1 on gtest filter $2 (time limit $3 s); prints and returns
# "ok", "errors", "refused" (the tool would not instrument this device) or "absent".
sanitize() {
    local tool=$1 filter=$2 limit=$3 log="$out/sanitizer_$1.txt"
    command -v compute-sanitizer >/dev/null || { echo absent; return; }
    timeout "$limit" compute-sanitizer --tool "$tool" --error-exitcode 9 \
        build/rusca_tests --gtest_filter="$filter" > "$log" 2>&1
    local rc=$?
    if grep -qiE 'not supported|unable to (attach|initialize)|device .*unsupported|no supported device' "$log"; then
        echo refused
    elif [ "$rc" = 0 ]; then echo ok
    elif [ "$rc" = 124 ]; then echo timeout
    else echo errors; fi
}
small_attention='CudaAttention.MatchesTwinAcrossShapes:CudaKvAttention.MatchesCpuTwin'
step "compute-sanitizer"
memcheck=$(sanitize memcheck '*Cuda*-*Longer*' 150)
racecheck=$(sanitize racecheck "$small_attention" 60)
synccheck=$(sanitize synccheck "$small_attention" 60)
for r in "memcheck=$memcheck" "racecheck=$racecheck" "synccheck=$synccheck"; do
    case $r in
    *=refused) echo "$r: compute-sanitizer refused this device; the emulator's checks (make emu-tsan, emu-asan) stand in" ;;
    *=absent) echo "$r: compute-sanitizer is not installed here" ;;
    *=ok) echo "$r: clean" ;;
    *) echo "$r: see $out/sanitizer_${r%%=*}.txt"; fail "compute-sanitizer ${r%%=*}: ${r#*=}" ;;
    esac
done

step "benchmarks"
benches=()
for b in $(build/rusca bench --help 2>/dev/null | awk '/^Subcommands:/{s=1;next} s&&NF{print $1}'); do
    case $b in cpu-train|tokenizer) continue ;; esac
    echo "-- rusca bench $b"
    timeout 60 build/rusca bench "$b" --json "$out/bench_$b.json" 2>&1 | tail -6
    benches+=("$b")
done

python3 - "$out" "$gpu_seen" "$tests_rc" "$skipped" "$memcheck" "$racecheck" "$synccheck" "$status" \
    "${benches[@]}" <<'PY'
import json, os, sys
out, gpu_seen, tests_rc, skipped, memcheck, racecheck, synccheck, status = sys.argv[1:9]
benches = sys.argv[9:]
res = {"gpu_seen": gpu_seen == "1", "gpu_tests_rc": int(tests_rc), "cuda_tests_skipped": int(skipped),
       "compute_sanitizer": {"memcheck": memcheck, "racecheck": racecheck, "synccheck": synccheck},
       "info": open(f"{out}/info.txt").read(), "passed": status == "0"}
try:
    t = json.load(open(f"{out}/gpu_tests.json"))
    res["gpu_tests"] = {"tests": t.get("tests"), "failures": t.get("failures"), "disabled": t.get("disabled")}
except Exception as e:
    res["gpu_tests"] = {"error": str(e)}
res["benchmarks"] = {b: json.load(open(f"{out}/bench_{b}.json")) for b in benches
                     if os.path.exists(f"{out}/bench_{b}.json")}
json.dump(res, open(f"{out}/gpu_check.json", "w"), indent=2)
print("\n== summary")
print(f"GPU seen: {res['gpu_seen']}  GPU tests rc={tests_rc} skipped={skipped}")
print(f"compute-sanitizer: memcheck={memcheck} racecheck={racecheck} synccheck={synccheck}")
for b, r in res["benchmarks"].items():
    print(f"bench {b}: " + json.dumps(r)[:160])
print("gpu_check: " + ("PASS" if status == "0" else "FAIL"))
PY
exit $status
