#!/usr/bin/env python3
"""make_grpo_golden.py: reference values for the fused GRPO loss (host/cpu/grpo_loss.cpp).

The reference is the naive computation, in float64: full logits, torch.log_softmax, gather, then
verl's compute_policy_loss (dual-clip PPO with separate low/high clip ranges, as TRL's
epsilon_low/epsilon_high), verl's 'low_var_kl' (k3) without its clamp, and the loss aggregations of
verl's agg_loss / TRL's dr_grpo, on verl's [sequences, response_length] layout; gradients by autograd.
It is written from those formulas, not from our C++ code, so the two are independent.

One small case (N = 37 positions in S = 6 ragged sequences, one of them fully masked, C = 16,
V = 300) is evaluated for every option combination: 4 aggregations x temperature {1.0, 0.7} x
beta {0, 0.04} x dual clip c {3, off} x eps (low, high) {(0.2, 0.2), (0.2, 0.28)} = 64 combos.
old/ref log-probs are placed relative to the current log-probs so that the tokens are clipped high,
clipped low, dual-clipped, unclipped, and (one token) beyond the +-20 log-ratio clamp.

Output: tests/golden/grpo/golden.safetensors. Our safetensors reader has no F64, so float64 values
are stored as I64 tensors holding the IEEE-754 bit patterns (marked "f64" below):
  hidden f32 [N,C], W f32 [V,C], tokens i32 [N], adv f32 [N], mask f32 [N], seq i32 [N],
  dims i32 [3] = (S, max_len, number of combos)
  old_logp.t{j}, ref_logp.t{j} f32 [N]       j = temperature index (old/ref depend on it)
  logp.t{j} f64 [N]                            log-probs under temperature j
  combos f64 [K, 8]   per combo: agg index, temperature index, temperature, beta, dual_clip_c
                      (0 = off), eps_low, eps_high, 1 if its full gradients are stored
  c{k:02d}.stats f64 [6]   loss, clip_frac, dual_clip_frac, kl_mean, entropy_mean, tokens
  c{k:02d}.dlogp f64 [N]   d loss / d logp (so every combo's gradient can be checked cheaply)
  c{k:02d}.dhidden f64 [N,C], c{k:02d}.dW f64 [V,C]   for 4 of the combos (keeps the file small)
Re-running gives an identical file.

Run:  python3 tools/make_grpo_golden.py [--out tests/golden/grpo]
"""
import argparse
import itertools
import os

import torch
from safetensors.torch import save_file

SEED = 2508
C, V = 16, 300
MAX_LEN = 12                       # Dr. GRPO's constant divisor is S * MAX_LEN (> longest sequence)
# One string per sequence, one character per position: 1 = counted, 0 = padding / masked.
MASKS = ["11111100", "111", "1111111000", "00", "110111", "11111111"]
ADV = [1.3, -0.8, 0.6, 0.25, -1.7, -0.45]   # one advantage per sequence (GRPO), both signs
AGGS = ["token-mean", "seq-mean-token-mean", "seq-mean-token-sum", "seq-mean-token-sum-norm"]
TEMPS = [1.0, 0.7]
BETAS = [0.0, 0.04]
DUALS = [3.0, 0.0]
EPSS = [(0.2, 0.2), (0.2, 0.28)]
# Combos whose full dhidden / dW are stored (agg, temperature, beta, dual, eps index).
FULL = {(0, 0, 1, 0, 1), (1, 1, 1, 0, 0), (2, 0, 0, 1, 0), (3, 1, 1, 1, 1)}

# Target log-ratio (logp - old_logp) ranges per token category, away from every clip boundary
# (log 0.8 = -0.223, log 1.2 = 0.182, log 1.28 = 0.247, log 3 = 1.099) so that finite differences and
# float32 rounding of old_logp never cross one.
POS_CATS = [("unclipped", -0.1, 0.1), ("clip-high", 0.35, 0.7), ("clip-high-if-0.2", 0.2, 0.23),
            ("low-side", -0.6, -0.3), ("clamp+", 25.0, 25.0), ("clamp-", -25.0, -25.0)]
NEG_CATS = [("unclipped", -0.1, 0.1), ("clip-low", -0.7, -0.3), ("dual", 1.3, 2.2),
            ("high-side", 0.3, 0.9)]


def f64_bits(t):
    """float64 tensor -> I64 tensor of its bit patterns (our reader has no F64)."""
    return t.detach().to(torch.float64).contiguous().view(torch.int64)


def make_inputs(gen):
    seq, pos, mask, adv = [], [], [], []
    for s, m in enumerate(MASKS):
        for p, ch in enumerate(m):
            seq.append(s), pos.append(p), mask.append(float(ch == "1")), adv.append(ADV[s])
    N = len(seq)
    hidden = torch.randn(N, C, generator=gen, dtype=torch.float32)
    W = 0.4 * torch.randn(V, C, generator=gen, dtype=torch.float32)
    tokens = torch.randint(0, V, (N,), generator=gen)
    return dict(hidden=hidden, W=W, tokens=tokens, seq=torch.tensor(seq), pos=torch.tensor(pos),
                mask=torch.tensor(mask, dtype=torch.float32), adv=torch.tensor(adv, dtype=torch.float32))


def logprobs(hidden, W, tokens, temperature):
    logits = hidden.double() @ W.double().T / temperature
    return torch.log_softmax(logits, -1).gather(-1, tokens[:, None]).squeeze(-1)


def place_old_ref(inp, logp, gen):
    """old = logp - delta with delta drawn from each token's category; ref = logp - U(-0.5, 0.5)."""
    u = torch.rand(len(logp), generator=gen, dtype=torch.float64)
    delta = torch.empty_like(logp)
    counters = {True: 0, False: 0}
    for n in range(len(logp)):
        if inp["mask"][n] == 0:
            delta[n] = 0.2 * u[n] - 0.1
            continue
        pos_adv = bool(inp["adv"][n] > 0)
        cats = POS_CATS if pos_adv else NEG_CATS
        _, lo, hi = cats[counters[pos_adv] % len(cats)]
        counters[pos_adv] += 1
        delta[n] = lo + (hi - lo) * u[n]
    kl = torch.rand(len(logp), generator=gen, dtype=torch.float64) - 0.5
    return (logp - delta).float(), (logp - kl).float()


# ---- the formulas as written in verl (core_algos.py) and TRL (grpo_trainer.py) ----
def masked_mean(x, mask):
    return (x * mask).sum() / mask.sum()


def agg_loss(loss_mat, loss_mask, mode, max_len):
    if mode == "token-mean":
        return masked_mean(loss_mat, loss_mask)
    seq_tokens = loss_mask.sum(-1)
    seq_losses = (loss_mat * loss_mask).sum(-1)          # token-sum
    keep = seq_tokens > 0                                  # verl: fully masked sequences excluded
    if mode == "seq-mean-token-sum":
        return seq_losses[keep].mean()
    if mode == "seq-mean-token-mean":
        return (seq_losses[keep] / seq_tokens[keep]).mean()
    if mode == "seq-mean-token-sum-norm":                  # TRL dr_grpo: sum / (B * max_completion_length)
        return (loss_mat * loss_mask).sum() / (loss_mat.size(0) * max_len)
    raise ValueError(mode)


def policy_loss(log_prob, old_log_prob, advantages, response_mask, el, eh, c):
    negative_approx_kl = torch.clamp(log_prob - old_log_prob, min=-20.0, max=20.0)
    ratio = torch.exp(negative_approx_kl)
    pg_losses1 = -advantages * ratio
    pg_losses2 = -advantages * torch.clamp(ratio, 1 - el, 1 + eh)
    clip_pg_losses1 = torch.maximum(pg_losses1, pg_losses2)
    clipped = torch.gt(pg_losses2, pg_losses1)
    if c > 1:
        pg_losses3 = -advantages * c
        clip_pg_losses2 = torch.min(pg_losses3, clip_pg_losses1)
        dual = torch.gt(clip_pg_losses1, pg_losses3) & (advantages < 0)
        pg_losses = torch.where(advantages < 0, clip_pg_losses2, clip_pg_losses1)
    else:
        dual = torch.zeros_like(clipped)
        pg_losses = clip_pg_losses1
    return pg_losses, clipped, dual


def low_var_kl(logprob, ref_logprob):
    kl = ref_logprob - logprob
    return torch.exp(kl) - kl - 1                          # verl then clamps to [-10, 10]; we do not


def reference(inp, old, ref, agg, temperature, beta, c, el, eh):
    S = len(MASKS)
    hidden = inp["hidden"].double().requires_grad_()
    W = inp["W"].double().requires_grad_()
    logits = hidden @ W.T / temperature                    # [N, V]: what the fused loss never builds
    logp_all = torch.log_softmax(logits, -1)
    logp = logp_all.gather(-1, inp["tokens"][:, None]).squeeze(-1)
    logp.retain_grad()
    entropy = -(logp_all.exp() * logp_all).sum(-1)

    def grid(x):                                           # [N] -> verl's [S, MAX_LEN] layout
        return x.new_zeros(S, MAX_LEN).index_put((inp["seq"], inp["pos"]), x)
    lp, olp, rlp = grid(logp), grid(old.double()), grid(ref.double())
    A, mask = grid(inp["adv"].double()), grid(inp["mask"].double())
    pg_losses, clipped, dual = policy_loss(lp, olp, A, mask, el, eh, c)
    k3 = low_var_kl(lp, rlp)
    loss = agg_loss(pg_losses, mask, agg, MAX_LEN)
    if beta > 0:
        loss = loss + beta * agg_loss(k3, mask, agg, MAX_LEN)
    loss.backward()

    stats = torch.stack([loss.detach(), masked_mean(clipped.double(), mask),
                         masked_mean(dual.double(), mask), masked_mean(k3.detach(), mask),
                         masked_mean(grid(entropy.detach()), mask), mask.sum()])
    counted = mask > 0
    clamped = (lp - olp).abs() > 20
    counts = dict(clip_high=int((clipped & counted & (A > 0)).sum()),
                  clip_low=int((clipped & counted & (A < 0)).sum()),
                  dual=int((dual & counted).sum()),
                  unclipped=int((~clipped & ~dual & counted).sum()),
                  ratio_clamped=int((clamped & counted).sum()))
    return dict(logp=logp.detach(), stats=stats, dlogp=logp.grad, dhidden=hidden.grad, dW=W.grad,
                counts=counts)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "tests", "golden", "grpo"))
    args = ap.parse_args()
    torch.use_deterministic_algorithms(True)
    gen = torch.Generator().manual_seed(SEED)
    inp = make_inputs(gen)
    N = len(inp["seq"])

    golden = {"hidden": inp["hidden"], "W": inp["W"], "tokens": inp["tokens"].int(),
              "adv": inp["adv"], "mask": inp["mask"], "seq": inp["seq"].int()}
    old_ref = []
    for j, temperature in enumerate(TEMPS):
        logp = logprobs(inp["hidden"], inp["W"], inp["tokens"], temperature)
        old, ref = place_old_ref(inp, logp, gen)
        old_ref.append((old, ref))
        golden[f"old_logp.t{j}"], golden[f"ref_logp.t{j}"] = old, ref
        golden[f"logp.t{j}"] = f64_bits(logp)

    combos = list(itertools.product(range(len(AGGS)), range(len(TEMPS)), range(len(BETAS)),
                                    range(len(DUALS)), range(len(EPSS))))
    table = []
    for k, (a, t, b, d, e) in enumerate(combos):
        (el, eh), full = EPSS[e], (a, t, b, d, e) in FULL
        old, ref = old_ref[t]
        r = reference(inp, old, ref, AGGS[a], TEMPS[t], BETAS[b], DUALS[d], el, eh)
        assert torch.equal(r["logp"], golden[f"logp.t{t}"].view(torch.float64))
        table.append([a, t, TEMPS[t], BETAS[b], DUALS[d], el, eh, float(full)])
        golden[f"c{k:02d}.stats"] = f64_bits(r["stats"])
        golden[f"c{k:02d}.dlogp"] = f64_bits(r["dlogp"])
        if full:
            golden[f"c{k:02d}.dhidden"] = f64_bits(r["dhidden"])
            golden[f"c{k:02d}.dW"] = f64_bits(r["dW"])
        print(f"c{k:02d} {AGGS[a]:24s} T={TEMPS[t]:.1f} beta={BETAS[b]:.2f} c={DUALS[d]:.0f} "
              f"eps={el}/{eh} loss={r['stats'][0].item():+.6f} " +
              " ".join(f"{name}={v}" for name, v in r["counts"].items()) + (" [full grads]" if full else ""))
    golden["combos"] = f64_bits(torch.tensor(table, dtype=torch.float64))
    golden["dims"] = torch.tensor([len(MASKS), MAX_LEN, len(combos)], dtype=torch.int32)

    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "golden.safetensors")
    save_file({k: v.contiguous() for k, v in golden.items()}, path)
    os.chmod(path, 0o644)
    print(f"N={N} C={C} V={V} S={len(MASKS)} combos={len(combos)} "
          f"size={os.path.getsize(path) / 1024:.1f}KB -> {os.path.normpath(path)}")


if __name__ == "__main__":
    main()
