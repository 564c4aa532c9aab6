#!/usr/bin/env python3
"""make_hf_golden.py: random-init transformers models in the shapes real checkpoints have, saved the
way the Hub ships them (bfloat16, sharded, model.safetensors.index.json), with reference results.

For each shape this writes tests/golden/<name>/:
  config.json, generation_config.json      as save_pretrained writes them (dtype bfloat16)
  model-0000k-of-0000n.safetensors, model.safetensors.index.json   bf16 shards (<= 50 KB each)
  golden.safetensors   tokens, targets, logits, loss, grad.<name>: computed in float64 from the
                       bf16-rounded weights (what any loader gets), as in tools/make_golden.py
Shapes (what each one exercises):
  hf_qwen2_hd128   Qwen2: QKV bias, head_dim 128, one head (GQA ratio 1), tied embeddings
  hf_qwen3_gqa7    Qwen3: q/k RMSNorm, 7 query heads x head_dim 8 = 56 != hidden 48, 1 KV head (ratio 7)
  hf_llama3_untied Llama 3: untied head, rope theta 500000, 4 query / 2 KV heads (ratio 2)
tests/test_model.cpp (Golden) loads these folders with the CPU backend and compares everything.

Needs torch + transformers. Re-running gives identical files.
Run:  python3 tools/make_hf_golden.py [--out tests/golden]
"""
import argparse
import os

import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from transformers import AutoModelForCausalLM, LlamaConfig, Qwen2Config, Qwen3Config
from transformers.models.llama import modeling_llama
from transformers.models.qwen2 import modeling_qwen2
from transformers.models.qwen3 import modeling_qwen3
from transformers.utils import logging as hf_logging

import make_golden as mg

COMMON = dict(vocab_size=96, num_hidden_layers=2, hidden_act="silu", max_position_embeddings=64,
              bos_token_id=1, eos_token_id=2)
SHAPES = {
    "hf_qwen2_hd128": (Qwen2Config, modeling_qwen2, "Qwen2",
                       dict(hidden_size=128, num_attention_heads=1, num_key_value_heads=1, intermediate_size=48,
                            rms_norm_eps=1e-6, tie_word_embeddings=True, use_sliding_window=False, theta=1e6)),
    "hf_qwen3_gqa7": (Qwen3Config, modeling_qwen3, "Qwen3",
                      dict(hidden_size=48, num_attention_heads=7, num_key_value_heads=1, head_dim=8,
                           intermediate_size=40, rms_norm_eps=1e-6, tie_word_embeddings=True,
                           use_sliding_window=False, theta=1e6)),
    "hf_llama3_untied": (LlamaConfig, modeling_llama, "Llama",
                         dict(hidden_size=64, num_attention_heads=4, num_key_value_heads=2, head_dim=16,
                              intermediate_size=96, rms_norm_eps=1e-5, tie_word_embeddings=False, theta=500000.0)),
}


def build(name, out_root):
    cls, mod, prefix, extra = SHAPES[name]
    extra = dict(extra)
    theta = extra.pop("theta")
    cfg = cls(**COMMON, **extra, rope_parameters={"rope_type": "default", "rope_theta": theta})
    if getattr(cfg, "head_dim", None) is None:
        cfg.head_dim = cfg.hidden_size // cfg.num_attention_heads
    gen = torch.Generator().manual_seed(mg.SEED)
    torch.manual_seed(mg.SEED)
    model = AutoModelForCausalLM.from_config(cfg, dtype=torch.float32, attn_implementation="eager")
    mg.init_weights(model, gen)
    with torch.no_grad():  # the reference sees exactly the weights a bf16 loader gets
        for p in model.parameters():
            p.copy_(p.to(torch.bfloat16).to(torch.float32))

    out = os.path.join(out_root, name)
    os.makedirs(out, exist_ok=True)
    for f in os.listdir(out):  # no stale shards from a different sharding
        if f.startswith("model"):
            os.remove(os.path.join(out, f))
    model.to(torch.bfloat16).save_pretrained(out, safe_serialization=True, max_shard_size="50KB")
    mg.fix_config_json(os.path.join(out, "config.json"), theta)
    assert os.path.exists(os.path.join(out, "model.safetensors.index.json")), "expected a sharded save"

    tokens, targets = mg.make_batch(cfg.vocab_size, gen)
    model = model.double().train()
    with mg.Fp64Patch(mod, prefix, theta, cfg.head_dim):
        logits = model(input_ids=tokens, use_cache=False).logits
        loss = F.cross_entropy(logits.view(-1, cfg.vocab_size), targets.view(-1), ignore_index=-1)
        loss.backward()
    golden = {"tokens": tokens.to(torch.int32), "targets": targets.to(torch.int32),
              "logits": logits.detach().float().contiguous(), "loss": loss.detach().float().reshape(1)}
    for pname, p in model.named_parameters():
        golden["grad." + pname] = p.grad.float().contiguous()
    save_file(golden, os.path.join(out, "golden.safetensors"))
    for f in os.listdir(out):
        os.chmod(os.path.join(out, f), 0o644)
    shards = sorted(f for f in os.listdir(out) if f.startswith("model-"))
    size = sum(os.path.getsize(os.path.join(out, f)) for f in os.listdir(out))
    print(f"{name:17s} params={sum(p.numel() for p in model.parameters()):7d} heads={cfg.num_attention_heads}/"
          f"{cfg.num_key_value_heads} head_dim={cfg.head_dim} tied={cfg.tie_word_embeddings} shards={len(shards)} "
          f"loss={loss.item():.6f} size={size / 1024:.0f}KB -> {out}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "tests", "golden"))
    ap.add_argument("--shapes", nargs="+", default=list(SHAPES), choices=list(SHAPES))
    args = ap.parse_args()
    torch.use_deterministic_algorithms(True)
    hf_logging.disable_progress_bar()
    for name in args.shapes:
        build(name, os.path.normpath(args.out))


if __name__ == "__main__":
    main()
