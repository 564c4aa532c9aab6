// ops.h: the CPU reference ops (fp32, OpenMP), one function per op, forward next to backward.
// These are the twins every CUDA kernel is tested against, so they are written to be read:
// plain loops, shapes in the comments, no tricks beyond loop order and register blocking.
//
// Conventions shared by every op (the CUDA twins keep them):
//  - N = number of token positions (B*T), row-major [N, ...] activations.
//  - Linear weights are PyTorch-shaped [out, in]: y = x @ W^T (+ b).
//  - Backward functions ADD (+=) into every gradient they produce (activations and weights),
//    so the caller zeroes gradient buffers once and residual branches just accumulate.
//  - Templates over the element type Real, instantiated for float (what trains) and double (what the
//    finite-difference tests check gradients in); the definitions live in the .cpp files.
//  - Deterministic: each output element is owned by one thread and summed in a fixed order,
//    so results are bit-identical for any OMP_NUM_THREADS (resume tests rely on this).
#pragma once
#include <cstddef>

namespace rusca::cpu {

// out[n, :] = wte[tokens[n], :]                                        wte [V, C]
template <typename Real>
void embedding_forward(Real* out, const int* tokens, const Real* wte, int N, int C);
// dwte[tokens[n], :] += dout[n, :]
template <typename Real>
void embedding_backward(Real* dwte, const Real* dout, const int* tokens, int N, int C);

// out = x / sqrt(mean(x^2) + eps) * w, per row of C; saves rstd[N] for the backward.
template <typename Real>
void rmsnorm_forward(Real* out, Real* rstd, const Real* x, const Real* w, int N, int C, float eps);
template <typename Real>
void rmsnorm_backward(Real* dx, Real* dw, const Real* dout, const Real* x, const Real* w,
                      const Real* rstd, int N, int C);

// out[N, OC] = inp[N, C] @ W[OC, C]^T + bias[OC]   (bias may be nullptr)
template <typename Real>
void linear_forward(Real* out, const Real* inp, const Real* W, const Real* bias, int N, int C, int OC);
// dinp += dout @ W; dW += dout^T @ inp; dbias += sum_n dout   (dbias may be nullptr)
template <typename Real>
void linear_backward(Real* dinp, Real* dW, Real* dbias, const Real* dout, const Real* inp,
                     const Real* W, int N, int C, int OC);

// Rotary embedding, Hugging Face "rotate_half" layout: dims (i, i + D/2) form a pair rotated by
// angle pos[n] * theta^(-2i/D).   x, out: [N, H, D]; pos[N] is the position of each row.
template <typename Real>
void rope_forward(Real* out, const Real* x, const int* pos, int N, int H, int D, float theta);
// dx += R(pos)^T dout  (the rotation's transpose: rotate by the negative angle)
template <typename Real>
void rope_backward(Real* dx, const Real* dout, const int* pos, int N, int H, int D, float theta);

// Causal grouped-query attention with softmax scale 1/sqrt(D).
// q, out: [B, T, Hq, D]; k, v: [B, T, Hkv, D]; query head h reads kv head h / (Hq / Hkv).
// att: [B, Hq, T, T] softmax probabilities saved for the backward (upper triangle left 0).
template <typename Real>
void attention_forward(Real* out, Real* att, const Real* q, const Real* k, const Real* v,
                       int B, int T, int Hq, int Hkv, int D);
template <typename Real>
void attention_backward(Real* dq, Real* dk, Real* dv, const Real* dout, const Real* q,
                        const Real* k, const Real* v, const Real* att, int B, int T, int Hq, int Hkv,
                        int D);

// Attention of n new query rows over a KV cache made of two segments: a shared, read-only prefix
// (pk, pv: [Lp, Hkv, D], e.g. a prompt prefilled once for G rollouts, or a judged response shared by
// its criteria) followed by the sequence's own keys (ok, ov: [Lo, Hkv, D]), whose last n rows belong
// to the new queries. Query i (of n) sits at position Lp + Lo - n + i and sees every prefix row and
// own rows 0 .. Lo - n + i (causal). q, out: [n, Hq, D]. Decode is n = 1; judge suffixes are short n.
template <typename Real>
void kv_attention_forward(Real* out, const Real* q, const Real* pk, const Real* pv, int Lp, const Real* ok,
                          const Real* ov, int Lo, int n, int Hq, int Hkv, int D);

// SwiGLU: out = silu(gate) * up, elementwise over n values.
template <typename Real>
void swiglu_forward(Real* out, const Real* gate, const Real* up, size_t n);
template <typename Real>
void swiglu_backward(Real* dgate, Real* dup, const Real* dout, const Real* gate, const Real* up,
                     size_t n);

// Cross-entropy of logits [N, V] against targets[N]; a target < 0 is ignored (loss 0, no grad).
// losses[n] = logsumexp(logits[n]) - logits[n, targets[n]].
template <typename Real>
void cross_entropy_forward(Real* losses, const Real* logits, const int* targets, int N, int V);
// dlogits[n] += dloss[n] * (softmax(logits[n]) - onehot(targets[n]))   (rows with target < 0 skipped)
template <typename Real>
void cross_entropy_backward(Real* dlogits, const Real* logits, const int* targets, const Real* dloss,
                            int N, int V);

// AdamW (decoupled weight decay, bias-corrected moments), PyTorch semantics; step counts from 1.
template <typename Real>
void adamw_update(Real* params, const Real* grads, Real* m, Real* v, size_t n, float lr, float beta1,
                  float beta2, float eps, float weight_decay, int step);

// Sum of squares of g[0..n) in double, in a fixed order.
template <typename Real>
double sum_squares(const Real* g, size_t n);
// g *= s
template <typename Real>
void scale(Real* g, size_t n, float s);

}  // namespace rusca::cpu
