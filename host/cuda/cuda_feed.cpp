// cuda_feed.cpp: prefill ("feeding" rows) in the CUDA engine: the tokens of many sequences are
// concatenated into one batch of rows and run through the graph (host/graph.h), so every matmul,
// norm and RoPE runs once for all of them; each sequence's keys/values go straight to its pool rows.
// Attention runs once per run of equal-length sequences (sequences are ordered by length, longest
// first, so such runs are contiguous): the training flash-attention kernel (cuda/attention.cuh) when
// a sequence has no prefix and D is 64 or 128, otherwise kv_attention_forward_batched over (prefix
// segment, own rows). The judge's criterion suffixes are fed the same way with the response's
// prefill as their prefix segment.
#ifdef RUSCA_CUDA
#include <algorithm>

#include "cuda/attention.cuh"     // attention_forward (flash, causal): prefill without a prefix
#include "cuda/common.cuh"        // CUDA_CHECK
#include "cuda/embedding.cuh"     // embedding_forward as a device-indexed row gather
#include "cuda/kv_attention.cuh"  // kv_attention_forward_batched: rows over a prefix segment
#include "engine_impl.h"
#include "graph_ops.h"
#include "host/error.h"
#include "host/graph.h"

namespace rusca {

using namespace cuda_engine;

// Prefill mode of the graph: the rows run in place in the engine's activations; layer l's values and
// roped keys are written to pool rows f.dst.. of its planes; attention per run of sequences.
// dm: the feed's per-sequence arrays on the device (prefix_start, prefix_len, own_start, own_len [S]).
class CudaEngine::Impl::FeedOps : public cuda::GraphOps {
public:
    FeedOps(CudaEngine::Impl& e, const Feed& f, const int* dm, bool need_hidden)
        : cuda::GraphOps(e.c, e.layout, e.stream, e.acts.tok, e.acts.pos), e_(e), f_(f), dm_(dm),
          need_hidden_(need_hidden) {}
    const bf16* W(size_t offset) const { return e_.W(offset); }

    Bufs bufs(int) const { return layer_bufs(e_.acts); }
    void project_v(int l, const bf16* ln, const bf16* Wv, const bf16* bv, int N) const {
        linear(e_.pool_v(l) + size_t(f_.dst) * e_.KV, ln, Wv, bv, N, e_.C, e_.KV);
    }
    void rope_k(int l, const bf16* k, int N) const { rope(e_.pool_k(l) + size_t(f_.dst) * e_.KV, k, N, e_.Hkv); }
    // Without need_hidden the last layer stops once its keys/values are written (a judge prefix).
    bool attends(int l) const { return need_hidden_ || l < e_.L - 1; }
    void attention(int l, bf16* att, const bf16* q_all, int) const;

private:
    CudaEngine::Impl& e_;
    const Feed& f_;
    const int* dm_;
    const bool need_hidden_;
};

// Attention, one call per run of sequences with the same length (and prefix or none).
void CudaEngine::Impl::FeedOps::attention(int l, bf16* att, const bf16* q_all, int) const {
    const Feed& f = f_;
    const int S = int(f.n.size()), Q = e_.Q, KV = e_.KV, D = e_.D, Hq = e_.Hq, Hkv = e_.Hkv;
    bf16 *pk = e_.pool_k(l), *pv = e_.pool_v(l);
    const int* dm = dm_;
    for (int i = 0, row = 0; i < S;) {
        const int n = f.n[i], has_prefix = f.prefix_len[i] > 0;
        int e = i, max_prefix = 0;
        while (e < S && f.n[e] == n && (f.prefix_len[e] > 0) == has_prefix) max_prefix = std::max(max_prefix, f.prefix_len[e++]);
        const int count = e - i;
        bf16* out = att + size_t(row) * Q;
        const bf16* q = q_all + size_t(row) * Q;
        const bf16* k = pk + size_t(f.dst + row) * KV;
        const bf16* v = pv + size_t(f.dst + row) * KV;
        const bool flash = e_.opt.flash_prefill && !has_prefix && (D == 64 || D == 128) && count <= 65535 &&
                           aligned16(out) && aligned16(q) && aligned16(k) && aligned16(v);
        if (flash)
            cuda::attention_forward(out, e_.acts.lse, q, k, v, count, n, Hq, Hkv, D, stream_);
        else
            cuda::kv_attention_forward_batched(out, q, pk, pv, dm + i, dm + S + i, pk, pv, dm + 2 * S + i,
                                               dm + 3 * S + i, count, n, max_prefix + n, Hq, Hkv, D, nullptr, 0,
                                               stream_);
        row += count * n, i = e;
    }
}

// Feeds f's rows through the model, writing their keys/values to the pool. need_hidden: also run the
// rest of the last layer and gather the final-norm hidden states of f.keep into keep_out [keep, C]
// (without it, the last layer stops once its keys/values are written: a judge prefix needs no more).
void CudaEngine::Impl::forward_feed(const Feed& f, bf16* keep_out, bool need_hidden) {
    Range range("forward_feed");
    const int N = int(f.tokens.size()), S = int(f.n.size()), G = int(f.keep.size());
    check(N >= 1 && N <= acts.rows, "forward_feed: batch of rows out of the reserved size (a rusca bug)");
    // Per-sequence arrays: prefix_start, prefix_len, own_start, own_len [S], then keep [G].
    std::vector<int> m(size_t(4) * S + G);
    for (int i = 0, row = 0; i < S; row += f.n[i], i++) {
        m[i] = f.prefix_start[i], m[S + i] = f.prefix_len[i], m[2 * S + i] = f.dst + row, m[3 * S + i] = f.n[i];
    }
    std::copy(f.keep.begin(), f.keep.end(), m.begin() + 4 * S);
    check(m.size() <= seq_meta.size(), "forward_feed: metadata out of the reserved size (a rusca bug)");
    int* dm = seq_meta.data();
    CUDA_CHECK(cudaMemcpyAsync(dm, m.data(), m.size() * sizeof(int), cudaMemcpyHostToDevice, stream));
    CUDA_CHECK(cudaMemcpyAsync(acts.tok, f.tokens.data(), N * sizeof(int), cudaMemcpyHostToDevice, stream));
    CUDA_CHECK(cudaMemcpyAsync(acts.pos, f.pos.data(), N * sizeof(int), cudaMemcpyHostToDevice, stream));
    stats.prefill_tokens += N;

    FeedOps ops(*this, f, dm, need_hidden);
    graph::trunk_forward(ops, N);
    if (need_hidden && G > 0) cuda::embedding_forward(keep_out, dm + 4 * S, acts.ln, G, C, stream);  // row gather
}

}  // namespace rusca
#endif  // RUSCA_CUDA
