// cuda_generate.cpp: generate() of the CUDA engine (host/cuda/cuda_infer.h): one prefill per
// distinct full prefix (prefix + prompt) into the KV pool, then every rollout decodes together, one
// token per step (host/cuda/cuda_decode.cpp); finished rollouts leave the batch at once.
#ifdef RUSCA_CUDA
#include <algorithm>
#include <climits>
#include <map>
#include <numeric>
#include <string>

#include "cuda/common.cuh"        // CUDA_CHECK
#include "cuda/embedding.cuh"     // embedding_forward as a device-indexed row gather
#include "cuda/kv_attention.cuh"  // kv_attention_workspace_bytes
#include "cuda/sampler.cuh"       // sample_batch_workspace_bytes
#include "engine_impl.h"
#include "host/error.h"

namespace rusca {

using namespace cuda_engine;

std::vector<std::vector<Completion>> CudaEngine::Impl::generate(const std::vector<PromptGroup>& groups,
                                                               const GenerateOptions& gopt) {
    Range range("CudaEngine::generate");
    gopt.sampling.validate();
    check(gopt.max_new_tokens > 0, "max_new_tokens must be positive");
    check(gopt.rollout_base.empty() || gopt.rollout_base.size() == groups.size(), "rollout_base: one id per group");
    stats = CudaEngineStats{};
    const auto t_start = Clock::now();

    // Rollouts and their distinct full prefixes (prefix + prompt), one prefill each, as generate().
    std::map<std::vector<int>, int> index;
    std::vector<std::vector<int>> distinct;
    std::vector<int> roll_prefix;                 // [R] -> distinct
    std::vector<std::pair<int, int>> roll_where;  // [R] -> (group, rollout)
    for (size_t g = 0; g < groups.size(); g++) {
        for (size_t i = 0; i < groups[g].prefixes.size(); i++) {
            const std::vector<int> full = rollout_context(groups, g, i, c, gopt.max_new_tokens);
            auto it = index.find(full);
            if (it == index.end()) it = index.emplace(full, int(distinct.size())).first, distinct.push_back(full);
            roll_prefix.push_back(it->second);
            roll_where.push_back({int(g), int(i)});
        }
    }
    std::vector<std::vector<Completion>> out(groups.size());
    for (size_t g = 0; g < groups.size(); g++) out[g].resize(groups[g].prefixes.size());
    const int R = int(roll_prefix.size()), P = int(distinct.size());
    if (R == 0) return out;
    auto completion = [&](int r) -> Completion& { return out[roll_where[r].first][roll_where[r].second]; };
    if (trace) trace->assign(R, {});

    // Pool layout: the distinct prefixes, longest first (equal lengths adjacent: one attention call
    // each), then one slot of max_new rows per rollout.
    max_new = gopt.max_new_tokens;
    std::vector<int> order(P), slot_of(P), prefix_row(P), lens;
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return distinct[a].size() > distinct[b].size(); });
    long long rows = 0;
    int longest = 0;
    for (int k = 0; k < P; k++) {
        const int p = order[k], len = int(distinct[p].size());
        slot_of[p] = k, prefix_row[p] = int(rows), lens.push_back(len);
        rows += len, longest = std::max(longest, len);
    }
    check(rows + (long long)R * max_new + max_new <= INT_MAX, "generate: too many tokens for one call");
    own_base = int(rows);
    reserve_pool(align_up(size_t(own_base) + size_t(R) * max_new, size_t(max_new)));
    const std::vector<std::pair<int, int>> chunks = chunk_ranges(lens, opt.prefill_chunk_rows);
    long long chunk_max = 0;
    for (auto [b, e] : chunks)
        chunk_max = std::max(chunk_max, std::accumulate(lens.begin() + b, lens.begin() + e, 0LL));
    reserve_acts(size_t(std::max<long long>(chunk_max, R)));
    bf16* prefix_last = ensure(hidden, size_t(P) * C);  // final hidden of each prefix's last token, by k

    // Decode state and its buffers, all sized now: nothing may be reallocated once a graph exists.
    Bcap = R, sampling = gopt.sampling, seed = gopt.seed, dec_max_len = longest + max_new;
    meta_h.assign(size_t(kMetaArrays) * Bcap, 0);
    seq_h.assign(size_t(Bcap), 0);
    ensure(dec_meta, meta_h.size()), ensure(dec_seq, size_t(Bcap));
    ensure(dec_tok, size_t(Bcap)), ensure(dec_lp, size_t(Bcap));
    ensure(logits, size_t(std::min(Bcap, kLogitRows)) * V);
    attn_ws_bytes = cuda::kv_attention_workspace_bytes(Bcap, 1, dec_max_len, Hq, D);
    ensure(attn_ws, attn_ws_bytes);
    sample_ws_bytes = 0;
    for (int b = 1; b <= std::min(Bcap, kLogitRows); b++)
        sample_ws_bytes = std::max(sample_ws_bytes, cuda::sample_batch_workspace_bytes(b, V, sampling));
    ensure(sample_ws, sample_ws_bytes);
    clear_graphs();
    graphs_broken = false;
    struct DropGraphs {  // graphs hold this call's pointers and sizes: never reuse them
        Impl* self;
        ~DropGraphs() { self->clear_graphs(); }
    } drop{this};

    // Prefill, chunk by chunk.
    for (auto [b, e] : chunks) {
        Feed f;
        f.dst = prefix_row[order[b]];
        for (int k = b; k < e; k++) f.add(distinct[order[k]].data(), lens[k], 0, 0);
        forward_feed(f, prefix_last + size_t(b) * C, true);
    }

    // Step 0: every rollout samples from its prefix's last hidden state.
    std::vector<int> tok_h(Bcap);
    std::vector<float> lp_h(Bcap);
    std::vector<char> finished(R, 0);
    const std::vector<int>& stops = gopt.stop_tokens;
    auto is_stop = [&](int t) { return std::find(stops.begin(), stops.end(), t) != stops.end(); };
    std::vector<int> active(R);
    std::iota(active.begin(), active.end(), 0);
    auto sample_and_record = [&](int B, int step, bool first) {
        if (first) {
            lm_head_and_sample(B, acts.ln);
        } else {
            decode_step(B);
        }
        CUDA_CHECK(cudaMemcpyAsync(tok_h.data(), dec_tok.data(), B * sizeof(int), cudaMemcpyDeviceToHost, stream));
        CUDA_CHECK(cudaMemcpyAsync(lp_h.data(), dec_lp.data(), B * sizeof(float), cudaMemcpyDeviceToHost, stream));
        CUDA_CHECK(cudaStreamSynchronize(stream));
        for (int b = 0; b < B; b++) {
            const int r = active[b];
            Completion& comp = completion(r);
            comp.tokens.push_back(tok_h[b]), comp.logprobs.push_back(lp_h[b]);
            if (is_stop(tok_h[b])) comp.stopped = true, finished[r] = 1;
            if (step + 1 == max_new) finished[r] = 1;
        }
    };
    for (int b = 0; b < R; b++) {
        meta_at(kTok, b) = slot_of[roll_prefix[b]];  // the gather index: this rollout's prefix row of prefix_last
        meta_at(kStep, b) = 0;
        seq_h[b] = rollout_rng_id(gopt, b, roll_where[b].first, roll_where[b].second);
    }
    batch_rollouts = active;
    upload_meta(R);
    cuda::embedding_forward(acts.ln, meta(kTok), prefix_last, R, C, stream);  // row gather
    sample_and_record(R, 0, true);
    stats.prefill_s = seconds_since(t_start);

    // Decode: feed j writes own row j (via row 0, see the top of the file) and samples step j + 1.
    const auto t_decode = Clock::now();
    prev_eager_B = -1;
    for (int j = 0;; j++) {
        // Compact: the last active slot moves into each finished one (its j filled rows, all planes).
        int n = int(active.size());
        auto pop = [&] {
            while (n > 0 && finished[active[n - 1]]) n--;
        };
        pop();
        for (int b = 0; b < n; b++) {
            if (!finished[active[b]]) continue;
            copy_planes(own_base + (n - 1) * max_new, own_base + b * max_new, size_t(j), 1, size_t(max_new));
            active[b] = active[n - 1], n--;
            pop();
        }
        active.resize(n);
        if (n == 0) break;
        const int B = n;
        // Row 0 (the newest, token j - 1) of every slot moves to row j; this step writes row 0.
        if (j > 0) copy_planes(own_base, own_base + j, 1, B, size_t(max_new));
        for (int b = 0; b < B; b++) {
            const int r = active[b], p = roll_prefix[r], plen = int(distinct[p].size());
            meta_at(kTok, b) = completion(r).tokens.back();
            meta_at(kPos, b) = plen + j;
            meta_at(kPrefixStart, b) = prefix_row[p], meta_at(kPrefixLen, b) = plen;
            meta_at(kOwnStart, b) = own_base + b * max_new, meta_at(kOwnLen, b) = j + 1;
            meta_at(kStep, b) = j + 1;
            seq_h[b] = rollout_rng_id(gopt, r, roll_where[r].first, roll_where[r].second);
        }
        batch_rollouts = active;
        upload_meta(B);
        sample_and_record(B, j + 1, false);
        stats.decode_steps++, stats.decoded_rows += B;
    }
    stats.decode_s = seconds_since(t_decode);
    return out;
}

}  // namespace rusca
#endif  // RUSCA_CUDA
