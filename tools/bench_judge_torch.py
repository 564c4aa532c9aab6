#!/usr/bin/env python3
"""bench_judge_torch.py: the PyTorch / Hugging Face baseline for `rusca bench judge`.

The straightforward way to judge with next-token logits: every (conversation, response, criterion)
is its own full judge prompt, run through one prefill (a forward pass, no KV cache kept) in batches
of --batch prompts; only the last position's logits are computed (logits_to_keep=1) and the margin
is logit(yes) - logit(no). Random bf16 weights from the config.json, random tokens of the shapes
given (HealthBench-like: ~300-token conversation, 512-token response, ~12 criteria of ~40 tokens).
Timed end to end between torch.cuda.synchronize() calls after one untimed warm-up pass; the median
of --repeats passes is reported.

Prints ONE JSON line: {"criteria_per_s_median", "seconds_median", "tokens_per_s_median", ...}, or
{"error": "..."} with exit status 3 when torch / transformers / a GPU are missing.

Run:  python3 tools/bench_judge_torch.py --config data/bench_qwen2_0.5b_config.json
"""
import argparse
import json
import statistics
import sys

from hf_baseline import import_torch, model_from_config
import time


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", required=True, help="Hugging Face config.json")
    ap.add_argument("--responses", type=int, default=64)
    ap.add_argument("--criteria", type=int, default=12, help="criteria per response")
    ap.add_argument("--conversation-len", type=int, default=300)
    ap.add_argument("--response-len", type=int, default=512)
    ap.add_argument("--criterion-len", type=int, default=40)
    ap.add_argument("--batch", type=int, default=16, help="judge prompts per forward pass")
    ap.add_argument("--repeats", type=int, default=3, help="timed passes over all prompts")
    ap.add_argument("--attn", default="sdpa", choices=["eager", "sdpa"], help="HF attention implementation")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    torch, transformers = import_torch(need_cuda=True)

    torch.manual_seed(args.seed)
    model, config = model_from_config(args.config, torch.bfloat16, args.attn)
    model = model.cuda().eval()
    V = config.vocab_size
    yes_id, no_id = V // 3, V // 2

    # Every full prompt: the response's conversation + response, then one criterion.
    gen = torch.Generator().manual_seed(args.seed)
    prefix_len = args.conversation_len + args.response_len
    prompts = []
    for _ in range(args.responses):
        prefix = torch.randint(0, V, (prefix_len,), generator=gen)
        for _ in range(args.criteria):
            prompts.append(torch.cat([prefix, torch.randint(0, V, (args.criterion_len,), generator=gen)]))
    prompts = torch.stack(prompts).cuda()  # [responses * criteria, prefix + criterion], all one length
    n = prompts.shape[0]

    def last_logits(ids):
        try:
            return model(input_ids=ids, use_cache=False, logits_to_keep=1).logits[:, -1, :]
        except TypeError:  # an older transformers without logits_to_keep: the full logits, last row
            return model(input_ids=ids, use_cache=False).logits[:, -1, :]

    times = []
    for run in range(1 + args.repeats):  # run 0: warm-up
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        margins = []
        with torch.inference_mode():
            for b in range(0, n, args.batch):
                logits = last_logits(prompts[b:b + args.batch]).float()
                margins.append(logits[:, yes_id] - logits[:, no_id])
        met = (torch.cat(margins) > 0).float().mean().item()  # synchronizes
        torch.cuda.synchronize()
        dt = time.perf_counter() - t0
        print(f"run {run}: {dt:.3f} s, {n / dt:.0f} criteria/s", file=sys.stderr)
        if run > 0:
            times.append(dt)

    med = statistics.median(times)
    print(json.dumps({
        "criteria_per_s_median": round(n / med, 1),
        "seconds_median": round(med, 4),
        "tokens_per_s_median": round(n * prompts.shape[1] / med, 1),
        "criteria": n, "prompt_len": int(prompts.shape[1]), "batch": args.batch, "repeats": args.repeats,
        "fraction_met": met, "attn": args.attn,
        "torch": torch.__version__, "transformers": transformers.__version__,
        "device": torch.cuda.get_device_name(0),
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
