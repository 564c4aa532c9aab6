// cuda_infer.h: the CUDA inference engine, the GPU twin of CpuInference + generate() + Judge
// (host/cpu/infer.h, host/generate.h, host/judge.h): one model held in bf16 on the device, a KV
// pool shared by everything one call prefills and decodes, and the same answers as the CPU path
// (same Completion and Verdict structures, the same sampling rules and counters), within bf16.
//
//   generate(): one prefill per distinct full prefix (prefix + prompt) into the KV pool, then every
//     rollout decodes together, one token per step, attending over its shared prefill rows plus its
//     own rows; finished rollouts leave the batch at once (the batch is compacted on the host). The
//     decode step is captured in a CUDA graph per batch size (see cuda_decode.cpp for how the
//     changing KV write position is kept out of the graph).
//   judge(): the conversation + response part of each judge prompt is prefilled once; every
//     criterion is a short suffix over it; only the last position's hidden state is kept and
//     margin = h . (w_yes - w_no), never the full LM head.
//
// Only in CUDA builds (RUSCA_CUDA); the bench functions at the end exist in every build (they throw
// an Error without CUDA), so `rusca bench generate|judge` can be wired without #ifdefs.
#pragma once
#include <nlohmann/json_fwd.hpp>
#include <string>

#ifdef RUSCA_CUDA
#include <memory>
#include <vector>

#include "host/config.h"
#include "host/generate.h"
#include "host/judge.h"
#endif

namespace rusca {

#ifdef RUSCA_CUDA

struct CudaEngineOptions {
    bool cuda_graphs = true;        // capture the decode step per batch size (off: plain launches)
    bool flash_prefill = true;      // prefill attention by the training flash kernel when D is 64/128
    int prefill_chunk_rows = 8192;  // tokens per prefill forward (a longer single prompt is one chunk)
    int judge_prefix_rows = 65536;  // judge: KV rows of response prefixes held at once
    size_t max_kv_pool_bytes = 0;   // what the memory plan left for the KV pool (0: no cap)
    size_t reserve_kv_pool_bytes = 0;  // KV pool allocated at construction (the plan's need for one step),
                                       // so steps never reallocate it (0: sized by the first call)
};

// What the last generate() / judge() call did, for benchmarks and logs.
struct CudaEngineStats {
    double prefill_s = 0;  // generate: prefill of every distinct prefix + the first sampling step; judge: all
    double decode_s = 0;   // the decode loop
    long decode_steps = 0, decoded_rows = 0;  // steps, and the sum of batch sizes over them
    long graph_launches = 0, eager_steps = 0;
    int graphs_captured = 0;
    bool graphs_failed = false;  // capture was refused by the driver; the call fell back to launches
    long prefill_tokens = 0;
    size_t kv_pool_bytes = 0;
};

// A judge prompt as tokens: the shared prefix and one suffix per criterion.
struct JudgeTokens {
    std::vector<int> prefix;
    std::vector<std::vector<int>> suffixes;
};

// bf16 weights already on the device in ParamLayout order (Model::device_weights()), borrowed by
// an engine: the trainer's updates are what the next generate() samples from.
struct SharedWeights {
    const void* bf16 = nullptr;
};

class CudaEngine {
public:
    // Converts the fp32 parameters (ParamLayout order, read during construction only) to bf16 on
    // the current device. Throws rusca::Error when there is no GPU.
    CudaEngine(const ModelConfig& c, const float* host_params, CudaEngineOptions opt = {});
    // Reads `shared` (which must outlive the engine) instead of a copy of its own.
    CudaEngine(const ModelConfig& c, SharedWeights shared, CudaEngineOptions opt = {});
    ~CudaEngine();
    CudaEngine(const CudaEngine&) = delete;
    CudaEngine& operator=(const CudaEngine&) = delete;

    const ModelConfig config;

    // generate() of host/generate.h on the GPU: completions [group][rollout], rollout r of the call
    // (groups flattened in order) drawing from counter (seed, r, step).
    std::vector<std::vector<Completion>> generate(const std::vector<PromptGroup>& groups, const GenerateOptions& opt);

    // Verdicts [item][criterion]; margin = logit(yes) - logit(no) of the last suffix position.
    std::vector<std::vector<Verdict>> judge(const std::vector<JudgeTokens>& items, int yes_id, int no_id);

    const CudaEngineStats& stats() const;
    // Bytes the KV pool holds now (it grows when a call needs more, never shrinks).
    size_t kv_pool_capacity_bytes() const;

    // Test hook: while set, generate() stores the fp32 logits row every sampling step saw,
    // (*out)[rollout r][step][V], and runs without CUDA graphs. Pass nullptr to stop.
    void trace_logits(std::vector<std::vector<std::vector<float>>>* out);

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

// Judge::judge on the GPU: tokenized by `judge` (its template, tokenizer and answer words); the
// scoring model is the engine's (the CPU model behind `judge` is not used).
std::vector<std::vector<Verdict>> cuda_judge(CudaEngine& engine, const Judge& judge,
                                             const std::vector<JudgeItem>& items);

#endif  // RUSCA_CUDA

// ---- benchmarks (host/cuda/bench_rollout.cpp): our figure next to PyTorch's, same run, JSON ----
// Both print a short summary to stdout and return everything as JSON; random weights (std 0.02)
// and random tokens; `python` runs tools/bench_*_torch.py (run_pytorch = false skips it).

// Rollouts: `batch` prompts of prompt_len random tokens, one rollout each, new_tokens sampled at
// temperature 1 with no stop tokens; median of `repeats` timed generate() calls after one warm-up.
// Reports tokens/s and the fraction of the memory-bandwidth limit (weights + KV bytes read per decode
// step / step time / bandwidth_bytes_per_s; 4.17e12 = the device copy measured on the H200).
nlohmann::json bench_generate(const std::string& config_path, int batch, int prompt_len, int new_tokens, int repeats,
                              const std::string& python, bool run_pytorch, double bandwidth_bytes_per_s = 4.17e12);

// HealthBench-shaped judging: `responses` responses of response_len random tokens after a
// conversation of conversation_len tokens, each graded on `criteria` criteria of criterion_len
// tokens; criteria judged per second. The PyTorch baseline runs each full judge prompt as its own
// sequence (batched torch_batch at a time) and reads the last position's logits.
nlohmann::json bench_judge(const std::string& config_path, int responses, int criteria, int conversation_len,
                           int response_len, int criterion_len, int repeats, const std::string& python,
                           bool run_pytorch, int torch_batch = 16);

}  // namespace rusca
