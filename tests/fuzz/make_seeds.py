#!/usr/bin/env python3
"""make_seeds.py: writes the seed corpora under tests/fuzz/corpus/<target>/ from the project's own
small files (configs, templates, tokenizers, the world's data) plus hand-made safetensors and
train_state files. Run from the repository root; rerunning rewrites the same files."""
import json
import os
import shutil
import struct

C = "tests/fuzz/corpus"


def put(target, name, data):
    os.makedirs(f"{C}/{target}", exist_ok=True)
    with open(f"{C}/{target}/{name}", "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


def copy(target, name, src):
    os.makedirs(f"{C}/{target}", exist_ok=True)
    shutil.copyfile(src, f"{C}/{target}/{name}")


def safetensors(tensors, meta=None):
    """tensors: [(name, dtype, shape, raw bytes)] -> file bytes (header padded to 8)."""
    header, off, blob = {}, 0, b""
    if meta:
        header["__metadata__"] = meta
    for name, dtype, shape, raw in tensors:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [off, off + len(raw)]}
        off += len(raw)
        blob += raw
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    return struct.pack("<Q", len(h)) + h + blob


def f32(*xs):
    return struct.pack(f"<{len(xs)}f", *xs)


# safetensors: every dtype, metadata, an empty tensor, a scalar
put("safetensors", "all_dtypes", safetensors([
    ("a", "F32", [2, 2], f32(1, -2, 3.5, 0)),
    ("b", "BF16", [3], struct.pack("<3H", 0x3F80, 0xC000, 0x7FC0)),
    ("c", "F16", [2], struct.pack("<2H", 0x3C00, 0x7C00)),
    ("d", "I32", [2], struct.pack("<2i", 7, -1)),
    ("e", "I64", [1], struct.pack("<q", 1 << 40)),
], {"format": "pt"}))
put("safetensors", "empty_and_scalar", safetensors([("z", "F32", [0, 5], b""), ("s", "F16", [], struct.pack("<H", 0x3555))]))
put("safetensors", "no_tensors", safetensors([], {"param_count": "0"}))

# train_state: the fuzz target's tiny model has 188 parameters
n = 188
put("train_state", "valid", safetensors(
    [("adam.m", "F32", [n], f32(*[0.01] * n)), ("adam.v", "F32", [n], f32(*[0.001] * n))],
    {"param_count": str(n), "step": "3", "adam_t": "3", "epoch": "0", "cursor": "6", "batch": "2"}))
put("train_state", "bad_meta", safetensors(
    [("adam.m", "F32", [n], f32(*[0.0] * n)), ("adam.v", "F32", [n], f32(*[0.0] * n))],
    {"param_count": str(n), "step": "x", "adam_t": "99999999999", "epoch": "-1", "cursor": "9"}))

# config.json
for src, name in [("data/tiny_config.json", "tiny_llama"), ("data/world_judge_config.json", "world_judge"),
                  ("tests/golden/qwen2/config.json", "qwen2"), ("tests/golden/qwen3/config.json", "qwen3")]:
    if os.path.exists(src):
        copy("config", name, src)
# (issue 13's abort, {"model_type": 5}, is in tests/fuzz/regressions/config/)
put("config", "rope", '{"model_type": "qwen3", "vocab_size": 10, "hidden_size": 8, "intermediate_size": 8, '
    '"num_hidden_layers": 1, "num_attention_heads": 2, "head_dim": 6, "eos_token_id": [1, 2], '
    '"rope_parameters": {"rope_type": "default", "rope_theta": 5000.0}}')

# rubric JSONL
lines = open("data/world/train.jsonl").read().splitlines()
put("rubric", "world_two_lines", "\n".join(lines[:2]) + "\n")
put("rubric", "string_prompt", json.dumps({"prompt": "Hi?", "rubrics": [
    {"criterion": "Greets", "points": 5.0, "tags": ["a"]}, {"criterion": "Rude", "points": -3}],
    "example_tags": ["x"]}) + "\n\n")
put("rubric", "multi_turn", json.dumps({"prompt_id": "p1", "prompt": [
    {"role": "system", "content": "Be brief."}, {"role": "user", "content": "a"},
    {"role": "assistant", "content": "b"}, {"role": "user", "content": "c"}],
    "rubrics": [{"criterion": "Mentions c", "points": 1, "check": {"all_words": ["c", "it's"]}}]}))

# SFT JSONL
sft = open("data/tiny_sft.jsonl").read().splitlines()
put("sft", "prompt_response", "\n".join(sft[:4]) + "\n")
put("sft", "text", json.dumps({"text": "Nico is eleven years old. " * 3}) + "\n" + json.dumps({"text": ""}) + "\n")

# templates
copy("template", "scaffold", "data/scaffold_template.txt")
copy("template", "judge", "data/judge_template.txt")
copy("template", "world_judge", "data/world/judge_template.txt")

# tokenizers
copy("sentencepiece", "world", "data/world/tokenizer.model")
copy("sentencepiece", "world_judge", "data/world/judge_tokenizer.model")
copy("tokenizer_json", "qwen2", "tests/golden/tokenizers/qwen2/tokenizer.json")
copy("tokenizer_json", "llama3", "tests/golden/tokenizers/llama3/tokenizer.json")

# an external judge's HTTP reply bodies (chat completions) and bare message contents
def chat(content):
    return json.dumps({"choices": [{"message": {"role": "assistant", "content": content}}]})


put("grader", "chat_true.json", chat('{"explanation": "The response says so.", "criteria_met": true}'))
put("grader", "chat_fenced.json", chat('```json\n{"explanation": "no", "criteria_met": false}\n```'))
put("grader", "chat_think.json", chat('<think>hmm {"criteria_met": true}</think> Verdict: {"criteria_met": false} done'))
put("grader", "empty_choices.json", json.dumps({"choices": []}))
put("grader", "loose_text.txt", 'The answer: "criteria_met": true, as {broken')
put("grader", "bare_false.txt", "false")
