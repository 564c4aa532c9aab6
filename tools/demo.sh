#!/usr/bin/env bash
# demo.sh (`make demo`): train the tiny shipped model on the shipped text and watch the loss fall.
# Runs on the GPU when one is present (--device auto), else on the CPU backend.
set -euo pipefail
cd "$(dirname "$0")/.."
out=runs/demo
rm -rf "$out"
echo "== rusca demo: tiny Llama-style model (data/tiny_config.json) on data/tiny_corpus.txt =="
build/rusca info
build/rusca sft --init-config data/tiny_config.json --data data/tiny_corpus.txt \
    --tokenizer data/tokenizer.model --out "$out" --batch 8 --seq 64 --steps 300 --lr 3e-3 \
    --warmup 20 --save-every 100 "$@"
echo "checkpoint (loads in Hugging Face transformers): $(cat $out/latest)  in $out/"
