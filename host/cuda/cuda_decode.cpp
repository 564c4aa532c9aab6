// cuda_decode.cpp: one decode step of the CUDA engine through the graph (host/graph.h), the LM head +
// sampling, and the step's capture in a CUDA graph.
//
// Decode: every active rollout feeds its last token. Rollout in batch row b owns slot b of the
// pool (rows own_base + b * max_new ...). A CUDA graph bakes in every pointer, but the row a decode
// step writes moves by one each step. The trick that makes the step capturable: the NEWEST token's
// key/value always sits in row 0 of the slot. Before each step (outside the graph) one 3-D copy
// moves row 0 of every slot, in every plane, to row j (the next free row); the graph then writes the
// new token's K/V into row 0. A decode query sees all of its own rows, and attention does not depend
// on the order of the keys (RoPE is applied before caching), so the permuted rows give the same
// result up to fp32 summation order. Everything else that changes per step (positions, lengths,
// tokens, RNG counters) is in small device arrays re-uploaded before each step. Finished rollouts
// leave at once: the last active slot is copied into the hole (one 3-D copy), so the batch stays
// dense and the next step runs with the smaller batch. A graph is captured per batch size, lazily,
// on the second consecutive step at that size (the first, plain step warms cuBLASLt's algorithm
// cache and loads the kernels), and all graphs are dropped at the end of the call.
#ifdef RUSCA_CUDA
#include <cstdio>
#include <string>

#include "cuda/common.cuh"        // CUDA_CHECK
#include "cuda/kv_attention.cuh"  // kv_attention_forward_batched: the decode query over prefix + own rows
#include "cuda/matmul.cuh"        // gemm: V straight into the pool slots, the LM head to fp32
#include "cuda/sampler.cuh"       // sample_batch_with_workspace
#include "engine_impl.h"
#include "graph_ops.h"
#include "host/error.h"
#include "host/graph.h"

namespace rusca {

using namespace cuda_engine;

// Decode mode of the graph on batch rows 0..B-1 (one new token each), reading only device arrays
// (dec_meta, dec_seq) for what changes from step to step, so it can be captured in a CUDA graph.
// Layer l's new value goes straight into row 0 of each row's slot (a GEMM whose output row stride is
// one slot), its roped key is copied there; attention reads prefix segment + own rows.
class CudaEngine::Impl::DecodeOps : public cuda::GraphOps {
public:
    explicit DecodeOps(CudaEngine::Impl& e)
        : cuda::GraphOps(e.c, e.layout, e.stream, e.meta(CudaEngine::Impl::kTok), e.meta(CudaEngine::Impl::kPos)),
          e_(e) {}
    const bf16* W(size_t offset) const { return e_.W(offset); }

    Bufs bufs(int) const { return layer_bufs(e_.acts); }
    // v = ln Wv^T + bv written straight into row 0 of every slot (output row stride = one slot)
    void project_v(int l, const bf16* ln, const bf16* Wv, const bf16* bv, int B) const {
        bf16* row0 = e_.pool_v(l) + size_t(e_.own_base) * e_.KV;  // row 0 of slot 0
        cuda::gemm(row0, false, int(size_t(e_.max_new) * e_.KV), cuda::MatRef{ln, e_.C, false},
                   cuda::MatRef{Wv, e_.C, true}, B, e_.KV, e_.C, 1.0f, 0.0f, bv, stream_);
    }
    // k is roped in place in the activations (the graph's k_lin), then copied to row 0 of every slot.
    void rope_k(int l, const bf16* k, int B) const {
        bf16* kr = e_.acts.k;
        rope(kr, k, B, e_.Hkv);
        const size_t row_bytes = size_t(e_.KV) * sizeof(bf16), slot_rows = size_t(e_.max_new);
        CUDA_CHECK(cudaMemcpy2DAsync(e_.pool_k(l) + size_t(e_.own_base) * e_.KV, slot_rows * row_bytes, kr, row_bytes,
                                     row_bytes, size_t(B), cudaMemcpyDeviceToDevice, stream_));
    }
    bool attends(int) const { return true; }
    void attention(int l, bf16* att, const bf16* q, int B) const {
        using I = CudaEngine::Impl;
        bf16 *pk = e_.pool_k(l), *pv = e_.pool_v(l);
        cuda::kv_attention_forward_batched(att, q, pk, pv, e_.meta(I::kPrefixStart), e_.meta(I::kPrefixLen), pk, pv,
                                           e_.meta(I::kOwnStart), e_.meta(I::kOwnLen), B, 1, e_.dec_max_len, e_.Hq,
                                           e_.Hkv, e_.D, e_.attn_ws_bytes ? e_.attn_ws.data() : nullptr,
                                           e_.attn_ws_bytes, stream_);
    }

private:
    CudaEngine::Impl& e_;
};

// One decode step for batch rows 0..B-1: embedding of each row's token, the layers (new K/V into
// row 0 of the row's slot), final norm, LM head, sampling.
void CudaEngine::Impl::decode_forward(int B) {
    DecodeOps ops(*this);
    graph::trunk_forward(ops, B);
    lm_head_and_sample(B, acts.ln);
}

// logits = h Wlm^T in fp32, then one token per row into dec_tok / dec_lp, with counters
// (seed, dec_seq[b], step[b]); in chunks of kLogitRows rows.
void CudaEngine::Impl::lm_head_and_sample(int B, const bf16* h) {
    for (int r0 = 0; r0 < B; r0 += kLogitRows) {
        const int rows = std::min(kLogitRows, B - r0);
        cuda::gemm(logits.data(), true, V, cuda::MatRef{h + size_t(r0) * C, C, false}, cuda::MatRef{lm_head, C, true},
                   rows, V, C, 1.0f, 0.0f, nullptr, stream);
        if (trace) {  // test hook (never inside a graph)
            std::vector<float> host(size_t(rows) * V);
            CUDA_CHECK(cudaMemcpyAsync(host.data(), logits.data(), host.size() * sizeof(float), cudaMemcpyDeviceToHost,
                                       stream));
            CUDA_CHECK(cudaStreamSynchronize(stream));
            for (int b = 0; b < rows; b++)
                (*trace)[batch_rollouts[r0 + b]].emplace_back(host.begin() + size_t(b) * V,
                                                               host.begin() + size_t(b + 1) * V);
        }
        cuda::sample_batch_with_workspace(dec_tok.data() + r0, dec_lp.data() + r0, logits.data(), rows, V, sampling,
                                          seed, dec_seq.data() + r0, meta(kStep) + r0,
                                          sample_ws_bytes ? sample_ws.data() : nullptr, sample_ws_bytes, stream);
    }
}

// Captures decode_forward(B) into a graph. On any failure the capture is ended, the error cleared,
// graphs are switched off for this call (a warning says so) and false is returned: the caller runs
// the step with plain launches, which gives the same result.
bool CudaEngine::Impl::capture(int B) {
    cudaGraph_t graph = nullptr;
    std::string error;
    CUDA_CHECK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
    try {
        decode_forward(B);
    } catch (const std::exception& e) {
        error = e.what();
    }
    cudaError_t err = cudaStreamEndCapture(stream, &graph);
    if (error.empty() && err != cudaSuccess) error = cudaGetErrorString(err);
    cudaGraphExec_t exec = nullptr;
    if (error.empty()) {
        err = cudaGraphInstantiate(&exec, graph, 0);
        if (err != cudaSuccess) error = cudaGetErrorString(err), exec = nullptr;
    }
    if (graph) cudaGraphDestroy(graph);
    if (!error.empty()) {
        cudaGetLastError();  // capture errors are not sticky; clear the last-error slot
        std::fprintf(stderr, "rusca: warning: CUDA graph capture of the decode step failed (%s); decoding without "
                     "graphs\n", error.c_str());
        graphs_broken = true, stats.graphs_failed = true;
        return false;
    }
    graphs[B] = exec;
    stats.graphs_captured++;
    return true;
}

// One decode step (metadata already uploaded): the graph for B if there is one, else capture one
// when the previous step ran plain launches at this same B (everything is warm), else plain launches.
void CudaEngine::Impl::decode_step(int B) {
    Range range("decode_step");
    const bool graphs_on = opt.cuda_graphs && !trace && !graphs_broken;
    auto it = graphs.find(B);
    if (graphs_on && it == graphs.end() && prev_eager_B == B && int(graphs.size()) < kMaxGraphs && capture(B))
        it = graphs.find(B);
    if (graphs_on && it != graphs.end()) {
        CUDA_CHECK(cudaGraphLaunch(it->second, stream));
        stats.graph_launches++;
        return;
    }
    decode_forward(B);
    stats.eager_steps++;
    prev_eager_B = B;
}

}  // namespace rusca
#endif  // RUSCA_CUDA
