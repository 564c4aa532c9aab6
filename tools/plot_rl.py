#!/usr/bin/env python3
"""plot_rl.py: one PNG of a `rusca rl` run: training reward, scaffold ratio (lambda) and held-out
score without scaffold (by the checker and by the judge) against step.

Usage: python3 tools/plot_rl.py runs/demo/metrics.jsonl runs/demo/rl.png
Needs matplotlib (tools/demo.sh installs it when missing).
"""
import json
import sys

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt


def load(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def series(rows, key):
    pts = [(r["step"], r[key]) for r in rows if key in r]
    return [p[0] for p in pts], [p[1] for p in pts]


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    rows = load(sys.argv[1])
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for key, label, style in [("reward_mean", "training reward (mean over rollouts)", "-"),
                              ("lambda_step", "scaffold ratio lambda", "--"),
                              ("eval_checker_score", "held-out score, no scaffold (checker)", "o-"),
                              ("eval_score", "held-out score, no scaffold (judge)", "x:")]:
        x, y = series(rows, key)
        if x:
            ax.plot(x, y, style, label=label, markersize=4)
    ax.set_xlabel("RL step")
    ax.set_ylim(-0.05, 1.05)
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    ax.set_title("rusca rl on the shipped world (data/world)")
    fig.tight_layout()
    fig.savefig(sys.argv[2], dpi=110)
    print(f"plot: {sys.argv[2]}")


if __name__ == "__main__":
    main()
