// engine.h: generation and judging on the chosen device, behind one interface: the CPU reference
// (host/generate.h, host/judge.h) or the CUDA engine (host/cuda/cuda_infer.h), with the same results
// up to bf16. The loops (rl, eval, generate, judge) hold an InferenceEngine and never ask which.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "generate.h"
#include "judge.h"
#include "model.h"

namespace rusca {

class InferenceEngine {
public:
    virtual ~InferenceEngine() = default;
    // Completions [group][rollout] (generate() of host/generate.h).
    virtual std::vector<std::vector<Completion>> generate(const std::vector<PromptGroup>& groups,
                                                          const GenerateOptions& opt) = 0;
    // Verdicts [item][criterion] by this engine's weights; `judge` supplies the template, tokenizer
    // and answer words (on the CPU it is the scorer too, so it must read this engine's weights).
    virtual std::vector<std::vector<Verdict>> judge(const Judge& judge, const std::vector<JudgeItem>& items) = 0;
    virtual const char* device() const = 0;
};

// An engine over `model`'s weights, on `device` ("cpu" or "cuda", from resolve_device()). The
// weights are shared, never copied, when the model lives there already: a CPU engine reads the
// fp32 params(), a CUDA engine over a CUDA model reads the bf16 weights the trainer updates (after
// an update it sees the new weights with no host round trip). A CPU model on "cuda" is uploaded
// once, into the engine's own bf16 copy (the judge).
// max_kv_pool_bytes caps a CUDA engine's KV pool (the memory plan's share; 0: no cap);
// reserve_kv_pool_bytes is allocated for it up front (the plan's need for one step; 0: on first use).
std::unique_ptr<InferenceEngine> make_engine(const std::string& device, Model& model, size_t max_kv_pool_bytes = 0,
                                             size_t reserve_kv_pool_bytes = 0);

}  // namespace rusca
