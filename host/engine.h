// engine.h: generation and judging on the chosen device: the CPU reference (host/generate.h,
// host/judge.h) or the CUDA engine (host/cuda/cuda_infer.h), with the same results up to bf16.
#pragma once
#include <string>
#include <vector>

#include "generate.h"
#include "judge.h"
#include "model.h"

namespace rusca {

// device: "cpu" or "cuda" (from resolve_device()). `model` holds fp32 host parameters.
std::vector<std::vector<Completion>> generate_on(const std::string& device, Model& model,
                                                 const std::vector<PromptGroup>& groups, const GenerateOptions& opt);
// `judge` supplies the prompts and answer tokens; its CpuInference is used on the CPU only.
std::vector<std::vector<Verdict>> judge_on(const std::string& device, Model& judge_model, const Judge& judge,
                                           const std::vector<JudgeItem>& items);

}  // namespace rusca
