#!/usr/bin/env bash
# make_world.sh: rebuild the shipped rubric world from scratch, deterministically: the prompts and
# rubrics (data/world/{train,heldout}.jsonl), the tokenizer (data/world/tokenizer.model), and the
# two starting models, trained here with `rusca sft` and stored in bf16:
#   data/world/policy  follows a scaffold when given one, answers plainly without (no rubric content)
#   data/world/judge   answers " yes" / " no" for (conversation, reply, criterion) as the checker would
# About 40 minutes on 2 CPU cores (the two trainings run side by side, one thread each).
# Run from anywhere; everything is written relative to the repository root.
set -euo pipefail
cd "$(dirname "$0")/.."
make build/rusca >/dev/null
W=data/world S=runs/world
python3 tools/make_world.py --out-data $W --out-sft $S
build/rusca tokenizer train --input $S/tokenizer_corpus.txt --model-prefix $W/tokenizer --vocab-size 512 \
    --model-type bpe --user-symbols '<|im_start|>,<|im_end|>' | tail -n 1
rm -rf $S/policy_sft_run $S/judge_sft_run
sft() {  # name, data, sequence length, steps
    build/rusca sft --init-config data/world_config.json --data "$2" --tokenizer $W/tokenizer.model \
        --out $S/$1_sft_run --batch 16 --seq "$3" --steps "$4" --lr 2e-3 --warmup 50 --save-every 250 \
        --threads 1 --seed 1 > $S/$1_sft.log 2>&1
    tail -n 1 $S/$1_sft.log
}
sft policy $S/policy_sft.jsonl 224 1500 &
sft judge $S/judge_sft.jsonl 112 2000 &
wait
build/rusca export --model "$(cat $S/policy_sft_run/latest)" --out $W/policy --dtype bf16
build/rusca export --model "$(cat $S/judge_sft_run/latest)" --out $W/judge --dtype bf16
echo "world rebuilt in $W; check it with: build/rusca judge --judge $W/judge --tokenizer $W/tokenizer.model" \
     "--template $W/judge_template.txt --data $S/judge_heldout.jsonl --out $S/judge_heldout_verdicts.jsonl"
