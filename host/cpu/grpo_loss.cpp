// grpo_loss.cpp: the fused GRPO loss (grpo_loss.h has the math and why it is fused).
//
// Three passes over [token chunk x vocab chunk] logits tiles; each tile is recomputed from hidden
// and W whenever it is needed, and never kept:
//   1. softmax_pass   per token: online logsumexp, entropy, the sampled token's logit  (threads own tokens)
//      token_term     per token: ratio, clips, k3 -> loss, metrics and g = d loss / d logp (serial, O(N))
//   2. dhidden_pass   dhidden[t] += sum_v dlogits[t, v] W[v]                        (threads own tokens)
//   3. dW_pass        dW[v]      += sum_t dlogits[t, v] hidden[t]                   (threads own vocab rows)
// Recomputing the tile in passes 2 and 3 costs two matmuls more than one backward sweep with a
// cross-thread reduction would, but every output element stays owned by one thread (deterministic,
// no atomics) in O(tile) memory. Passes 2 and 3 skip tokens whose g is 0 (padding, clipped tokens).
//
// Why chunk sizes and thread counts do not change a single bit: each logit gets the same dot-product
// operations whatever tile or block it falls in; the online logsumexp takes the logits one at a time in vocabulary order; dhidden sums over v
// in ascending order and dW over t in ascending order. So the chunk sizes below are re-picked freely
// for load balance. (linear_forward would be faster per tile, but it opens its own OpenMP region,
// which inside ours either serializes or oversubscribes.)
#include "host/cpu/grpo_loss.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "host/error.h"

namespace rusca::cpu {

GrpoAgg parse_grpo_agg(const std::string& name) {
    for (GrpoAgg a : {GrpoAgg::TokenMean, GrpoAgg::SeqMeanTokenMean, GrpoAgg::SeqMeanTokenSum,
                      GrpoAgg::SeqMeanTokenSumNorm})
        if (name == grpo_agg_name(a)) return a;
    throw Error("unknown loss aggregation \"" + name + "\" (choices: token-mean, seq-mean-token-mean, "
                "seq-mean-token-sum, seq-mean-token-sum-norm)");
}

const char* grpo_agg_name(GrpoAgg agg) {
    switch (agg) {
        case GrpoAgg::TokenMean: return "token-mean";
        case GrpoAgg::SeqMeanTokenMean: return "seq-mean-token-mean";
        case GrpoAgg::SeqMeanTokenSum: return "seq-mean-token-sum";
        case GrpoAgg::SeqMeanTokenSumNorm: return "seq-mean-token-sum-norm";
    }
    return "?";
}

namespace {

// Softmax statistics of one row of logits z, fed one logit at a time: running max m,
// s = sum exp(z - m) and t = sum exp(z - m) z, rescaled whenever the max grows.
// logsumexp = m + log s; entropy = logsumexp - E_p[z] = logsumexp - t / s.
// The exponentials are taken in Real (expf for float, as in cross_entropy.cpp) and summed in double.
template <typename Real>
struct OnlineSoftmax {
    Real m = -INFINITY;
    double s = 0, t = 0;
    void add(Real z) {
        if (z > m) {  // on the first logit exp(-inf) = 0 clears s and t
            const double r = std::exp((double)m - (double)z);
            s *= r;
            t *= r;
            m = z;
        }
        const double e = std::exp(z - m);
        s += e;
        t += e * z;
    }
    double lse() const { return m + std::log(s); }
    double entropy() const { return lse() - t / s; }
};

// The LM head of one call and the token positions a pass works on (rows: ascending indices into N).
template <typename Real>
struct Head {
    const Real* hidden;  // [N, C]
    const Real* W;       // [V, C]
    const int* tokens;   // [N]
    int C, V;
    double temperature;
    std::vector<int> rows;
};

// Threads for a pass of `macs` multiply-adds: one below ~1 ms of work, where waking a second thread
// costs more than it saves (and far more on a busy CI machine), else all of them.
int pass_threads(size_t macs) { return macs < ((size_t)1 << 21) ? 1 : omp_get_max_threads(); }

// A chunk size near `chunk` that still gives each of nt threads a few chunks of n items. Any value
// gives the same results (see the top of the file); this only balances the load.
int balanced_chunk(int n, int chunk, int nt) {
    const int per = (n + 4 * nt - 1) / (4 * nt);
    return std::max(1, std::min(chunk, per));
}

// Terms per axpy_block call: 8 rows of x stream through L1 against one register-held row of y.
constexpr int kAxpyBlock = 8;

// ----------------------------------------------------------------------------------------------
// The two inner kernels, on one AVX2 register of Real (L = 8 floats or 4 doubles) through GCC vector
// extensions. Both give every output element the same sequence of operations whatever the block or
// tile it falls in; that is what makes chunking and threading bit-neutral.

template <typename Real>
struct Lanes {
    static constexpr int L = 32 / sizeof(Real);
    typedef Real V __attribute__((vector_size(32)));
    static V load(const Real* p) { V v; std::memcpy(&v, p, sizeof v); return v; }  // unaligned
    static void store(Real* p, V v) { std::memcpy(p, &v, sizeof v); }
    static V splat(Real x) {
        if constexpr (L == 8) return V{x, x, x, x, x, x, x, x};
        else return V{x, x, x, x};
    }
    static Real sum(V v) {  // pairwise over the lanes: a fixed order
        Real t[L];
        std::memcpy(t, &v, sizeof v);
        for (int w = L / 2; w >= 1; w /= 2)
            for (int l = 0; l < w; l++) t[l] += t[l + w];
        return t[0];
    }
};

// out[r * ldo + s] = dot(a[r][0:C], b[s][0:C]) * scale for an R x S block. R*S independent
// accumulators hide the FMA latency; each dot is L lane sums, added pairwise, then the tail.
template <typename Real, int R, int S>
void dot_block(Real* out, size_t ldo, const Real* const* a, const Real* const* b, int C, Real scale) {
    using L = Lanes<Real>;
    typename L::V acc[R][S] = {};
    int c = 0;
    for (; c + L::L <= C; c += L::L) {
        typename L::V w[S];
        for (int s = 0; s < S; s++) w[s] = L::load(b[s] + c);
        for (int r = 0; r < R; r++) {
            const typename L::V x = L::load(a[r] + c);
            for (int s = 0; s < S; s++) acc[r][s] += x * w[s];
        }
    }
    for (int r = 0; r < R; r++) {
        for (int s = 0; s < S; s++) {
            Real d = L::sum(acc[r][s]);
            for (int cc = c; cc < C; cc++) d += a[r][cc] * b[s][cc];
            out[(size_t)r * ldo + s] = d * scale;
        }
    }
}

// y[0:C] += sum_{k < K} a[k * lda] x[k][0:C], the terms added one at a time in k order (y is held in
// registers across the K terms, so a block costs one load and store of y, not K).
template <typename Real>
void axpy_block(Real* y, const Real* a, size_t lda, const Real* const* x, int K, int C) {
    using L = Lanes<Real>;
    int c = 0;
    for (; c + L::L <= C; c += L::L) {
        typename L::V v = L::load(y + c);
        for (int k = 0; k < K; k++) v += L::splat(a[k * lda]) * L::load(x[k] + c);
        L::store(y + c, v);
    }
    for (; c < C; c++) {
        Real v = y[c];
        for (int k = 0; k < K; k++) v += a[k * lda] * x[k][c];
        y[c] = v;
    }
}

// tile[i, j] = hidden[rows[i], :] . W[v0 + j, :] / temperature      tile: [nr, nv]
// Blocks of 2 hidden rows x 4 W rows; the W block stays in L1 while the chunk's rows go by.
template <typename Real>
void logits_tile(Real* tile, const Head<Real>& h, const int* rows, int nr, int v0, int nv) {
    constexpr int R = 2, S = 4;
    const Real inv_t = (Real)(1.0 / h.temperature);
    for (int j = 0; j < nv; j += S) {
        const int ns = std::min(S, nv - j);
        const Real* w[S];
        for (int s = 0; s < ns; s++) w[s] = h.W + (size_t)(v0 + j + s) * h.C;
        for (int i = 0; i < nr; i += R) {
            const int nrr = std::min(R, nr - i);
            const Real* x[R];
            for (int r = 0; r < nrr; r++) x[r] = h.hidden + (size_t)rows[i + r] * h.C;
            Real* out = tile + (size_t)i * nv + j;
            if (nrr == R && ns == S) {
                dot_block<Real, R, S>(out, nv, x, w, h.C, inv_t);
            } else {  // the edges, one dot at a time (the same operations per dot)
                for (int r = 0; r < nrr; r++)
                    for (int s = 0; s < ns; s++)
                        dot_block<Real, 1, 1>(out + (size_t)r * nv + s, nv, x + r, w + s, h.C, inv_t);
            }
        }
    }
}

// In place, logits -> d loss / d logits = g (onehot(token) - softmax) / temperature, where
// softmax = exp(z - lse) with the row's final logsumexp from pass 1.
template <typename Real>
void dlogits_tile(Real* tile, const Head<Real>& h, const int* rows, int nr, int v0, int nv,
                  const double* lse, const double* g) {
    for (int i = 0; i < nr; i++) {
        const int n = rows[i], tok = h.tokens[n] - v0;
        const double gt = g[n] / h.temperature;
        Real* z = tile + (size_t)i * nv;
        for (int j = 0; j < nv; j++) {
            const Real p = std::exp((Real)((double)z[j] - lse[n]));
            z[j] = (Real)(gt * ((j == tok) - (double)p));
        }
    }
}

// Pass 1: lse[n], entropy[n] and the sampled token's logit ztok[n] for every n in h.rows.
template <typename Real>
void softmax_pass(double* lse, double* entropy, double* ztok, const Head<Real>& h, int token_chunk,
                  int vocab_chunk) {
    const int nrows = (int)h.rows.size(), nt = pass_threads((size_t)nrows * h.V * h.C);
    const int tc = balanced_chunk(nrows, token_chunk, nt), vc = std::min(vocab_chunk, h.V);
#pragma omp parallel num_threads(nt)
    {
        std::vector<Real> tile((size_t)tc * vc);
        std::vector<OnlineSoftmax<Real>> acc(tc);
#pragma omp for schedule(dynamic, 1)
        for (int r0 = 0; r0 < nrows; r0 += tc) {
            const int nr = std::min(tc, nrows - r0);
            const int* rows = h.rows.data() + r0;
            std::fill(acc.begin(), acc.end(), OnlineSoftmax<Real>{});
            for (int v0 = 0; v0 < h.V; v0 += vc) {
                const int nv = std::min(vc, h.V - v0);
                logits_tile(tile.data(), h, rows, nr, v0, nv);
                for (int i = 0; i < nr; i++) {
                    const Real* z = tile.data() + (size_t)i * nv;
                    for (int j = 0; j < nv; j++) acc[i].add(z[j]);
                    const int tok = h.tokens[rows[i]] - v0;
                    if (tok >= 0 && tok < nv) ztok[rows[i]] = z[tok];
                }
            }
            for (int i = 0; i < nr; i++) {
                lse[rows[i]] = acc[i].lse();
                entropy[rows[i]] = acc[i].entropy();
            }
        }
    }
}

// Pass 2: dhidden[n, :] += sum_v dlogits[n, v] W[v, :] for n in h.rows; a thread owns a token chunk.
template <typename Real>
void dhidden_pass(Real* dhidden, const Head<Real>& h, const double* lse, const double* g,
                  int token_chunk, int vocab_chunk) {
    const int nrows = (int)h.rows.size(), nt = pass_threads((size_t)nrows * h.V * h.C);
    const int tc = balanced_chunk(nrows, token_chunk, nt), vc = std::min(vocab_chunk, h.V);
#pragma omp parallel num_threads(nt)
    {
        std::vector<Real> tile((size_t)tc * vc);
        std::vector<const Real*> wrows(vc);
#pragma omp for schedule(dynamic, 1)
        for (int r0 = 0; r0 < nrows; r0 += tc) {
            const int nr = std::min(tc, nrows - r0);
            const int* rows = h.rows.data() + r0;
            for (int v0 = 0; v0 < h.V; v0 += vc) {
                const int nv = std::min(vc, h.V - v0);
                logits_tile(tile.data(), h, rows, nr, v0, nv);
                dlogits_tile(tile.data(), h, rows, nr, v0, nv, lse, g);
                for (int j = 0; j < nv; j++) wrows[j] = h.W + (size_t)(v0 + j) * h.C;
                for (int j = 0; j < nv; j += kAxpyBlock) {  // a W block in L1, the chunk's rows by
                    const int nb = std::min(kAxpyBlock, nv - j);
                    for (int i = 0; i < nr; i++)
                        axpy_block(dhidden + (size_t)rows[i] * h.C, &tile[(size_t)i * nv + j], 1,
                                   &wrows[j], nb, h.C);
                }
            }
        }
    }
}

// Pass 3: dW[v, :] += sum_n dlogits[n, v] hidden[n, :] over n in h.rows; a thread owns a vocab chunk.
template <typename Real>
void dW_pass(Real* dW, const Head<Real>& h, const double* lse, const double* g, int token_chunk,
             int vocab_chunk) {
    const int nrows = (int)h.rows.size(), nt = pass_threads((size_t)nrows * h.V * h.C);
    const int tc = std::min(token_chunk, std::max(nrows, 1)), vc = balanced_chunk(h.V, vocab_chunk, nt);
#pragma omp parallel num_threads(nt)
    {
        std::vector<Real> tile((size_t)tc * vc);
        std::vector<const Real*> hrows(tc);
#pragma omp for schedule(dynamic, 1)
        for (int v0 = 0; v0 < h.V; v0 += vc) {
            const int nv = std::min(vc, h.V - v0);
            for (int r0 = 0; r0 < nrows; r0 += tc) {
                const int nr = std::min(tc, nrows - r0);
                const int* rows = h.rows.data() + r0;
                logits_tile(tile.data(), h, rows, nr, v0, nv);
                dlogits_tile(tile.data(), h, rows, nr, v0, nv, lse, g);
                for (int i = 0; i < nr; i++) hrows[i] = h.hidden + (size_t)rows[i] * h.C;
                for (int j = 0; j < nv; j++) {  // one dW row stays in L1 while the chunk goes by
                    for (int i = 0; i < nr; i += kAxpyBlock)
                        axpy_block(dW + (size_t)(v0 + j) * h.C, &tile[(size_t)i * nv + j], nv, &hrows[i],
                                   std::min(kAxpyBlock, nr - i), h.C);
                }
            }
        }
    }
}

// One counted token's loss L = pg + beta k3 and its derivative in logp (see grpo_loss.h).
struct TokenTerm {
    double loss = 0, dloss = 0, k3 = 0, pg = 0;
    bool clipped = false, dual = false;
};

TokenTerm token_term(double logp, double A, double old_logp, const float* ref_logp,
                     const GrpoLossConfig& cfg) {
    TokenTerm t;
    const double log_ratio = logp - old_logp;
    const double clamped = std::clamp(log_ratio, -20.0, 20.0);
    const double rho = std::exp(clamped);
    const double drho = clamped == log_ratio ? rho : 0.0;  // the +-20 clamp is flat outside
    const double pg1 = -A * rho;
    const double pg2 = -A * std::clamp(rho, 1.0 - cfg.eps_low, 1.0 + cfg.eps_high);
    t.clipped = pg2 > pg1;  // then rho is outside the clip range, where pg2 is flat in rho
    t.loss = t.clipped ? pg2 : pg1;
    t.dloss = t.clipped ? 0.0 : -A * drho;
    if (cfg.dual_clip_c > 1 && A < 0 && t.loss > -A * cfg.dual_clip_c) {
        t.dual = true;
        t.loss = -A * cfg.dual_clip_c;
        t.dloss = 0;
    }
    t.pg = t.loss;
    if (ref_logp) {
        const double d = *ref_logp - logp, e = std::exp(d);
        t.k3 = e - d - 1;
        if (cfg.beta != 0) {
            t.loss += cfg.beta * t.k3;
            t.dloss += cfg.beta * (1 - e);
        }
    }
    return t;
}

void validate_head(const std::string& who, const int* tokens, int N, int C, int V, double temperature,
                   int vocab_chunk, int token_chunk) {
    check(N >= 0 && C > 0 && V > 0, who + ": bad sizes N=" + std::to_string(N) + " C=" +
                                        std::to_string(C) + " V=" + std::to_string(V));
    check(temperature > 0, who + ": temperature must be > 0, got " + std::to_string(temperature));
    check(vocab_chunk > 0 && token_chunk > 0,
          who + ": chunk sizes must be > 0, got vocab_chunk=" + std::to_string(vocab_chunk) +
              " token_chunk=" + std::to_string(token_chunk));
    for (int n = 0; n < N; n++)
        check(tokens[n] < V, who + ": tokens[" + std::to_string(n) + "] = " +
                                 std::to_string(tokens[n]) + " is outside the vocabulary [0, " +
                                 std::to_string(V) + ")");
}

// The positions that have a token (tokens[n] >= 0), ascending.
std::vector<int> rows_with_token(const int* tokens, int N) {
    std::vector<int> rows;
    for (int n = 0; n < N; n++)
        if (tokens[n] >= 0) rows.push_back(n);
    return rows;
}

}  // namespace

// w[n] = d loss / d L_n: how much position n's loss counts in the aggregate (0 where mask == 0).
std::vector<double> grpo_agg_weights(const float* mask, const int* seq, int N, int S, int max_len,
                                GrpoAgg agg, double scale) {
    std::vector<double> w(N, 0.0);
    if (agg == GrpoAgg::TokenMean) {
        double total = 0;
        for (int n = 0; n < N; n++) total += mask[n];
        for (int n = 0; n < N; n++) w[n] = total > 0 ? mask[n] / total : 0.0;
    } else if (agg == GrpoAgg::SeqMeanTokenSumNorm) {
        for (int n = 0; n < N; n++) w[n] = mask[n] / ((double)S * max_len);
    } else {
        std::vector<double> seq_tokens(S, 0.0);
        for (int n = 0; n < N; n++)
            if (mask[n] != 0) seq_tokens[seq[n]] += mask[n];
        int nonempty = 0;  // sequences without a counted token leave the mean (as verl does)
        for (int s = 0; s < S; s++) nonempty += seq_tokens[s] > 0;
        for (int n = 0; n < N; n++) {
            if (mask[n] == 0) continue;
            w[n] = (double)mask[n] / nonempty;
            if (agg == GrpoAgg::SeqMeanTokenMean) w[n] /= seq_tokens[seq[n]];
        }
    }
    if (scale != 1.0)
        for (double& x : w) x *= scale;
    return w;
}

void grpo_validate_loss(const int* tokens, const float* ref_logp, const float* mask, const int* seq,
                   int N, int S, int max_len, const GrpoLossConfig& cfg) {
    check(cfg.eps_low >= 0 && cfg.eps_low < 1 && cfg.eps_high >= 0,
          "grpo_loss: need 0 <= eps_low < 1 and eps_high >= 0, got " + std::to_string(cfg.eps_low) +
              " and " + std::to_string(cfg.eps_high));
    check(cfg.beta >= 0, "grpo_loss: beta must be >= 0, got " + std::to_string(cfg.beta));
    check(cfg.beta == 0 || ref_logp, "grpo_loss: beta = " + std::to_string(cfg.beta) +
                                         " needs the reference log-probs (ref_logp is null)");
    check(cfg.agg != GrpoAgg::SeqMeanTokenSumNorm || max_len > 0,
          "grpo_loss: seq-mean-token-sum-norm needs max_len > 0, got " + std::to_string(max_len));
    for (int n = 0; n < N; n++) {
        if (mask[n] == 0) continue;
        const std::string at = "grpo_loss: counted position " + std::to_string(n) + " has ";
        check(tokens[n] >= 0, at + "no token (tokens[n] = " + std::to_string(tokens[n]) + ")");
        check(seq[n] >= 0 && seq[n] < S, at + "seq = " + std::to_string(seq[n]) +
                                             ", outside [0, S = " + std::to_string(S) + ")");
    }
}


template <typename Real>
void grpo_logprobs(Real* logp, Real* entropy, const Real* hidden, const Real* W, const int* tokens,
                   int N, int C, int V, double temperature, int vocab_chunk, int token_chunk) {
    validate_head("grpo_logprobs", tokens, N, C, V, temperature, vocab_chunk, token_chunk);
    const Head<Real> h{hidden, W, tokens, C, V, temperature, rows_with_token(tokens, N)};
    std::vector<double> lse(N, 0.0), ent(N, 0.0), ztok(N, 0.0);
    softmax_pass(lse.data(), ent.data(), ztok.data(), h, token_chunk, vocab_chunk);
    for (int n = 0; n < N; n++) {
        logp[n] = (Real)(ztok[n] - lse[n]);
        if (entropy) entropy[n] = (Real)ent[n];
    }
}

template <typename Real>
GrpoLossStats grpo_loss(Real* logp, Real* dhidden, Real* dW, const Real* hidden, const Real* W,
                        const int* tokens, const float* adv, const float* old_logp,
                        const float* ref_logp, const float* mask, const int* seq, int N, int C, int V,
                        int S, int max_len, const GrpoLossConfig& cfg) {
    validate_head("grpo_loss", tokens, N, C, V, cfg.temperature, cfg.vocab_chunk, cfg.token_chunk);
    grpo_validate_loss(tokens, ref_logp, mask, seq, N, S, max_len, cfg);
    Head<Real> h{hidden, W, tokens, C, V, cfg.temperature, rows_with_token(tokens, N)};
    std::vector<double> lse(N, 0.0), ent(N, 0.0), ztok(N, 0.0);
    softmax_pass(lse.data(), ent.data(), ztok.data(), h, cfg.token_chunk, cfg.vocab_chunk);

    // Per token, in position order (a fixed summation order for the loss and the metrics).
    const std::vector<double> w = grpo_agg_weights(mask, seq, N, S, max_len, cfg.agg, cfg.loss_scale);
    std::vector<double> g(N, 0.0);  // d loss / d logp
    GrpoLossStats st;
    double counted = 0, clipped = 0, dual = 0, kl = 0, entropy = 0, ppo_kl = 0;
    for (int n = 0; n < N; n++) {
        const double lp = ztok[n] - lse[n];  // 0 - 0 where there is no token
        logp[n] = (Real)lp;
        if (mask[n] == 0) continue;
        const TokenTerm t = token_term(lp, adv[n], old_logp[n], ref_logp ? ref_logp + n : nullptr, cfg);
        st.loss += w[n] * t.loss;
        st.pg_loss += w[n] * t.pg;
        st.kl_loss += w[n] * (t.loss - t.pg);
        ppo_kl += mask[n] * (old_logp[n] - lp);
        g[n] = w[n] * t.dloss;
        counted += mask[n];
        clipped += mask[n] * t.clipped;
        dual += mask[n] * t.dual;
        kl += mask[n] * t.k3;
        entropy += mask[n] * ent[n];
        st.tokens++;
    }
    if (counted != 0) {
        st.clip_frac = clipped / counted;
        st.dual_clip_frac = dual / counted;
        st.kl_mean = kl / counted;
        st.entropy_mean = entropy / counted;
        st.ppo_kl = ppo_kl / counted;
    }

    if (!dhidden && !dW) return st;
    h.rows.clear();  // the backward passes only visit tokens that carry gradient
    for (int n = 0; n < N; n++)
        if (g[n] != 0) h.rows.push_back(n);
    if (dhidden) dhidden_pass(dhidden, h, lse.data(), g.data(), cfg.token_chunk, cfg.vocab_chunk);
    if (dW) dW_pass(dW, h, lse.data(), g.data(), cfg.token_chunk, cfg.vocab_chunk);
    return st;
}

#define RUSCA_GRPO_INSTANTIATE(Real)                                                               \
    template GrpoLossStats grpo_loss<Real>(Real*, Real*, Real*, const Real*, const Real*, const int*, \
                                           const float*, const float*, const float*, const float*,  \
                                           const int*, int, int, int, int, int,                     \
                                           const GrpoLossConfig&);                                  \
    template void grpo_logprobs<Real>(Real*, Real*, const Real*, const Real*, const int*, int, int, \
                                      int, double, int, int);
RUSCA_GRPO_INSTANTIATE(float)
RUSCA_GRPO_INSTANTIATE(double)
#undef RUSCA_GRPO_INSTANTIATE

}  // namespace rusca::cpu
