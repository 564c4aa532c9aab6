// cuda_judge.cpp: judge() of the CUDA engine (host/cuda/cuda_infer.h): the conversation + response
// part of each judge prompt is prefilled once; every criterion is a short suffix over it; only the
// last position's hidden state is kept and margin = h . (w_yes - w_no), never the full LM head.
#ifdef RUSCA_CUDA
#include <algorithm>
#include <climits>
#include <numeric>
#include <string>

#include "cuda/common.cuh"  // CUDA_CHECK
#include "engine_impl.h"
#include "host/error.h"
#include "host/safetensors.h"  // bf16_to_f32

namespace rusca {

using namespace cuda_engine;

std::vector<std::vector<Verdict>> CudaEngine::Impl::judge(const std::vector<JudgeTokens>& items, int yes_id,
                                                         int no_id) {
    Range range("CudaEngine::judge");
    check(yes_id >= 0 && yes_id < V && no_id >= 0 && no_id < V, "judge: answer token ids are outside the judge "
                                                                "model's vocabulary");
    check(yes_id != no_id, "judge: the yes and no answer tokens must differ");
    stats = CudaEngineStats{};
    const auto t_start = Clock::now();
    const int I = int(items.size());
    for (int i = 0; i < I; i++) {
        const JudgeTokens& it = items[i];
        check(!it.prefix.empty(), "judge: item " + std::to_string(i) + " has an empty prefix");
        for (int t : it.prefix)
            check(t >= 0 && t < V, "judge: item " + std::to_string(i) + ": token id " + std::to_string(t) +
                                       " is outside the vocabulary");
        for (const std::vector<int>& s : it.suffixes) {
            check(!s.empty(), "judge: item " + std::to_string(i) + " has an empty criterion suffix");
            for (int t : s)
                check(t >= 0 && t < V, "judge: item " + std::to_string(i) + ": token id " + std::to_string(t) +
                                           " is outside the vocabulary");
            check(it.prefix.size() + s.size() <= size_t(c.max_position_embeddings),
                  "judge: item " + std::to_string(i) + ": the judge prompt has " +
                      std::to_string(it.prefix.size() + s.size()) + " tokens, more than the judge's "
                      "max_position_embeddings " + std::to_string(c.max_position_embeddings));
        }
    }
    std::vector<std::vector<Verdict>> out(I);
    for (int i = 0; i < I; i++) out[i].resize(items[i].suffixes.size());

    // w_yes - w_no from the device's own (bf16) LM head: the margin is this model's logit difference.
    std::vector<uint16_t> wy(C), wn(C);
    CUDA_CHECK(cudaMemcpy(wy.data(), lm_head + size_t(yes_id) * C, C * sizeof(uint16_t), cudaMemcpyDeviceToHost));
    CUDA_CHECK(cudaMemcpy(wn.data(), lm_head + size_t(no_id) * C, C * sizeof(uint16_t), cudaMemcpyDeviceToHost));
    std::vector<double> w_diff(C);
    for (int k = 0; k < C; k++) w_diff[k] = double(bf16_to_f32(wy[k])) - double(bf16_to_f32(wn[k]));

    // Items longest prefix first, in chunks of at most judge_prefix_rows prefix rows; per item chunk,
    // its suffixes longest first in feeds of at most prefill_chunk_rows rows.
    std::vector<int> order(I), plens(I);
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(),
                     [&](int a, int b) { return items[a].prefix.size() > items[b].prefix.size(); });
    for (int k = 0; k < I; k++) plens[k] = int(items[order[k]].prefix.size());
    struct Sfx {
        int item, criterion, len;
    };
    struct ItemChunk {
        int b, e;
        std::vector<std::pair<int, int>> prefix_feeds;  // ranges of k
        std::vector<Sfx> sfx;                           // sorted, longest first
        std::vector<std::pair<int, int>> sfx_feeds;     // ranges of sfx
    };
    std::vector<ItemChunk> chunks;
    long long max_prefix_rows = 0, max_sfx_rows = 0, max_feed_rows = 1;
    size_t max_keep = 1;
    for (auto [b, e] : chunk_ranges(plens, opt.judge_prefix_rows)) {
        ItemChunk ch{b, e, {}, {}, {}};
        std::vector<int> sub(plens.begin() + b, plens.begin() + e), slens;
        for (auto [sb, se] : chunk_ranges(sub, opt.prefill_chunk_rows)) {
            ch.prefix_feeds.push_back({b + sb, b + se});
            max_feed_rows = std::max(max_feed_rows, std::accumulate(sub.begin() + sb, sub.begin() + se, 0LL));
        }
        max_prefix_rows = std::max(max_prefix_rows, std::accumulate(sub.begin(), sub.end(), 0LL));
        for (int k = b; k < e; k++)
            for (size_t s = 0; s < items[order[k]].suffixes.size(); s++)
                ch.sfx.push_back({k, int(s), int(items[order[k]].suffixes[s].size())});
        std::stable_sort(ch.sfx.begin(), ch.sfx.end(), [](const Sfx& x, const Sfx& y) { return x.len > y.len; });
        for (const Sfx& s : ch.sfx) slens.push_back(s.len);
        ch.sfx_feeds = chunk_ranges(slens, opt.prefill_chunk_rows);
        for (auto [sb, se] : ch.sfx_feeds) {
            const long long r = std::accumulate(slens.begin() + sb, slens.begin() + se, 0LL);
            max_sfx_rows = std::max(max_sfx_rows, r), max_feed_rows = std::max(max_feed_rows, r);
            max_keep = std::max(max_keep, size_t(se - sb));
        }
        chunks.push_back(std::move(ch));
    }
    check(max_prefix_rows + max_sfx_rows <= INT_MAX, "judge: too many tokens in one chunk");
    const int sfx_base = int(max_prefix_rows);
    reserve_pool(size_t(max_prefix_rows + max_sfx_rows));
    reserve_acts(size_t(max_feed_rows));
    bf16* keep = ensure(hidden, max_keep * C);
    std::vector<uint16_t> keep_h(max_keep * C);

    for (const ItemChunk& ch : chunks) {
        std::vector<int> row_of(I, 0);  // pool row of item-order k's prefix
        for (int k = ch.b, row = 0; k < ch.e; row += plens[k], k++) row_of[k] = row;
        for (auto [b, e] : ch.prefix_feeds) {
            Feed f;
            f.dst = row_of[b];
            for (int k = b; k < e; k++) f.add(items[order[k]].prefix.data(), plens[k], 0, 0);
            forward_feed(f, nullptr, false);
        }
        for (auto [b, e] : ch.sfx_feeds) {
            Feed f;
            f.dst = sfx_base;
            for (int s = b; s < e; s++) {
                const Sfx& x = ch.sfx[s];
                const std::vector<int>& t = items[order[x.item]].suffixes[x.criterion];
                f.add(t.data(), x.len, row_of[x.item], plens[x.item]);
            }
            forward_feed(f, keep, true);
            const size_t count = size_t(e - b);
            CUDA_CHECK(cudaMemcpyAsync(keep_h.data(), keep, count * C * sizeof(uint16_t), cudaMemcpyDeviceToHost,
                                       stream));
            CUDA_CHECK(cudaStreamSynchronize(stream));
            for (int s = b; s < e; s++) {
                const uint16_t* h = keep_h.data() + size_t(s - b) * C;
                double margin = 0;
                for (int k = 0; k < C; k++) margin += double(bf16_to_f32(h[k])) * w_diff[k];
                out[order[ch.sfx[s].item]][ch.sfx[s].criterion] = make_verdict(margin);
            }
        }
    }
    CUDA_CHECK(cudaStreamSynchronize(stream));
    stats.prefill_s = seconds_since(t_start);
    return out;
}

}  // namespace rusca
#endif  // RUSCA_CUDA
