#!/usr/bin/env bash
# make_world.sh: rebuild the shipped rubric world from scratch, deterministically: the prompts and
# rubrics (data/world/{train,heldout}.jsonl), the tokenizer (data/world/tokenizer.model), and the
# two starting models, trained here with `rusca sft` and stored in bf16:
#   data/world/policy  follows a scaffold when given one, answers plainly without (no rubric content;
#                      a second SFT stage makes it name random advice 5% of the time, not 30%)
#   data/world/judge   trained to answer " yes" / " no" for (reply, criterion) as the checker does
# About 45 minutes on 2 CPU cores (the two first trainings run side by side, one thread each; the
# policy's second stage, 100 steps, after them).
# Run from anywhere; everything is written relative to the repository root.
set -euo pipefail
cd "$(dirname "$0")/.."
make build/rusca >/dev/null
W=data/world S=runs/world
python3 tools/make_world.py --out-data $W --out-sft $S
build/rusca tokenizer train --input $S/tokenizer_corpus.txt --model-prefix $W/tokenizer --vocab-size 512 \
    --model-type bpe --user-symbols '<|im_start|>,<|im_end|>' | tail -n 1
build/rusca tokenizer train --input $S/tokenizer_corpus.txt --model-prefix $W/judge_tokenizer --vocab-size 600 \
    --model-type bpe --user-symbols "$(cat $S/judge_user_symbols.txt)" | tail -n 1
rm -rf $S/policy_sft_run $S/judge_sft_run
sft() {  # name, config, tokenizer, data, batch, sequence length, lr, warmup, steps, stop at
    build/rusca sft --init-config "$2" --data "$4" --tokenizer "$3" --out $S/$1_sft_run --batch "$5" --seq "$6" \
        --lr "$7" --warmup "$8" --steps "$9" --stop-at "${10}" --save-every 50 --threads 1 --seed 1 > $S/$1_sft.log 2>&1
    tail -n 1 $S/$1_sft.log
}
sft policy data/world_config.json $W/tokenizer.model $S/policy_sft.jsonl 16 224 2e-3 50 1500 1500 &
# the judge (1 layer, hidden 256: data/world_judge_config.json), stage 1: a 1500-step schedule stopped
# at step 1200, on judge_sft.jsonl (half the replies with one piece of advice: the curriculum that let
# it learn at all)
sft judge data/world_judge_config.json $W/judge_tokenizer.model $S/judge_sft.jsonl 64 32 1e-3 50 1500 1200 &
wait
# the policy's second stage, from the first one's bf16 export: 100 steps on policy_sft_quiet.jsonl,
# where a plain answer names a random piece of advice 5% of the time instead of 30%
build/rusca export --model "$S/policy_sft_run/$(cat $S/policy_sft_run/latest)" --out $S/policy_stage1 --dtype bf16
rm -rf $S/policy_quiet_run
build/rusca sft --model $S/policy_stage1 --tokenizer $W/tokenizer.model --data $S/policy_sft_quiet.jsonl --out $S/policy_quiet_run \
    --batch 16 --seq 224 --lr 5e-4 --warmup 10 --steps 100 --save-every 50 --threads 1 --seed 1 > $S/policy_quiet.log 2>&1
tail -n 1 $S/policy_quiet.log
build/rusca export --model "$S/policy_quiet_run/$(cat $S/policy_quiet_run/latest)" --out $W/policy --dtype bf16
# the judge's stage 2: replies of 2-6 pieces of advice, where stage 1 still missed most met criteria
rm -rf $S/judge_long_run
build/rusca sft --model "$S/judge_sft_run/$(cat $S/judge_sft_run/latest)" --tokenizer $W/judge_tokenizer.model \
    --data $S/judge_sft_long.jsonl --out $S/judge_long_run --batch 64 --seq 32 --lr 5e-4 --warmup 20 --steps 800 \
    --save-every 100 --threads 1 --seed 1 > $S/judge_long.log 2>&1
tail -n 1 $S/judge_long.log
build/rusca export --model "$S/judge_long_run/$(cat $S/judge_long_run/latest)" --out $W/judge --dtype bf16
echo "world rebuilt in $W. The judge against the checker on held-out pairs:"
build/rusca judge --judge $W/judge --tokenizer $W/judge_tokenizer.model --template $W/judge_template.txt \
    --data $S/judge_heldout.jsonl --out $S/judge_heldout_verdicts.jsonl --device cpu 2>&1 | tail -n 1
