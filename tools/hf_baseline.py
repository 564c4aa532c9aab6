"""hf_baseline.py: what the PyTorch / Hugging Face baseline scripts of `rusca bench` share.

import_torch(need_cuda) returns (torch, transformers), or prints {"error": ...} as the script's one
JSON line and exits with status 3 (no baseline: rusca reports it as unavailable).
model_from_config(path, dtype, attn) builds a randomly initialized model from a config.json.
"""
import json
import sys


def import_torch(need_cuda):
    try:
        import torch
        import transformers
    except Exception as e:  # noqa: BLE001 - any import failure means "no baseline"
        print(json.dumps({"error": f"cannot import torch/transformers: {e}"}))
        sys.exit(3)
    if need_cuda and not torch.cuda.is_available():
        print(json.dumps({"error": "torch sees no CUDA device"}))
        sys.exit(3)
    return torch, transformers


def model_from_config(path, dtype, attn):
    from transformers import AutoModelForCausalLM, CONFIG_MAPPING
    with open(path) as f:
        cfg = json.load(f)
    config = CONFIG_MAPPING[cfg["model_type"]].from_dict(cfg)
    return AutoModelForCausalLM.from_config(config, dtype=dtype, attn_implementation=attn), config
