// grpo_loss.h: the fused GRPO policy loss through the LM head (SPEC "The algorithm" 7-8), CPU twin.
//
// From the final hidden states to the loss and its gradients in one call: LM-head matmul,
// log-softmax over the vocabulary (at a temperature), gather of the sampled token's log-prob,
// ratio, clip, dual clip, k3 KL, aggregation, and the gradients w.r.t. hidden and the LM head.
// Why fused: the naive loss materializes the [N x V] logits (and their gradient); for 16384 tokens
// and Qwen's 151936-word vocabulary that is 39.8 GB of fp32. Here the logits only ever exist as one
// [token_chunk x vocab_chunk] tile per thread: a first pass streams over the vocabulary keeping an
// online logsumexp per token, a second pass recomputes each tile to form
// dlogits = g * (onehot - softmax) / temperature and accumulates dhidden and dW from it.
// Extra memory is O(threads * token_chunk * vocab_chunk + N + S).
//
// Per counted token (verl compute_policy_loss + 'low_var_kl' without its clamp; TRL epsilon_low/high):
//   logp = log_softmax(hidden W^T / temperature)[token]
//   rho  = exp(clamp(logp - old_logp, -20, 20))
//   pg   = max(-A rho, -A clip(rho, 1 - eps_low, 1 + eps_high));  if c > 1 and A < 0: min(pg, -A c)
//   k3   = exp(ref - logp) - (ref - logp) - 1
//   L    = pg + beta k3,  aggregated over the counted tokens by GrpoAgg.
// Only logp carries gradient (old, ref and A are constants); clip/max/min pass the active branch's
// gradient and the +-20 clamp passes none outside its range, as torch does.
//
// Conventions as in ops.h: Real = float or double, gradients are ADDED into, and results are
// bit-identical for any OMP_NUM_THREADS and any chunk sizes (chunking only trades speed for memory).
#pragma once
#include <string>
#include <vector>

namespace rusca::cpu {

// How per-token losses L become one number (w = the mask, n_s = counted tokens of sequence s,
// S' = sequences with n_s > 0, S = all sequences, L_max = a CONSTANT length: `rusca rl` passes the
// generation budget --max-new-tokens, never the longest response of the batch, so a batch of short
// answers is not up-weighted):
//   TokenMean            sum(w L) / sum(w)                    verl token-mean, TRL dapo / bnpo
//   SeqMeanTokenMean     mean over S' of sum_s(w L) / n_s     verl seq-mean-token-mean, TRL grpo
//   SeqMeanTokenSum      mean over S' of sum_s(w L)           verl seq-mean-token-sum
//   SeqMeanTokenSumNorm  sum(w L) / (S * L_max)               Dr. GRPO; TRL dr_grpo exactly
//                                                             (/ (batch * max_completion_length))
// verl's formulas, agg_loss in verl/trainer/ppo/core_algos.py, per micro-batch of B rows padded to
// the response budget L_max:
//   token-mean              masked_mean(L)                   = ours over the whole minibatch
//   seq-mean-token-mean     mean_b(sum_t w L / n_b)          = ours (verl's newer global version
//   seq-mean-token-sum      mean_b(sum_t w L)                  also leaves out rows with n_b = 0)
//   seq-mean-token-sum-norm sum_b sum_t(w L) / L_max         (no / B: verl then averages its
//                           micro-batches, so its minibatch loss is ours times its micro-batch size;
//                           we keep Dr. GRPO's / S so the gradient scale does not depend on batching)
enum class GrpoAgg { TokenMean, SeqMeanTokenMean, SeqMeanTokenSum, SeqMeanTokenSumNorm };

// "token-mean", "seq-mean-token-mean", "seq-mean-token-sum", "seq-mean-token-sum-norm" (verl's names);
// anything else throws rusca::Error naming the value and the choices.
GrpoAgg parse_grpo_agg(const std::string& name);
const char* grpo_agg_name(GrpoAgg agg);

struct GrpoLossConfig {
    double temperature = 1.0;  // logits are divided by the sampling temperature before log-softmax
    double eps_low = 0.2;      // rho is clipped to [1 - eps_low, 1 + eps_high]
    double eps_high = 0.2;
    double dual_clip_c = 3.0;  // for A < 0 the loss is capped at -c A; c <= 1 turns the dual clip off
    double beta = 0.001;       // k3 KL coefficient; 0: no KL term (ref_logp may be nullptr)
    GrpoAgg agg = GrpoAgg::TokenMean;
    double loss_scale = 1.0;   // the aggregate (and its gradient) times this: a micro-batch's share of its minibatch
    int vocab_chunk = 4096;    // logits tile = token_chunk x vocab_chunk per thread
    int token_chunk = 32;
};

// Masked means over the counted tokens (mask != 0, weighted by mask), whatever the aggregation.
struct GrpoLossStats {
    double loss = 0;            // the aggregated loss, pg + beta k3 (= pg_loss + kl_loss)
    double pg_loss = 0;         // its policy-gradient part, aggregated like it
    double kl_loss = 0;         // its KL part: beta k3 aggregated (0 when beta = 0)
    double ppo_kl = 0;          // mean(old_logp - logp): approximate KL(old || current) (verl ppo_kl)
    double clip_frac = 0;       // fraction with clipped > unclipped loss (verl pg_clipfrac)
    double dual_clip_frac = 0;  // fraction where the dual clip is active (verl pg_clipfrac_lower)
    double kl_mean = 0;         // mean k3, computed whenever ref_logp is given (else 0), even if beta = 0
    double entropy_mean = 0;    // mean entropy of softmax(logits / temperature)
    long tokens = 0;            // counted tokens (mask != 0)
};

// Loss, logp and gradients for N token positions of S sequences.
//   hidden [N, C], W [V, C]        final hidden states (after the final norm) and the LM head
//   tokens [N]                     sampled token of each position; < 0 marks a position with no
//                                  token (allowed only where mask == 0; its logp is written as 0
//                                  and it costs no work, so give padding -1)
//   adv, old_logp, ref_logp, mask [N]   advantage of the position's sequence, the log-probs under
//                                  the old and reference policies (ref_logp may be nullptr when
//                                  beta == 0), 1 = counted / 0 = padding
//   seq [N]                        sequence index of each position, in [0, S) where mask != 0
//   max_len                        Dr. GRPO's constant length L_max, the generation budget (read
//                                  only by SeqMeanTokenSumNorm; rusca rl passes --max-new-tokens)
// Writes logp [N]; ADDS d loss / d hidden into dhidden [N, C] and d loss / d W into dW [V, C];
// either may be nullptr to skip it (both nullptr: forward only). Throws rusca::Error on bad input.
template <typename Real>
GrpoLossStats grpo_loss(Real* logp, Real* dhidden, Real* dW, const Real* hidden, const Real* W,
                        const int* tokens, const float* adv, const float* old_logp,
                        const float* ref_logp, const float* mask, const int* seq, int N, int C, int V,
                        int S, int max_len, const GrpoLossConfig& cfg);

// The first pass alone, for the old- and reference-policy log-probs:
//   logp[n] = log_softmax(hidden[n] W^T / temperature)[tokens[n]]   (0 where tokens[n] < 0)
//   entropy[n] = entropy of that softmax                             (entropy may be nullptr)
template <typename Real>
void grpo_logprobs(Real* logp, Real* entropy, const Real* hidden, const Real* W, const int* tokens,
                   int N, int C, int V, double temperature, int vocab_chunk, int token_chunk);

// Shared with the CUDA twin (cuda/grpo_loss.cu), which runs them on host copies:
// w[n] = d loss / d L_n, how much position n's loss counts in the aggregate (0 where mask == 0),
// times scale (cfg.loss_scale);
std::vector<double> grpo_agg_weights(const float* mask, const int* seq, int N, int S, int max_len, GrpoAgg agg,
                                     double scale = 1.0);
// and the checks of the loss's own inputs (config, counted positions' tokens and seq), as Errors.
void grpo_validate_loss(const int* tokens, const float* ref_logp, const float* mask, const int* seq, int N, int S,
                        int max_len, const GrpoLossConfig& cfg);

}  // namespace rusca::cpu
