// grpo_loss.cu: the fused GRPO loss through the LM head (the math: host/cpu/grpo_loss.h).
//
// Same chunked structure as lm_head_cross_entropy (cross_entropy.cu): the [N x V] logits never
// exist; a chunk of tokens x the whole vocabulary does, in one fp32 scratch that the backward reuses
// for its bf16 dlogits. Per call:
//   host    copy tokens, mask, seq to the host; validate them as the twin does; compute the
//           aggregation weight w[n] = d loss / d L_n (token-mean, seq-mean-..., Dr. GRPO): the
//           denominators need every token, so they come before the chunk loop
//   chunk   1. logits = hidden_chunk @ W^T / temperature                 cuBLASLt, fp32 out
//           2. softmax_row_stats: logp, lse, entropy per token           one block per row
//           3. token_term_kernel: ratio, clip, dual clip, k3 -> L_n, metrics, and
//              gscale = -w_n dL_n/dlogp / temperature                    one thread per token
//           4. softmax_rows_to_dlogits: dlogits = gscale (softmax - onehot), bf16 in place
//           5. dhidden_chunk += dlogits @ W;  dW += dlogits^T @ hidden_chunk     cuBLASLt, beta = 1
//   host    copy the per-token L, k3, entropy, flags back and sum them in position order (double)
// Passes 4-5 run only when a gradient is asked for. Rows without gradient (padding, clipped tokens)
// become zero dlogits rows without reading the logits; the GEMMs still multiply them (cheaper than
// compacting the chunk).
//
// Memory beyond inputs and outputs: chunk * V * 4 bytes + 8 bytes per chunk token + 24 bytes per
// token, O(chunk * V). Default chunk 1024 at V = 151936: 0.62 GB for any N (bound: < 1 GB).
// Work: three GEMMs of 2 N V C flops each (the minimum: forward, dhidden, dW) plus two reads and one
// half-size write of the fp32 logits.
#include "cuda/grpo_loss.cuh"

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "cuda/common.cuh"
#include "cuda/launch.cuh"
#include "cuda/device_buffer.h"
#include "cuda/cross_entropy.cuh"
#include "cuda/matmul.cuh"
#include "host/error.h"

namespace rusca::cuda {
namespace {

using bf16 = __nv_bfloat16;
using cpu::GrpoAgg;

// What token_term_kernel needs of cpu::GrpoLossConfig (a plain struct, passed by value).
struct TermConfig {
    double eps_low, eps_high, dual_clip_c, beta, inv_temperature;
};

// One thread per position i = n0 + r of the chunk. The formulas are cpu::token_term's (in double,
// like the twin), see grpo_loss.h:
//   rho = exp(clamp(logp - old, -20, 20)); pg = max(-A rho, -A clip(rho, 1 - eps_low, 1 + eps_high));
//   dual clip: for A < 0 and c > 1, pg = min(pg, -A c);  L = pg + beta k3, k3 = exp(ref - logp) - (ref - logp) - 1
// Writes L, k3 and flags (1 = clipped, 2 = dual clip) for the statistics, and the row's dlogits
// scale gscale[r] = -w_i dL/dlogp / temperature (d loss/d z = w dL/dlogp (onehot - softmax) / T).
__global__ void token_term_kernel(float* tok_loss, float* tok_k3, int* tok_flags, float* gscale,
                                  const float* logp, const float* adv, const float* old_logp,
                                  const float* ref_logp, const float* mask, const double* w, TermConfig cfg,
                                  int n0, int n) {
    const int r = blockIdx.x * blockDim.x + threadIdx.x;
    if (r >= n) return;
    const int i = n0 + r;
    if (mask[i] == 0.0f) {
        tok_loss[i] = 0.0f, tok_k3[i] = 0.0f, tok_flags[i] = 0, gscale[r] = 0.0f;
        return;
    }
    const double lp = logp[i], A = adv[i];
    const double log_ratio = lp - (double)old_logp[i];
    const double clamped = fmin(fmax(log_ratio, -20.0), 20.0);
    const double rho = exp(clamped);
    const double drho = clamped == log_ratio ? rho : 0.0;  // the +-20 clamp is flat outside
    const double pg1 = -A * rho;
    const double pg2 = -A * fmin(fmax(rho, 1.0 - cfg.eps_low), 1.0 + cfg.eps_high);
    const bool clipped = pg2 > pg1;  // rho is outside the clip range, where pg2 is flat
    double loss = clipped ? pg2 : pg1;
    double dloss = clipped ? 0.0 : -A * drho;
    bool dual = false;
    if (cfg.dual_clip_c > 1 && A < 0 && loss > -A * cfg.dual_clip_c) {
        dual = true;
        loss = -A * cfg.dual_clip_c;
        dloss = 0.0;
    }
    double k3 = 0.0;
    if (ref_logp) {
        const double d = (double)ref_logp[i] - lp, e = exp(d);
        k3 = e - d - 1;
        if (cfg.beta != 0) {
            loss += cfg.beta * k3;
            dloss += cfg.beta * (1 - e);
        }
    }
    tok_loss[i] = (float)loss;
    tok_k3[i] = (float)k3;
    tok_flags[i] = (clipped ? 1 : 0) | (dual ? 2 : 0);
    gscale[r] = (float)(-w[i] * dloss * cfg.inv_temperature);
}

// The twin's checks on host copies: tokens inside the vocabulary, then the loss's own inputs.
void validate(const std::vector<int>& tokens, const std::vector<float>& mask, const std::vector<int>& seq,
              const float* ref_logp, int N, int V, int S, int max_len, const cpu::GrpoLossConfig& cfg) {
    for (int n = 0; n < N; n++)
        check(tokens[n] < V, "grpo_loss: tokens[" + std::to_string(n) + "] = " + std::to_string(tokens[n]) +
                                 " is outside the vocabulary [0, " + std::to_string(V) + ")");
    cpu::grpo_validate_loss(tokens.data(), ref_logp, mask.data(), seq.data(), N, S, max_len, cfg);
}

template <typename T>
std::vector<T> download(const T* p, int n, cudaStream_t stream) {
    std::vector<T> h(n);
    if (n > 0) CUDA_CHECK(cudaMemcpyAsync(h.data(), p, (size_t)n * sizeof(T), cudaMemcpyDeviceToHost, stream));
    return h;
}

void check_head(const char* who, int N, int C, int V, double temperature) {
    check(N >= 0 && C > 0 && V > 0, std::string(who) + ": bad sizes N=" + std::to_string(N) +
                                        " C=" + std::to_string(C) + " V=" + std::to_string(V));
    check((size_t)2 * V <= (size_t)2147483647, std::string(who) + ": V too large");
    check(temperature > 0, std::string(who) + ": temperature must be > 0, got " + std::to_string(temperature));
}

}  // namespace

void grpo_logprobs(float* logp, float* entropy, const bf16* hidden, const bf16* W, const int* tokens, int N,
                   int C, int V, double temperature, int vocab_chunk, int cpu_token_chunk, cudaStream_t stream,
                   int token_chunk) {
    (void)vocab_chunk, (void)cpu_token_chunk;  // the CPU's tile sizes
    check_head("grpo_logprobs", N, C, V, temperature);
    const int tc = lm_head_token_chunk(N, V, token_chunk);
    if (N == 0) return;
    StreamScratch scratch(StreamScratch::piece((size_t)tc * V * sizeof(float)), stream);
    float* logits = scratch.take<float>((size_t)tc * V);
    for (int n0 = 0; n0 < N; n0 += tc) {
        const int n = std::min(tc, N - n0);
        // logits[n, V] = hidden[n0 : n0 + n] @ W^T / temperature
        gemm(logits, true, V, MatRef{hidden + (size_t)n0 * C, C, false}, MatRef{W, C, true}, n, V, C,
             (float)(1.0 / temperature), 0.0f, nullptr, stream);
        softmax_row_stats(nullptr, logp + n0, nullptr, entropy ? entropy + n0 : nullptr, logits, tokens + n0,
                          n, V, stream);
    }
}

cpu::GrpoLossStats grpo_loss(float* logp, bf16* dhidden, float* dW, const bf16* hidden, const bf16* W,
                             const int* tokens, const float* adv, const float* old_logp, const float* ref_logp,
                             const float* mask, const int* seq, int N, int C, int V, int S, int max_len,
                             const cpu::GrpoLossConfig& cfg, cudaStream_t stream, int token_chunk) {
    check_head("grpo_loss", N, C, V, cfg.temperature);
    const int tc = lm_head_token_chunk(N, V, token_chunk);
    cpu::GrpoLossStats st;
    if (N == 0) return st;

    // Host side first: validation and the aggregation weights need every token.
    const std::vector<int> h_tokens = download(tokens, N, stream), h_seq = download(seq, N, stream);
    const std::vector<float> h_mask = download(mask, N, stream);
    CUDA_CHECK(cudaStreamSynchronize(stream));
    validate(h_tokens, h_mask, h_seq, ref_logp, N, V, S, max_len, cfg);
    const std::vector<double> w =
        cpu::grpo_agg_weights(h_mask.data(), h_seq.data(), N, S, max_len, cfg.agg, cfg.loss_scale);

    const bool backward = dhidden || dW;
    const size_t logits_count = (size_t)tc * V;
    StreamScratch scratch(StreamScratch::piece(logits_count * sizeof(float)) + 2 * StreamScratch::piece(tc * 4) +
                              StreamScratch::piece(N * sizeof(double)) + 4 * StreamScratch::piece(N * 4),
                          stream);
    float* logits = scratch.take<float>(logits_count);
    float* lse = scratch.take<float>(tc);
    float* gscale = scratch.take<float>(tc);
    double* d_w = scratch.take<double>(N);
    float* tok_loss = scratch.take<float>(N);
    float* tok_k3 = scratch.take<float>(N);
    float* tok_ent = scratch.take<float>(N);
    int* tok_flags = scratch.take<int>(N);
    CUDA_CHECK(cudaMemcpyAsync(d_w, w.data(), N * sizeof(double), cudaMemcpyHostToDevice, stream));
    const TermConfig tcfg{cfg.eps_low, cfg.eps_high, cfg.dual_clip_c, cfg.beta, 1.0 / cfg.temperature};
    const bf16* dlogits = reinterpret_cast<const bf16*>(logits);  // after step 4: [n, V], row stride 2V

    for (int n0 = 0; n0 < N; n0 += tc) {
        const int n = std::min(tc, N - n0);
        const bf16* h = hidden + (size_t)n0 * C;
        // 1. logits[n, V] = h[n, C] @ W[V, C]^T / temperature
        gemm(logits, true, V, MatRef{h, C, false}, MatRef{W, C, true}, n, V, C, (float)(1.0 / cfg.temperature),
             0.0f, nullptr, stream);
        // 2. logp, lse, entropy
        softmax_row_stats(nullptr, logp + n0, backward ? lse : nullptr, tok_ent + n0, logits, tokens + n0, n, V,
                          stream);
        // 3. per-token loss terms and dlogits scales
        LAUNCH_KERNEL(token_term_kernel, ceil_div(n, 256), 256, 0, stream, tok_loss, tok_k3, tok_flags, gscale, logp,
                      adv, old_logp, ref_logp, mask, d_w, tcfg, n0, n);
        if (!backward) continue;
        // 4. dlogits (bf16, in place)
        softmax_rows_to_dlogits(logits, lse, tokens + n0, gscale, n, V, stream);
        // 5. dhidden[n, C] += dlogits[n, V] @ W[V, C];  dW[V, C] += dlogits^T @ h[n, C]
        if (dhidden)
            gemm(dhidden + (size_t)n0 * C, false, C, MatRef{dlogits, 2 * V, false}, MatRef{W, C, false}, n, C, V,
                 1.0f, 1.0f, nullptr, stream);
        if (dW)
            gemm(dW, true, C, MatRef{dlogits, 2 * V, true}, MatRef{h, C, false}, V, C, n, 1.0f, 1.0f, nullptr,
                 stream);
    }

    // Statistics: per-token values summed on the host in position order, as the twin does.
    const std::vector<float> loss_t = download(tok_loss, N, stream), k3_t = download(tok_k3, N, stream),
                             ent_t = download(tok_ent, N, stream);
    const std::vector<float> logp_t = download(logp, N, stream), old_t = download(old_logp, N, stream);
    const std::vector<int> flags = download(tok_flags, N, stream);
    CUDA_CHECK(cudaStreamSynchronize(stream));
    double counted = 0, clipped = 0, dual = 0, kl = 0, entropy = 0, ppo_kl = 0;
    for (int n = 0; n < N; n++) {
        if (h_mask[n] == 0) continue;
        st.loss += w[n] * loss_t[n];
        const double kl_term = ref_logp && cfg.beta != 0 ? cfg.beta * (double)k3_t[n] : 0.0;
        st.kl_loss += w[n] * kl_term;
        st.pg_loss += w[n] * ((double)loss_t[n] - kl_term);
        ppo_kl += h_mask[n] * ((double)old_t[n] - (double)logp_t[n]);
        counted += h_mask[n];
        clipped += h_mask[n] * (flags[n] & 1);
        dual += h_mask[n] * ((flags[n] >> 1) & 1);
        kl += h_mask[n] * (double)k3_t[n];
        entropy += h_mask[n] * (double)ent_t[n];
        st.tokens++;
    }
    if (counted != 0) {
        st.clip_frac = clipped / counted;
        st.dual_clip_frac = dual / counted;
        st.kl_mean = kl / counted;
        st.entropy_mean = entropy / counted;
        st.ppo_kl = ppo_kl / counted;
    }
    return st;
}

}  // namespace rusca::cuda
