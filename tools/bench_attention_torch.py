#!/usr/bin/env python3
"""bench_attention_torch.py: PyTorch baseline for `rusca bench attention` (cuda/attention_bench.cu).

Times torch.nn.functional.scaled_dot_product_attention(is_causal=True) forward and backward in bf16 on
the same shapes and the same memory layout as rusca: q [B, T, Hq, D], k, v [B, T, Hkv, D], passed to
SDPA as transposed views [B, H, T, D] (no copies; FlashAttention's native layout). Inputs are uniform
random (q, k in [-2, 2), v, dout in [-1, 1)) like rusca's benchmark.

Variants, each timed when it runs (a variant whose backend refuses the shape is reported as null):
  gqa/default       enable_gqa=True, PyTorch picks the backend
  gqa/flash         enable_gqa=True, FlashAttention backend forced
  expanded/default  k, v repeated to Hq heads beforehand (outside the timing), plain SDPA
  expanded/flash    the same, FlashAttention backend forced
"best" is the fastest forward and the fastest backward over the variants: the number to beat.
Backward = autograd of the SDPA output w.r.t. q, k, v given dout (the graph kept, only the backward
timed). FLOPs as rusca counts them: forward 2*2*B*Hq*T*T*D/2 (causal), backward 2.5 x forward.
Timing: CUDA events, `--warmup` untimed runs, then the median of `--repeats`.

Prints ONE JSON line on stdout, or {"error": "..."} with exit status 3 without torch or a CUDA GPU.

Run:  python3 tools/bench_attention_torch.py --B 4 --T 2048 --Hq 16 --Hkv 4 --D 128 --repeats 20
"""
import argparse
import contextlib
import json
import statistics
import sys


def median_ms(torch, fn, warmup, repeats):
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        start = torch.cuda.Event(enable_timing=True)
        stop = torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        stop.record()
        stop.synchronize()
        times.append(start.elapsed_time(stop))
    return statistics.median(times)


def time_variant(torch, q, k, v, dout, gqa, backend, warmup, repeats, timer=median_ms):
    """(forward_ms, backward_ms) of SDPA on q [B,Hq,T,D], k, v [B,H,T,D] views; backend None = default."""
    import torch.nn.functional as F
    from torch.nn.attention import SDPBackend, sdpa_kernel

    with sdpa_kernel([SDPBackend.FLASH_ATTENTION]) if backend == "flash" else contextlib.nullcontext():

        def forward():
            return F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=gqa)

        fwd_ms = timer(torch, forward, warmup, repeats)
        out = forward()
        bwd_ms = timer(torch, lambda: torch.autograd.grad(out, (q, k, v), dout, retain_graph=True), warmup, repeats)
    return fwd_ms, bwd_ms


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--B", type=int, default=4)
    ap.add_argument("--T", type=int, default=2048)
    ap.add_argument("--Hq", type=int, default=16)
    ap.add_argument("--Hkv", type=int, default=4)
    ap.add_argument("--D", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=20, help="timed runs (the median is reported)")
    ap.add_argument("--warmup", type=int, default=3, help="untimed runs first")
    args = ap.parse_args()
    if args.Hq % args.Hkv:
        ap.error("--Hq must be a multiple of --Hkv")

    try:
        import torch
    except ImportError as e:
        print(json.dumps({"error": f"cannot import torch: {e}"}))
        sys.exit(3)
    if not torch.cuda.is_available():
        print(json.dumps({"error": "torch sees no CUDA GPU"}))
        sys.exit(3)

    B, T, Hq, Hkv, D = args.B, args.T, args.Hq, args.Hkv, args.D
    torch.manual_seed(0)
    dev, dt = "cuda", torch.bfloat16

    def rand(h, scale):  # [B, T, h, D] storage (rusca's layout), returned as a [B, h, T, D] view
        x = ((torch.rand(B, T, h, D, device=dev, dtype=torch.float32) * 2 - 1) * scale).to(dt)
        return x.transpose(1, 2)

    q, k, v = rand(Hq, 2.0).requires_grad_(), rand(Hkv, 2.0).requires_grad_(), rand(Hkv, 1.0).requires_grad_()
    dout = rand(Hq, 1.0)
    group = Hq // Hkv
    k_exp = k.detach().repeat_interleave(group, dim=1).requires_grad_()
    v_exp = v.detach().repeat_interleave(group, dim=1).requires_grad_()

    fwd_flops = 2.0 * 2.0 * B * Hq * T * T * D / 2.0
    variants = {}
    for name, gqa, kk, vv in (("gqa", True, k, v), ("expanded", False, k_exp, v_exp)):
        for backend in ("default", "flash"):
            key = f"{name}/{backend}"
            try:
                fwd_ms, bwd_ms = time_variant(torch, q, kk, vv, dout, gqa, backend, args.warmup, args.repeats)
                variants[key] = {
                    "forward_ms": fwd_ms,
                    "backward_ms": bwd_ms,
                    "forward_tflops": fwd_flops / (fwd_ms * 1e-3) / 1e12,
                    "backward_tflops": 2.5 * fwd_flops / (bwd_ms * 1e-3) / 1e12,
                }
            except RuntimeError as e:  # the backend refuses this shape or option
                variants[key] = None
                print(f"bench_attention_torch: {key} not run: {str(e).splitlines()[0]}", file=sys.stderr)

    ran = {key: r for key, r in variants.items() if r}
    if not ran:
        print(json.dumps({"error": "no SDPA variant ran"}))
        sys.exit(3)
    best_fwd = min(ran, key=lambda key: ran[key]["forward_ms"])
    best_bwd = min(ran, key=lambda key: ran[key]["backward_ms"])
    print(json.dumps({
        "bench": "attention",
        "impl": "torch.sdpa",
        "device": torch.cuda.get_device_name(),
        "torch": torch.__version__,
        "B": B, "T": T, "Hq": Hq, "Hkv": Hkv, "D": D,
        "repeats": args.repeats, "warmup": args.warmup,
        "forward_ms": ran[best_fwd]["forward_ms"], "forward_tflops": ran[best_fwd]["forward_tflops"],
        "forward_variant": best_fwd,
        "backward_ms": ran[best_bwd]["backward_ms"], "backward_tflops": ran[best_bwd]["backward_tflops"],
        "backward_variant": best_bwd,
        "variants": variants,
    }))


if __name__ == "__main__":
    main()
