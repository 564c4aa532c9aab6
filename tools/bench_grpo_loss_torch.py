#!/usr/bin/env python3
"""bench_grpo_loss_torch.py: the naive PyTorch GRPO loss through the LM head, the baseline of
`rusca bench grpo-loss` (SPEC.md: 16384 tokens, hidden 896, vocab 151936, fwd+bwd).

Naive = what a straightforward trainer writes: full logits = hidden @ W^T (bf16 matmul, then fp32),
divided by the temperature, log_softmax over the vocabulary, gather of the sampled tokens, the
clipped surrogate with dual clip and the k3 KL term, token-mean, backward to hidden and W.
Times fwd+bwd with CUDA events (median after warm-up) and reports the extra memory: peak allocated
during the step minus what the inputs already held.

Prints ONE JSON line, or {"error": ...} with exit status 3 without torch or a GPU.
Run:  python3 tools/bench_grpo_loss_torch.py --tokens 16384 --hidden 896 --vocab 151936
"""
import argparse
import json
import statistics
import sys


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tokens", type=int, default=16384)
    ap.add_argument("--hidden", type=int, default=896)
    ap.add_argument("--vocab", type=int, default=151936)
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    args = ap.parse_args()
    try:
        import torch
    except Exception as e:  # noqa: BLE001
        print(json.dumps({"error": f"cannot import torch: {e}"}))
        return 3
    if not torch.cuda.is_available():
        print(json.dumps({"error": "torch sees no CUDA device"}))
        return 3
    torch.manual_seed(0)
    N, C, V = args.tokens, args.hidden, args.vocab
    dev = "cuda"
    hidden = (torch.randn(N, C, device=dev) * 0.5).bfloat16().requires_grad_()
    W = (torch.randn(V, C, device=dev) * 0.02).bfloat16().requires_grad_()
    tokens = torch.randint(0, V, (N,), device=dev)
    adv = torch.randn(N, device=dev)
    old = torch.full((N,), -12.0, device=dev) + torch.randn(N, device=dev) * 0.1
    ref = old + torch.randn(N, device=dev) * 0.05
    eps_low, eps_high, c, beta, temperature = 0.2, 0.2, 3.0, 0.001, 1.0

    def step():
        logits = (hidden @ W.t()).float() / temperature
        logp = torch.log_softmax(logits, dim=-1).gather(1, tokens[:, None]).squeeze(1)
        ratio = torch.exp(torch.clamp(logp - old, -20, 20))
        pg = torch.maximum(-adv * ratio, -adv * torch.clamp(ratio, 1 - eps_low, 1 + eps_high))
        pg = torch.where(adv < 0, torch.minimum(pg, -adv * c), pg)
        kl = torch.exp(ref - logp) - (ref - logp) - 1
        loss = (pg + beta * kl).mean()
        loss.backward()
        hidden.grad = None
        W.grad = None

    times = []
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    for i in range(args.warmup + args.repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        step()
        end.record()
        torch.cuda.synchronize()
        if i >= args.warmup:
            times.append(start.elapsed_time(end))
    print(json.dumps({"ms_median": statistics.median(times), "extra_memory_bytes": torch.cuda.max_memory_allocated() - base,
                      "tokens": N, "hidden": C, "vocab": V, "torch": torch.__version__,
                      "device": torch.cuda.get_device_name(0)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
