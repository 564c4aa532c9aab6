#!/usr/bin/env python3
"""bench_generate_torch.py: the Hugging Face `generate` baseline for `rusca bench generate`.

SPEC.md's reference: the model from a config.json with random weights in bf16 on the GPU, a batch of
random prompts of the same length, `model.generate(do_sample=True)` at temperature 1 with top-k and
top-p off, exactly `new_tokens` new tokens per prompt (min_new_tokens = max_new_tokens, so no row
stops early; rusca's benchmark uses no stop tokens either). Each run is timed end to end (prefill +
decode + sampling) between torch.cuda.synchronize() calls, after one untimed warm-up run; the
median of the timed runs is reported.

Prints ONE JSON line: {"tokens_per_s_median", "seconds_median", ...}, or {"error": "..."} with exit
status 3 when torch / transformers / a GPU are missing.

Run:  python3 tools/bench_generate_torch.py --config data/bench_qwen2_0.5b_config.json
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
    ap.add_argument("--batch", type=int, default=64, help="prompts (one rollout each)")
    ap.add_argument("--prompt-len", type=int, default=128)
    ap.add_argument("--new-tokens", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=3, help="timed runs")
    ap.add_argument("--attn", default="sdpa", choices=["eager", "sdpa"], help="HF attention implementation")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    torch, transformers = import_torch(need_cuda=True)

    torch.manual_seed(args.seed)
    model, config = model_from_config(args.config, torch.bfloat16, args.attn)
    model = model.cuda().eval()
    params = sum(p.numel() for p in model.parameters())
    gen = torch.Generator().manual_seed(args.seed)
    input_ids = torch.randint(0, config.vocab_size, (args.batch, args.prompt_len), generator=gen).cuda()
    attention_mask = torch.ones_like(input_ids)
    kwargs = dict(max_new_tokens=args.new_tokens, min_new_tokens=args.new_tokens, do_sample=True, temperature=1.0,
                  top_k=0, top_p=1.0, pad_token_id=0)

    times = []
    for run in range(1 + args.repeats):  # run 0: warm-up
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        with torch.inference_mode():
            out = model.generate(input_ids=input_ids, attention_mask=attention_mask, **kwargs)
        torch.cuda.synchronize()
        dt = time.perf_counter() - t0
        new = out.shape[1] - args.prompt_len
        if new != args.new_tokens:
            print(json.dumps({"error": f"generate produced {new} new tokens, not {args.new_tokens}"}))
            return 4
        print(f"run {run}: {dt:.3f} s, {args.batch * new / dt:.0f} tokens/s", file=sys.stderr)
        if run > 0:
            times.append(dt)

    med = statistics.median(times)
    print(json.dumps({
        "tokens_per_s_median": round(args.batch * args.new_tokens / med, 1),
        "seconds_median": round(med, 4),
        "batch": args.batch, "prompt_len": args.prompt_len, "new_tokens": args.new_tokens,
        "repeats": args.repeats, "params": params, "attn": args.attn,
        "torch": torch.__version__, "transformers": transformers.__version__,
        "device": torch.cuda.get_device_name(0),
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
