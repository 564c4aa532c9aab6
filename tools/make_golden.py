#!/usr/bin/env python3
"""make_golden.py: build tiny random Llama / Qwen2 / Qwen3 models and their reference outputs.

For each family this writes tests/golden/<family>/:
  config.json, model.safetensors  -- a float32 Hugging Face checkpoint (save_pretrained)
  golden.safetensors              -- float64-computed reference results, stored as float32:
      tokens  int32 [B,T]     random ids in [0, vocab)
      targets int32 [B,T]     tokens shifted left by one per row; -1 = ignored (last position + a few more)
      logits  float32 [B,T,V] position ids 0..T-1 per row, causal attention, no other mask
      loss    float32 [1]     cross_entropy(logits, targets, ignore_index=-1), mean over kept positions
      grad.<hf name> float32  d loss / d param for every model.named_parameters() entry
                              (tied models: only model.embed_tokens.weight, holding the summed gradient)

The reference runs in float64. Transformers' eager path casts RMSNorm, RoPE and softmax to float32
even in a double model, so those three pieces are replaced by plain float64 versions of the same math
while the golden is computed (the saved checkpoint is untouched). Re-running gives identical files.

Run:  python3 tools/make_golden.py [--out tests/golden] [--families llama qwen2 qwen3]
"""
import argparse
import json
import os

import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from transformers import AutoModelForCausalLM, LlamaConfig, Qwen2Config, Qwen3Config
from transformers.utils import logging as hf_logging
from transformers.models.llama import modeling_llama
from transformers.models.qwen2 import modeling_qwen2
from transformers.models.qwen3 import modeling_qwen3

SEED = 1234
B, T = 2, 7
COMMON = dict(vocab_size=96, hidden_size=32, num_hidden_layers=2,
              num_attention_heads=4, num_key_value_heads=2, hidden_act="silu",
              max_position_embeddings=64, bos_token_id=1, eos_token_id=2)
FAMILIES = {
    "llama": (LlamaConfig, modeling_llama, "Llama",
              dict(head_dim=8, intermediate_size=48, rms_norm_eps=1e-5, tie_word_embeddings=False, theta=10000.0)),
    "qwen2": (Qwen2Config, modeling_qwen2, "Qwen2",
              dict(intermediate_size=48, rms_norm_eps=1e-6, tie_word_embeddings=True, use_sliding_window=False, theta=1e6)),
    "qwen3": (Qwen3Config, modeling_qwen3, "Qwen3",
              dict(head_dim=12, intermediate_size=40, rms_norm_eps=1e-6, tie_word_embeddings=False,
                   use_sliding_window=False, theta=1e6)),  # head_dim != hidden/heads; smaller MLP keeps < 200 KB
}


def make_config(cls, extra):
    extra = dict(extra)
    theta = extra.pop("theta")
    cfg = cls(**COMMON, **extra, rope_parameters={"rope_type": "default", "rope_theta": theta})
    if getattr(cfg, "head_dim", None) is None:  # Qwen2 has no head_dim field: hidden / heads
        cfg.head_dim = cfg.hidden_size // cfg.num_attention_heads
    return cfg, theta


def init_weights(model, gen):
    """std-0.2 normal weights, norms ~ 1 + 0.1 randn, biases ~ 0.1 randn (deterministic order)."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            r = torch.randn(p.shape, generator=gen, dtype=torch.float32)
            if name.endswith("norm.weight"):   # input/post_attention/final norm, q_norm, k_norm
                p.copy_(1.0 + 0.1 * r)
            elif name.endswith(".bias"):
                p.copy_(0.1 * r)
            else:
                p.copy_(0.2 * r)


def fix_config_json(path, theta):
    """Keep both rope spellings (rope_parameters and legacy top-level rope_theta) and head_dim."""
    with open(path) as f:
        cfg = json.load(f)
    cfg["rope_theta"] = theta
    cfg.setdefault("head_dim", cfg["hidden_size"] // cfg["num_attention_heads"])
    cfg.setdefault("tie_word_embeddings", False)
    with open(path, "w") as f:
        json.dump(cfg, f, indent=2, sort_keys=True)
        f.write("\n")


# ---- exact float64 replacements for the float32 casts inside transformers' eager path ----
def rmsnorm_fp64(self, x):
    var = x.pow(2).mean(-1, keepdim=True)
    return self.weight * (x * torch.rsqrt(var + self.variance_epsilon))


def make_rotary_fp64(theta, head_dim):
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim))

    def rotary(self, x, position_ids):
        freqs = position_ids[..., None].to(torch.float64) * inv_freq
        emb = torch.cat((freqs, freqs), dim=-1)
        return emb.cos().to(x.dtype), emb.sin().to(x.dtype)
    return rotary


def eager_attention_fp64(module, query, key, value, attention_mask, scaling, dropout=0.0, **kwargs):
    key = modeling_llama.repeat_kv(key, module.num_key_value_groups)
    value = modeling_llama.repeat_kv(value, module.num_key_value_groups)
    w = torch.matmul(query, key.transpose(2, 3)) * scaling
    if attention_mask is not None:
        w = w + attention_mask
    else:  # no mask built for us: apply causal masking ourselves
        t_q, t_k = w.shape[-2], w.shape[-1]
        causal = torch.ones(t_q, t_k, dtype=torch.bool).tril(t_k - t_q)
        w = w.masked_fill(~causal, float("-inf"))
    w = torch.softmax(w, dim=-1)
    return torch.matmul(w, value).transpose(1, 2).contiguous(), w


class Fp64Patch:
    def __init__(self, mod, prefix, theta, head_dim):
        self.targets = [(getattr(mod, prefix + "RMSNorm"), "forward", rmsnorm_fp64),
                        (getattr(mod, prefix + "RotaryEmbedding"), "forward", make_rotary_fp64(theta, head_dim)),
                        (mod, "eager_attention_forward", eager_attention_fp64)]

    def __enter__(self):
        self.saved = [(o, n, getattr(o, n)) for o, n, _ in self.targets]
        for o, n, f in self.targets:
            setattr(o, n, f)

    def __exit__(self, *exc):
        for o, n, f in self.saved:
            setattr(o, n, f)


def make_batch(vocab, gen):
    tokens = torch.randint(0, vocab, (B, T), generator=gen)
    targets = torch.full((B, T), -1, dtype=torch.long)
    targets[:, :-1] = tokens[:, 1:]
    targets[0, 2] = -1   # extra ignored positions to exercise the mask
    targets[1, 0] = -1
    targets[1, 4] = -1
    return tokens, targets


def build_family(family, out_root):
    cls, mod, prefix, extra = FAMILIES[family]
    cfg, theta = make_config(cls, extra)
    gen = torch.Generator().manual_seed(SEED)
    torch.manual_seed(SEED)
    model = AutoModelForCausalLM.from_config(cfg, dtype=torch.float32, attn_implementation="eager")
    init_weights(model, gen)
    if cfg.tie_word_embeddings:
        assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()

    out = os.path.join(out_root, family)
    os.makedirs(out, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    fix_config_json(os.path.join(out, "config.json"), theta)
    for extra_file in ("generation_config.json",):
        if os.path.exists(os.path.join(out, extra_file)):
            os.remove(os.path.join(out, extra_file))

    tokens, targets = make_batch(cfg.vocab_size, gen)
    model = model.double().train()
    with Fp64Patch(mod, prefix, theta, cfg.head_dim):
        logits = model(input_ids=tokens, use_cache=False).logits          # [B,T,V] float64
        loss = F.cross_entropy(logits.view(-1, cfg.vocab_size), targets.view(-1), ignore_index=-1)
        loss.backward()

    golden = {"tokens": tokens.to(torch.int32), "targets": targets.to(torch.int32),
              "logits": logits.detach().float().contiguous(), "loss": loss.detach().float().reshape(1)}
    for name, p in model.named_parameters():
        golden["grad." + name] = p.grad.float().contiguous()
    save_file(golden, os.path.join(out, "golden.safetensors"))
    for f in os.listdir(out):
        os.chmod(os.path.join(out, f), 0o644)

    size = sum(os.path.getsize(os.path.join(out, f)) for f in os.listdir(out))
    n_params = sum(p.numel() for p in model.parameters())
    print(f"{family:6s} params={n_params:6d} head_dim={cfg.head_dim:2d} tied={cfg.tie_word_embeddings!s:5s} "
          f"loss={loss.item():.6f} kept={(targets >= 0).sum().item()}/{B * T} "
          f"grads={len(golden) - 4} size={size / 1024:.1f}KB -> {out}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "tests", "golden"))
    ap.add_argument("--families", nargs="+", default=list(FAMILIES), choices=list(FAMILIES))
    args = ap.parse_args()
    torch.use_deterministic_algorithms(True)
    hf_logging.disable_progress_bar()
    for family in args.families:
        build_family(family, os.path.normpath(args.out))


if __name__ == "__main__":
    main()
