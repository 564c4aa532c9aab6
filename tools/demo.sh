#!/usr/bin/env bash
# demo.sh (`make demo`): RuscaRL on the world rusca ships (data/world/, data/README.md).
# The policy (data/world/policy) follows a scaffold but does not know the rubric content; the
# judge (data/world/judge) answers yes/no per criterion. We score the held-out prompts WITHOUT
# scaffold (by the programmatic checker and by the judge), train with `rusca rl` (sigmoid scaffold
# decay), score again, and plot reward, lambda and held-out score against step.
# The rollouts are rewarded by the checker (REWARD=checker, the default) because the tiny judge we
# could train on 2 CPU cores does not yet agree with the checker well enough to train on
# (data/README.md gives its accuracy); REWARD=judge tools/demo.sh rewards them with the judge.
# `rusca rl` trains on the GPU when there is one, else on the CPU backend. Extra arguments go to
# `rusca rl` (e.g. --steps 20; --threads 1 on a machine whose cores are busy with other jobs, where
# two OpenMP threads waiting on each other made the updates ten times slower).
set -euo pipefail
cd "$(dirname "$0")/.."
out=runs/demo
rm -rf "$out" && mkdir -p "$out"
start=$(date +%s)
W=data/world
judge=(--judge $W/judge --judge-tokenizer $W/judge_tokenizer.model --judge-template $W/judge_template.txt)
common=(--tokenizer $W/tokenizer.model "${judge[@]}" --data $W/heldout.jsonl --max-new-tokens 48 --seed 1)

echo "== rusca demo: RuscaRL on the shipped rubric world ($W: $(wc -l < $W/train.jsonl) train / $(wc -l < $W/heldout.jsonl) held-out prompts) =="
build/rusca info
echo "-- held-out score of the starting policy, no scaffold (what the policy writes on its own):"
build/rusca eval --policy $W/policy "${common[@]}" --json $out/before.json
echo "-- the same prompts with every criterion shown as a scaffold (what the scaffold makes it write):"
build/rusca eval --policy $W/policy "${common[@]}" --full-scaffold --json $out/before_scaffold.json

echo "-- rusca rl (the GPU when there is one, else the CPU backend): sigmoid scaffold decay, reward by the ${REWARD:-checker}, held-out score every 10 steps"
build/rusca rl --policy $W/policy "${judge[@]}" --tokenizer $W/tokenizer.model \
    --data $W/train.jsonl --eval-data $W/heldout.jsonl $(cat $W/rl_args.txt) --scaffold sigmoid --reward "${REWARD:-checker}" --out $out "$@"

echo "-- held-out score after RuscaRL, no scaffold:"
build/rusca eval --policy "$out/$(cat $out/latest)" "${common[@]}" --json $out/after.json

# matplotlib for the plot: pip (user site) when missing, Debian's package as a fallback.
if ! python3 -c 'import matplotlib' 2>/dev/null; then
    echo "installing matplotlib for the plot (pip)..."
    python3 -m pip install --quiet --user matplotlib 2>/dev/null || python3 -m pip install --quiet matplotlib || true
fi
py=python3
if ! python3 -c 'import matplotlib' 2>/dev/null; then  # no pip: Debian's package, for the system python
    [ "$(id -u)" -eq 0 ] && apt-get install -y -qq python3-matplotlib >/dev/null 2>&1 || true
    py=/usr/bin/python3
fi
$py tools/plot_metrics.py $out/metrics.jsonl $out/rl.png --title "rusca rl on the shipped world (data/world)"

python3 - "$out" <<'PY'
import json, sys
out = sys.argv[1]
b, s, a = (json.load(open(f"{out}/{n}.json")) for n in ("before", "before_scaffold", "after"))
print("== held-out score (96 prompts, no scaffold; mean reward clipped to [0,1], +- bootstrap std)")
print(f"   {'':28s} {'checker':>16s} {'judge':>16s}")
for name, r in (("start policy", b), ("start policy + full scaffold", s), ("after RuscaRL", a)):
    print(f"   {name:28s} {r['checker']['score']:.3f} +- {r['checker']['score_std']:.3f}   "
          f"{r['judge']['score']:.3f} +- {r['judge']['score_std']:.3f}")
ag = a["judge_agreement"]
print(f"   judge vs checker after training: {100*ag['positive']:.1f}% of positive, {100*ag['negative']:.1f}% of negative criteria")
print(f"   metrics: {out}/metrics.jsonl   plot: {out}/rl.png   checkpoint: {out}/{open(out + '/latest').read().strip()}")
PY
echo "demo wall time: $(( $(date +%s) - start )) s"
