#!/usr/bin/env python3
"""bench_tokenizer_hf.py: Hugging Face `tokenizers` encode-speed baseline for `rusca bench tokenizer`.

Encodes a text file line by line (no special tokens added) with one thread: one untimed pass, then
--repeats timed passes of encode_batch over all lines (one call, so Python's per-call overhead is
not what we measure). RAYON_NUM_THREADS=1 keeps `tokenizers` on one thread, like rusca.

Prints ONE JSON line: {"tokens", "seconds_median", "tokens_per_s", "mb_per_s", "version"}
or {"error": ...} with exit status 3 when `tokenizers` cannot be imported.

Run:  python3 tools/bench_tokenizer_hf.py --tokenizer tests/golden/tokenizers/qwen2/tokenizer.json \\
          --text data/tiny_corpus.txt --repeats 5
"""
import argparse
import json
import os
import statistics
import sys
import time

os.environ["RAYON_NUM_THREADS"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tokenizer", required=True, help="tokenizer.json")
    ap.add_argument("--text", required=True)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    try:
        import tokenizers
    except ImportError as e:
        print(json.dumps({"error": f"cannot import tokenizers: {e}"}))
        sys.exit(3)
    tok = tokenizers.Tokenizer.from_file(args.tokenizer)
    with open(args.text, encoding="utf-8", newline="") as f:
        lines = f.read().split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # as C++ getline: no empty line after the final newline
    nbytes = sum(len(line.encode("utf-8")) for line in lines)
    tokens = sum(len(e.ids) for e in tok.encode_batch(lines, add_special_tokens=False))
    secs = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        tok.encode_batch(lines, add_special_tokens=False)
        secs.append(time.perf_counter() - t0)
    s = statistics.median(secs)
    print(json.dumps({"tokens": tokens, "seconds_median": s, "tokens_per_s": tokens / s, "mb_per_s": nbytes / s / 1e6,
                      "version": tokenizers.__version__}))


if __name__ == "__main__":
    main()
