#!/usr/bin/env python3
"""experiment.py: RuscaRL vs plain rubric GRPO on the shipped world, the paper's main comparison.

Runs `rusca rl` from the shipped policy (data/world/policy) with the shipped judge for every
scaffold schedule (sigmoid = RuscaRL, none = plain rubric GRPO, constant = scaffold always on,
linear decay) and every seed, all with the same steps, prompts and rollouts (data/world/rl_args.txt),
then scores each final policy on the held-out prompts WITHOUT scaffold, by the programmatic checker
and by the judge. Best-of-N of the start policy and of every final policy measures what a policy
can reach, not only what it usually writes (the paper's argument is that the scaffold widens it).

Writes one JSON file (default bench/results/world-experiment-<date>.json) with every run's numbers
and curve, a PNG of held-out score against step, and prints a Markdown table for README.md.
Usage: python3 tools/experiment.py [--seeds 1 2 3] [--parallel 2] [--best-of-n 8]
"""
import argparse
import datetime
import json
import os
import shlex
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

W = "data/world"
JUDGE = ["--judge", f"{W}/judge", "--judge-tokenizer", f"{W}/judge_tokenizer.model", "--judge-template", f"{W}/judge_template.txt"]
REWARD = "judge"  # --reward: what rewards the rollouts (the judge, as in the paper; or the checker)
SCHEDULES = {"sigmoid": "RuscaRL (sigmoid decay)", "none": "plain rubric GRPO (no scaffold)",
             "constant": "scaffold always on (constant)", "linear": "linear decay"}


def rl_args():
    with open(f"{W}/rl_args.txt", encoding="utf-8") as f:
        return shlex.split(f.read())


def run(cmd, log):
    with open(log, "w", encoding="utf-8") as f:
        subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, check=True, env=dict(os.environ, OMP_NUM_THREADS="1"))


def evaluate(policy, out_json, best_of_n, seed=1):
    """Held-out score without scaffold: checker and judge, as `rusca eval --json` writes it."""
    run(["build/rusca", "eval", "--policy", policy, "--tokenizer", f"{W}/tokenizer.model", *JUDGE, "--data", f"{W}/heldout.jsonl", "--max-new-tokens", "48", "--best-of-n", str(best_of_n), "--seed", str(seed), "--json", out_json], out_json + ".log")
    with open(out_json, encoding="utf-8") as f:
        return json.load(f)


def judge_accuracy(out):
    """The judge against the checker on held-out (reply, criterion) pairs (tools/make_world.py writes
    them to runs/world/judge_heldout.jsonl), positive and negative criteria apart, as `rusca judge`
    counts them."""
    pairs = "runs/world/judge_heldout.jsonl"
    if not os.path.exists(pairs):
        subprocess.run(["python3", "tools/make_world.py", "--out-data", f"{out}/world_check"], check=True,
                       stdout=subprocess.DEVNULL)
    log = f"{out}/judge_heldout.log"
    run(["build/rusca", "judge", "--judge", f"{W}/judge", "--tokenizer", f"{W}/judge_tokenizer.model", "--template",
         f"{W}/judge_template.txt", "--data", pairs, "--out", f"{out}/judge_heldout_verdicts.jsonl", "--device", "cpu"], log)
    agree = {"positive": [0, 0], "negative": [0, 0]}  # [agreeing, total]
    with open(f"{out}/judge_heldout_verdicts.jsonl", encoding="utf-8") as f:
        for line in f:
            for c in json.loads(line)["criteria"]:
                k = agree["positive" if c["points"] > 0 else "negative"]
                k[0] += c["met"] == c["checker_met"]
                k[1] += 1
    return {k: {"accuracy": a / n, "pairs": n} for k, (a, n) in agree.items()} | {"data": pairs}


def finished(d):
    """The run in d reached its last step (its metrics hold every step and a final checkpoint exists)."""
    steps = int(rl_args()[rl_args().index("--steps") + 1])
    try:
        with open(f"{d}/metrics.jsonl", encoding="utf-8") as f:
            last = [json.loads(line) for line in f if line.strip()][-1]
        return last.get("step") == steps and os.path.exists(f"{d}/latest")
    except (OSError, IndexError, ValueError):
        return False


def train_and_score(schedule, seed, out, best_of_n):
    d = f"{out}/{schedule}-seed{seed}"
    os.makedirs(d, exist_ok=True)
    if not finished(d):  # a run finished earlier (same settings) is scored again, not retrained
        run(["build/rusca", "rl", "--policy", f"{W}/policy", *JUDGE, "--tokenizer", f"{W}/tokenizer.model",
             "--data", f"{W}/train.jsonl", "--eval-data", f"{W}/heldout.jsonl",
             *rl_args(), "--scaffold", schedule, "--seed", str(seed), "--reward", REWARD, "--out", d, "--threads", "1"],
            f"{d}/rl.log")
    with open(f"{d}/latest", encoding="utf-8") as f:
        ckpt = os.path.join(d, f.read().strip())  # `latest` names the checkpoint inside the run directory
    with open(f"{d}/metrics.jsonl", encoding="utf-8") as f:
        rows = [json.loads(line) for line in f if line.strip()]
    # the run's own time (rollouts, reward, updates, held-out evals), also for a reused run
    seconds = sum(r.get(k, 0) for r in rows for k in ("rollout_s", "judge_s", "update_s", "eval_s"))
    final = evaluate(ckpt, f"{d}/eval.json", 1)
    bon = evaluate(ckpt, f"{d}/eval_bon.json", best_of_n)
    curve = [{k: r[k] for k in ("step", "eval_checker_score", "eval_score") if k in r} for r in rows if "eval_score" in r]
    print(f"  {schedule:8s} seed {seed}: held-out checker {final['checker']['score']:.3f}, judge {final['judge']['score']:.3f}, "
          f"best-of-{best_of_n} checker {bon['checker']['score']:.3f} ({seconds:.0f} s)", flush=True)
    return {"schedule": schedule, "seed": seed, "rl_seconds": round(seconds, 1), "checker": final["checker"],
            "judge": final["judge"], "judge_agreement": final["judge_agreement"], "best_of_n": bon["checker"],
            "best_of_n_judge": bon["judge"], "curve": curve,
            "reward_mean": [r.get("reward_mean") for r in rows if "reward_mean" in r],
            "lambda_step": [r.get("lambda_step") for r in rows if "reward_mean" in r]}


def summary(runs, key):
    xs = [r[key]["score"] for r in runs]
    return {"mean": statistics.mean(xs), "std": statistics.stdev(xs) if len(xs) > 1 else 0.0, "min": min(xs), "max": max(xs),
            "per_seed": xs}


def plot(result, path):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("experiment: matplotlib missing, no plot (pip install matplotlib)")
        return
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for schedule, label in SCHEDULES.items():
        runs = [r for r in result["runs"] if r["schedule"] == schedule]
        if not runs:
            continue
        steps = [p["step"] for p in runs[0]["curve"]]
        ys = [[r["curve"][i]["eval_checker_score"] for r in runs] for i in range(len(steps))]
        mean = [statistics.mean(y) for y in ys]
        lo, hi = [min(y) for y in ys], [max(y) for y in ys]
        line, = ax.plot(steps, mean, "o-", markersize=3, label=f"{label}, {len(runs)} seeds")
        ax.fill_between(steps, lo, hi, color=line.get_color(), alpha=0.15)
    ax.set_xlabel("RL step")
    ax.set_ylabel("held-out score, no scaffold (checker)")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
    ax.set_title("RuscaRL vs plain rubric GRPO on the shipped world (mean, band = min..max over seeds)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"plot: {path}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--schedules", nargs="+", default=list(SCHEDULES), choices=list(SCHEDULES))
    ap.add_argument("--parallel", type=int, default=2, help="runs at once (each uses one thread)")
    ap.add_argument("--best-of-n", type=int, default=8)
    ap.add_argument("--reward", default="judge", choices=["judge", "checker"], help="what rewards the rollouts")
    ap.add_argument("--out", default="runs/experiment")
    ap.add_argument("--json", default=f"bench/results/world-experiment-{datetime.date.today().isoformat()}.json")
    ap.add_argument("--judge-accuracy-into", metavar="JSON", help="only add the judge's held-out accuracy to this result file")
    a = ap.parse_args()
    if a.judge_accuracy_into:
        with open(a.judge_accuracy_into, encoding="utf-8") as f:
            result = json.load(f)
        os.makedirs(a.out, exist_ok=True)
        result["judge_accuracy_heldout"] = judge_accuracy(a.out)
        with open(a.judge_accuracy_into, "w", encoding="utf-8") as f:
            json.dump(result, f, indent=1)
        print(json.dumps(result["judge_accuracy_heldout"]))
        return
    global REWARD
    REWARD = a.reward
    os.makedirs(a.out, exist_ok=True)
    t0 = time.time()
    print(f"experiment: {len(a.schedules)} schedules x {len(a.seeds)} seeds, rl args: {' '.join(rl_args())}", flush=True)
    start = evaluate(f"{W}/policy", f"{a.out}/start.json", 1)
    run(["build/rusca", "eval", "--policy", f"{W}/policy", "--tokenizer", f"{W}/tokenizer.model", *JUDGE,
         "--data", f"{W}/heldout.jsonl", "--max-new-tokens", "48", "--full-scaffold", "--json", f"{a.out}/start_scaffold.json"], f"{a.out}/start_scaffold.log")
    with open(f"{a.out}/start_scaffold.json", encoding="utf-8") as f:
        start_scaffold = json.load(f)
    start_bon = evaluate(f"{W}/policy", f"{a.out}/start_bon.json", a.best_of_n)
    print(f"  start policy: held-out checker {start['checker']['score']:.3f} (judge {start['judge']['score']:.3f}); "
          f"with full scaffold {start_scaffold['checker']['score']:.3f}; best-of-{a.best_of_n} {start_bon['checker']['score']:.3f}",
          flush=True)
    jobs = [(s, k) for k in a.seeds for s in a.schedules]
    with ThreadPoolExecutor(max_workers=a.parallel) as pool:
        runs = list(pool.map(lambda j: train_and_score(j[0], j[1], a.out, a.best_of_n), jobs))
    result = {"what": "rusca rl on data/world: held-out score without scaffold (96 prompts), by checker and judge",
              "date": datetime.datetime.utcnow().isoformat(timespec="seconds") + "Z", "rl_args": rl_args(), "reward": a.reward,
              "seeds": a.seeds, "best_of_n": a.best_of_n, "wall_seconds": round(time.time() - t0, 1),
              "start": {"checker": start["checker"], "judge": start["judge"], "full_scaffold_checker": start_scaffold["checker"],
                        "full_scaffold_judge": start_scaffold["judge"], "best_of_n": start_bon["checker"],
                        "judge_agreement": start["judge_agreement"]},
              "judge_accuracy_heldout": judge_accuracy(a.out), "by_schedule": {}, "runs": runs}
    for s in a.schedules:
        rs = [r for r in runs if r["schedule"] == s]
        result["by_schedule"][s] = {"label": SCHEDULES[s], "checker": summary(rs, "checker"), "judge": summary(rs, "judge"),
                                    "best_of_n": summary(rs, "best_of_n")}
    os.makedirs(os.path.dirname(a.json) or ".", exist_ok=True)
    with open(a.json, "w", encoding="utf-8") as f:
        json.dump(result, f, indent=1)
    plot(result, os.path.splitext(a.json)[0] + ".png")
    print(f"\n| schedule | held-out checker (mean +- std over {len(a.seeds)} seeds) | per seed | judge | best-of-{a.best_of_n} checker |")
    print("|---|---|---|---|---|")
    st = result["start"]
    print(f"| start policy | {st['checker']['score']:.3f} | - | {st['judge']['score']:.3f} | {st['best_of_n']['score']:.3f} |")
    print(f"| start policy + full scaffold | {st['full_scaffold_checker']['score']:.3f} | - | {st['full_scaffold_judge']['score']:.3f} | - |")
    for s, b in result["by_schedule"].items():
        c, j, n = b["checker"], b["judge"], b["best_of_n"]
        print(f"| {b['label']} | {c['mean']:.3f} +- {c['std']:.3f} | {', '.join(f'{x:.3f}' for x in c['per_seed'])} | "
              f"{j['mean']:.3f} +- {j['std']:.3f} | {n['mean']:.3f} +- {n['std']:.3f} |")
    print(f"\nexperiment: {a.json} ({time.time() - t0:.0f} s)")


if __name__ == "__main__":
    sys.exit(main())
