#!/usr/bin/env bash
# kill_loop.sh: crash consistency of `rusca sft` and `rusca rl` (CPU backend, tiny models).
# For each command: one uninterrupted reference run, then the same run killed with SIGKILL at random
# moments (mid-step, mid-checkpoint: a checkpoint is saved every step) and resumed with --resume
# each time, until it finishes. After every kill each checkpoint folder must load (`rusca forward`),
# and at the end the resumed run's weights and optimizer state must equal the reference's bit for
# bit. Then a save under a file-size limit (a full disk) must fail with a clear error and leave the
# previous checkpoint and `latest` intact.
#   tools/kill_loop.sh [SFT_KILLS [RL_KILLS]]     (defaults 30 and 25; the full loop takes minutes)
#   tools/kill_loop.sh --quick                    (2 + 2 kills, for make test)
# Prints one line per command and "kill_loop: OK (...)" at the end; exits non-zero on any failure.
set -uo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = "--quick" ]; then sft_kills=2 rl_kills=2 sft_steps=4 rl_steps=3
else sft_kills=${1:-30} rl_kills=${2:-25} sft_steps=40 rl_steps=20
fi
RUSCA=${RUSCA:-build/rusca}
RANDOM=${KILL_SEED:-13}  # the kill schedule is reproducible
work=$(mktemp -d /tmp/rusca_kill_XXXXXX)
trap 'rm -rf "$work"' EXIT
fail() { echo "kill_loop: FAIL: $*" >&2; exit 1; }
W=data/world
sft_args=(sft --init-config data/tiny_config.json --tokenizer data/tokenizer.model --data data/tiny_sft.jsonl
          --save-every 1 --batch 2 --seq 32 --threads 1 --seed 3 --quiet)
rl_args=(rl --policy $W/policy --judge $W/judge --judge-tokenizer $W/judge_tokenizer.model
         --judge-template $W/judge_template.txt --tokenizer $W/tokenizer.model --data $W/train.jsonl
         --reward checker --prompts-per-step 2 --group 4 --max-new-tokens 16 --lr 3e-4
         --save-every 1 --threads 1 --seed 5 --quiet --steps "$rl_steps")

now_ms() { date +%s%3N; }

# Every checkpoint folder in $1 not checked yet loads; `latest` names one of them.
declare -A checked
check_checkpoints() {
    local out=$1 d
    for d in "$out"/checkpoint-*; do
        [ -d "$d" ] || continue
        [ -n "${checked[$d]:-}" ] && continue
        "$RUSCA" forward --model "$d" --tokens "1 5 9" >/dev/null 2>"$work/forward.err" ||
            fail "$d does not load after a kill: $(cat "$work/forward.err")"
        checked[$d]=1
    done
    if [ -e "$out/latest" ]; then
        [ -d "$out/$(cat "$out/latest")" ] || fail "$out/latest names $(cat "$out/latest"), not a folder"
    fi
}

# The step of the checkpoint `latest` in $1 names (0 without one).
latest_step() {
    local n
    n=$(cat "$1/latest" 2>/dev/null) || { echo 0; return; }
    n=${n#checkpoint-}
    echo $((10#$n))
}

# run_killed NAME KILLS STEPS ARGS...: one uninterrupted reference run, then rounds of
# "start with --resume, SIGKILL at a random moment" until KILLS kills happened. A round ends when
# the run finishes; its final checkpoint must equal the reference's, and the next round starts
# afresh. Each delay is drawn within the reference's time for the steps still to do, so kills land
# in startup, steps and saves alike.
run_killed() {
    local name=$1 kills=$2 steps=$3
    shift 3
    local ref=$work/$name-ref out=$work/$name-killed t0 ms
    t0=$(now_ms)
    "$RUSCA" "$@" --out "$ref" >"$work/$name-ref.log" 2>&1 || fail "$name reference run: $(tail -3 "$work/$name-ref.log")"
    ms=$(($(now_ms) - t0))
    local last k=0 mid=0 runs=0 rounds=0 pid rc left d
    last=$(cat "$ref/latest")
    while [ "$k" -lt "$kills" ]; do
        rm -rf "$out"
        for d in "${!checked[@]}"; do [[ $d == "$out/"* ]] && unset "checked[$d]"; done
        rounds=$((rounds + 1))
        while :; do
            runs=$((runs + 1))
            left=$((steps - $(latest_step "$out") + 1))
            "$RUSCA" "$@" --out "$out" --resume >>"$work/$name-killed.log" 2>&1 &
            pid=$!
            if [ "$k" -lt "$kills" ]; then
                sleep "$(awk -v r=$RANDOM -v ms="$ms" -v f="$left/$steps" 'BEGIN { split(f, a, "/"); printf "%.3f", r / 32768 * ms * a[1] / a[2] / 1000 }')"
                if kill -0 "$pid" 2>/dev/null; then
                    kill -9 "$pid"
                    wait "$pid" 2>/dev/null
                    k=$((k + 1))
                    compgen -G "$out/.tmp-*" >/dev/null || compgen -G "$out/*.tmp" >/dev/null && mid=$((mid + 1))
                    check_checkpoints "$out"
                    continue
                fi
            fi
            wait "$pid"
            rc=$?
            [ "$rc" -eq 0 ] || fail "$name resumed run exited $rc: $(tail -3 "$work/$name-killed.log")"
            break
        done
        check_checkpoints "$out"
        [ "$(cat "$out/latest")" = "$last" ] || fail "$name: killed run ended at $(cat "$out/latest"), reference at $last"
        for f in model.safetensors train_state.safetensors; do
            cmp -s "$ref/$last/$f" "$out/$last/$f" || fail "$name: $last/$f differs from the uninterrupted run (round $rounds)"
        done
    done
    echo "kill_loop: $name: $k kills ($mid left a half-written checkpoint behind) over $runs runs in $rounds rounds;" \
        "every round's final $last bit-identical to the uninterrupted run (${ms} ms)"
    total_kills=$((total_kills + k))
}

# A full disk while saving: a file-size limit below the checkpoint's size. SIGXFSZ is ignored by
# rusca itself, so write() fails with EFBIG and the save must report it.
full_disk() {
    local out=$work/sft-killed before size_kb rc
    before=$(cat "$out/latest")
    size_kb=$(($(stat -c %s "$out/$before/model.safetensors") / 1024 / 2))
    (ulimit -f "$size_kb"; exec "$RUSCA" "${sft_args[@]}" --out "$out" --resume --steps $((sft_steps + 1))) \
        >"$work/full.log" 2>&1
    rc=$?
    [ "$rc" -eq 1 ] || fail "full disk: exit status $rc, expected 1: $(tail -3 "$work/full.log")"
    grep -q '^rusca: error: .*File too large' "$work/full.log" || fail "full disk: no clear error: $(tail -3 "$work/full.log")"
    [ "$(cat "$out/latest")" = "$before" ] || fail "full disk: latest moved from $before to $(cat "$out/latest")"
    unset "checked[$out/$before]"
    check_checkpoints "$out"
    echo "kill_loop: full disk: $(grep '^rusca: error' "$work/full.log"); $before and latest intact"
}

[ -x "$RUSCA" ] || fail "$RUSCA not built (make build/rusca)"
total_kills=0
run_killed sft "$sft_kills" "$sft_steps" "${sft_args[@]}" --steps "$sft_steps"
run_killed rl "$rl_kills" "$rl_steps" "${rl_args[@]}"
full_disk
echo "kill_loop: OK ($total_kills kills, no unloadable checkpoint, resumed runs bit-identical)"
