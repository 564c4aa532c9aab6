#!/usr/bin/env python3
"""check_hf_roundtrip.py: does a checkpoint give the same logits in rusca and in transformers?

Runs our binary on one token sequence, runs transformers on the same model directory and tokens,
and compares the logits. The relative difference is max|ours - hf| / max|hf|.

Contract with the binary:
    <rusca> forward --model DIR --tokens "1 2 3 4" --out OUT.safetensors
must exit 0 and write OUT.safetensors holding one tensor "logits", float32, shape [T, V]
(T = number of tokens, V = vocab size), for the single sequence at positions 0..T-1, causal.

Run:
    python3 tools/check_hf_roundtrip.py --rusca build/rusca --model DIR --tokens "1 2 3 4"
    python3 tools/check_hf_roundtrip.py --rusca build/rusca --all-golden   # every tests/golden/*/,
                                                                          # tokens = golden row 0
Exit status: 0 all PASS, 1 some FAIL (rel > --tol), 2 error (binary failed, bad output, ...).
"""
import argparse
import glob
import os
import shlex
import subprocess
import sys
import tempfile

import torch
from safetensors.torch import load_file

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))


class CheckError(Exception):
    pass


def parse_tokens(text):
    return [int(t) for t in text.replace(",", " ").split()]


def rusca_logits(rusca, model_dir, tokens, timeout):
    with tempfile.TemporaryDirectory(prefix="rusca_roundtrip_") as tmp:
        out = os.path.join(tmp, "logits.safetensors")
        cmd = [rusca, "forward", "--model", model_dir, "--tokens", " ".join(map(str, tokens)), "--out", out]
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        except (OSError, subprocess.TimeoutExpired) as e:
            raise CheckError(f"could not run {shlex.join(cmd)}: {e}")
        if r.returncode != 0:
            raise CheckError(f"{shlex.join(cmd)} exited {r.returncode}\n{r.stdout}{r.stderr}")
        if not os.path.exists(out):
            raise CheckError(f"{shlex.join(cmd)} wrote no {out}")
        tensors = load_file(out)
    if "logits" not in tensors:
        raise CheckError(f"rusca output has no 'logits' tensor (has {sorted(tensors)})")
    return tensors["logits"]


def hf_logits(model_dir, tokens):
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging as hf_logging
    hf_logging.disable_progress_bar()
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32, attn_implementation="eager")
    model.eval()
    with torch.no_grad():
        return model(input_ids=torch.tensor([tokens]), use_cache=False).logits[0].float()  # [T, V]


def compare(ours, ref, tol):
    if ours.shape != ref.shape:
        raise CheckError(f"logits shape {tuple(ours.shape)} != transformers {tuple(ref.shape)}")
    ours, ref = ours.double(), ref.double()
    if not torch.isfinite(ours).all():
        raise CheckError("rusca logits contain NaN/Inf")
    abs_diff = (ours - ref).abs().max().item()
    rel_diff = abs_diff / max(ref.abs().max().item(), 1e-30)
    return abs_diff, rel_diff, rel_diff <= tol


def check_one(rusca, model_dir, tokens, tol, timeout):
    ours = rusca_logits(rusca, model_dir, tokens, timeout)
    ref = hf_logits(model_dir, tokens)
    abs_diff, rel_diff, ok = compare(ours, ref, tol)
    print(f"{'PASS' if ok else 'FAIL'} {model_dir}: T={len(tokens)} V={ref.shape[-1]} "
          f"max_abs_diff={abs_diff:.3e} max_rel_diff={rel_diff:.3e} (tol {tol:.0e})")
    return ok


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rusca", default=os.path.join(ROOT, "build", "rusca"), help="path to the rusca binary")
    ap.add_argument("--model", help="model directory (config.json + model.safetensors)")
    ap.add_argument("--tokens", help='token ids, e.g. "1 2 3 4"')
    ap.add_argument("--all-golden", action="store_true", help="check every tests/golden/*/ with its golden tokens row 0")
    ap.add_argument("--golden-dir", default=os.path.join(ROOT, "tests", "golden"))
    ap.add_argument("--tol", type=float, default=1e-4, help="max relative difference (default 1e-4)")
    ap.add_argument("--timeout", type=float, default=600, help="seconds allowed for each rusca run")
    args = ap.parse_args()

    jobs = []
    if args.all_golden:
        for d in sorted(glob.glob(os.path.join(args.golden_dir, "*", ""))):
            golden = os.path.join(d, "golden.safetensors")
            if os.path.exists(os.path.join(d, "config.json")) and os.path.exists(golden):
                jobs.append((os.path.normpath(d), load_file(golden)["tokens"][0].tolist()))
        if not jobs:
            ap.error(f"no golden model directories under {args.golden_dir}")
    elif args.model and args.tokens:
        jobs.append((args.model, parse_tokens(args.tokens)))
    else:
        ap.error("give --model and --tokens, or --all-golden")

    status = 0
    for model_dir, tokens in jobs:
        try:
            if not check_one(args.rusca, model_dir, tokens, args.tol, args.timeout):
                status = max(status, 1)
        except CheckError as e:
            print(f"ERROR {model_dir}: {e}")
            status = 2
    print({0: "PASS", 1: "FAIL", 2: "ERROR"}[status])
    return status


if __name__ == "__main__":
    sys.exit(main())
