#!/usr/bin/env python3
"""bench_cpu_train.py: PyTorch/transformers CPU training-throughput baseline for `rusca bench cpu-train`.

Builds a randomly initialised float32 model from a Hugging Face config.json and times full training
steps on random token batches (seeded): forward -> cross entropy on next-token targets -> backward ->
clip_grad_norm_(1.0) -> AdamW(lr 1e-4, weight_decay 0.01).step() -> zero_grad. Each step sees B*T
tokens (inputs are [B,T], targets are the same sequences shifted by one).

Prints ONE JSON line on stdout:
  {"tokens_per_s_median", "step_ms_median", "steps", "batch", "seq", "threads", "torch", "transformers",
   "params", "attn", "warmup", "step_ms_min"}
or {"error": "..."} with exit status 3 when torch/transformers cannot be imported.

Run:  python3 tools/bench_cpu_train.py --config PATH/config.json --batch 4 --seq 256 --steps 10 \\
          --warmup 2 --threads 2 [--attn eager|sdpa]
"""
import argparse
import json
import statistics
import sys

from hf_baseline import import_torch, model_from_config
import time


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", required=True, help="Hugging Face config.json (model_type, sizes, ...)")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--steps", type=int, default=10, help="timed steps")
    ap.add_argument("--warmup", type=int, default=2, help="untimed steps before the timed ones")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--attn", default="eager", choices=["eager", "sdpa"], help="HF attention implementation")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if args.steps < 1 or args.warmup < 0:
        ap.error("--steps must be >= 1 and --warmup >= 0")

    torch, transformers = import_torch(need_cuda=False)
    import torch.nn.functional as F

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    model, config = model_from_config(args.config, torch.float32, args.attn)
    model.train()
    params = sum(p.numel() for p in model.parameters())
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.01)

    gen = torch.Generator().manual_seed(args.seed)
    total = args.warmup + args.steps
    data = torch.randint(0, config.vocab_size, (total, args.batch, args.seq + 1), generator=gen)

    times = []
    for step in range(total):
        x, y = data[step, :, :-1], data[step, :, 1:]
        t0 = time.perf_counter()
        logits = model(input_ids=x, use_cache=False).logits
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        dt = time.perf_counter() - t0
        if step >= args.warmup:
            times.append(dt)
        print(f"step {step} loss {loss.item():.4f} {dt * 1e3:.1f} ms", file=sys.stderr)

    med = statistics.median(times)
    print(json.dumps({
        "tokens_per_s_median": round(args.batch * args.seq / med, 1),
        "step_ms_median": round(med * 1e3, 3),
        "steps": args.steps, "batch": args.batch, "seq": args.seq, "threads": args.threads,
        "torch": torch.__version__, "transformers": transformers.__version__, "params": params,
        "attn": args.attn, "warmup": args.warmup, "step_ms_min": round(min(times) * 1e3, 3),
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
