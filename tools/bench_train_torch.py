#!/usr/bin/env python3
"""bench_train_torch.py: the PyTorch / Hugging Face GPU training baseline for `rusca bench train`.

SPEC.md's reference recipe: HF eager model in fp32 parameters with bf16 autocast, AdamW
(lr 1e-4, weight decay 0.01), grad-norm clipping 1.0, random token batches [B, T] (seeded),
next-token cross entropy. Times each full step (forward, backward, clip, AdamW, zero_grad) with
CUDA events after warm-up and reports the median, plus peak memory (torch.cuda.max_memory_allocated).

Prints ONE JSON line: {"tokens_per_s_median", "step_ms_median", "peak_memory_bytes", "params", ...}
or {"error": "..."} and exit status 3 when torch/transformers or a GPU are missing.

Run:  python3 tools/bench_train_torch.py --config data/bench_qwen2_0.5b_config.json --batch 8 --seq 1024
"""
import argparse
import json
import statistics
import sys

from hf_baseline import import_torch, model_from_config


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", required=True, help="Hugging Face config.json")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq", type=int, default=1024)
    ap.add_argument("--steps", type=int, default=10, help="timed steps")
    ap.add_argument("--warmup", type=int, default=3, help="untimed steps before the timed ones")
    ap.add_argument("--attn", default="eager", choices=["eager", "sdpa"], help="HF attention implementation")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    torch, transformers = import_torch(need_cuda=True)
    import torch.nn.functional as F

    torch.manual_seed(args.seed)
    model, config = model_from_config(args.config, torch.float32, args.attn)
    model = model.cuda()
    model.train()
    params = sum(p.numel() for p in model.parameters())
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.01)
    gen = torch.Generator().manual_seed(args.seed)
    total = args.warmup + args.steps
    data = torch.randint(0, config.vocab_size, (total, args.batch, args.seq + 1), generator=gen).cuda()

    torch.cuda.reset_peak_memory_stats()
    times = []
    for step in range(total):
        x, y = data[step, :, :-1], data[step, :, 1:]
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            logits = model(input_ids=x, use_cache=False).logits
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), y.reshape(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        end.record()
        torch.cuda.synchronize()
        if step >= args.warmup:
            times.append(start.elapsed_time(end) / 1e3)
        print(f"step {step} loss {loss.item():.4f} {times[-1] * 1e3 if times else 0:.1f} ms", file=sys.stderr)

    med = statistics.median(times)
    print(json.dumps({
        "tokens_per_s_median": round(args.batch * args.seq / med, 1),
        "step_ms_median": round(med * 1e3, 3),
        "peak_memory_bytes": torch.cuda.max_memory_allocated(),
        "steps": args.steps, "batch": args.batch, "seq": args.seq, "params": params,
        "torch": torch.__version__, "transformers": transformers.__version__, "attn": args.attn,
        "device": torch.cuda.get_device_name(0), "warmup": args.warmup,
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
