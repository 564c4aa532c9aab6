#!/usr/bin/env python3
"""plot_metrics.py: one PNG of a `rusca rl` run from its metrics.jsonl, four panels against step:
  1. training reward (mean over rollouts), scaffold ratio lambda, held-out score without scaffold
     (by the judge, and by the checker when the data has checks);
  2. response length (tokens) and the fractions of truncated responses and zero-variance groups;
  3. KL: to the reference (mean k3), between the old and the updated policy (ppo_kl), and the KL
     part of the loss;
  4. training reward by rollout index within the group (1 = most scaffold ... G = none): the
     scaffold's help shows as a spread that closes as lambda fades.

Usage: python3 tools/plot_metrics.py OUT/metrics.jsonl OUT/rl.png [--title TEXT]
Needs matplotlib (tools/demo.sh installs it when missing).
"""
import argparse
import json

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt


def load(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def series(rows, key):
    pts = [(r["step"], r[key]) for r in rows if key in r and r[key] is not None]
    return [p[0] for p in pts], [p[1] for p in pts]


def plot_keys(ax, rows, keys):
    drawn = False
    for key, label, style in keys:
        x, y = series(rows, key)
        if x:
            ax.plot(x, y, style, label=label, markersize=4)
            drawn = True
    if drawn:
        ax.legend(loc="best", fontsize=7)
    ax.grid(alpha=0.3)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("metrics")
    ap.add_argument("png")
    ap.add_argument("--title", default="rusca rl")
    args = ap.parse_args()
    rows = load(args.metrics)
    fig, axes = plt.subplots(2, 2, figsize=(12, 8))

    ax = axes[0][0]
    plot_keys(ax, rows, [("reward_mean", "training reward (mean over rollouts)", "-"),
                         ("lambda_step", "scaffold ratio lambda", "--"),
                         ("eval_checker_score", "held-out score, no scaffold (checker)", "o-"),
                         ("eval_score", "held-out score, no scaffold (judge)", "x:")])
    ax.set_ylim(-0.05, 1.05)
    ax.set_title("reward, lambda, held-out score", fontsize=9)

    ax = axes[0][1]
    plot_keys(ax, rows, [("response_len_mean", "response length (tokens)", "-")])
    ax.set_ylabel("tokens")
    twin = ax.twinx()
    plot_keys(twin, rows, [("truncation_rate", "truncated responses (right axis)", "r--"),
                           ("zero_variance_groups", "zero-variance groups (right axis)", "g:")])
    handles = ax.get_legend_handles_labels()[0] + twin.get_legend_handles_labels()[0]
    for a in (ax, twin):  # one legend for both axes, not two on top of each other
        if a.get_legend():
            a.get_legend().remove()
    if handles:
        twin.legend(handles=handles, loc="upper left", fontsize=7)
    twin.set_ylim(-0.05, 1.05)
    twin.set_ylabel("fraction")
    ax.set_title("length, truncation, groups without signal", fontsize=9)

    ax = axes[1][0]
    plot_keys(ax, rows, [("kl", "KL to the reference (mean k3)", "-"),
                         ("ppo_kl", "KL old -> updated policy (ppo_kl)", "--"),
                         ("kl_loss", "KL part of the loss", ":")])
    ax.set_title("KL", fontsize=9)

    ax = axes[1][1]
    by_index = [(r["step"], r["reward_by_rollout"]) for r in rows if "reward_by_rollout" in r]
    if by_index:
        G = len(by_index[0][1])
        cmap = plt.get_cmap("viridis")
        for i in range(G):
            ax.plot([s for s, _ in by_index], [v[i] for _, v in by_index], color=cmap(i / max(G - 1, 1)),
                    label=f"rollout {i + 1}", linewidth=1)
        ax.legend(loc="best", fontsize=6, ncol=2)
    ax.grid(alpha=0.3)
    ax.set_title("training reward by rollout index (1 = most scaffold)", fontsize=9)

    for a in axes[1]:
        a.set_xlabel("RL step")
    fig.suptitle(args.title)
    fig.tight_layout()
    fig.savefig(args.png, dpi=110)
    print(f"plot: {args.png}")


if __name__ == "__main__":
    main()
