// engine.cpp: one switch between the CPU and CUDA rollout/judge paths.
#include "engine.h"

#include "error.h"
#ifdef RUSCA_CUDA
#include "host/cuda/cuda_infer.h"
#endif

namespace rusca {

std::vector<std::vector<Completion>> generate_on(const std::string& device, Model& model,
                                                 const std::vector<PromptGroup>& groups, const GenerateOptions& opt) {
#ifdef RUSCA_CUDA
    if (device == "cuda") return CudaEngine(model.config, model.params()).generate(groups, opt);
#endif
    check(device == "cpu", "generation on \"" + device + "\" is not available in this build");
    CpuInference inf(model.config, model.params());
    return generate(inf, groups, opt);
}

std::vector<std::vector<Verdict>> judge_on(const std::string& device, Model& judge_model, const Judge& judge,
                                           const std::vector<JudgeItem>& items) {
#ifdef RUSCA_CUDA
    if (device == "cuda") {
        CudaEngine engine(judge_model.config, judge_model.params());
        return cuda_judge(engine, judge, items);
    }
#endif
    check(device == "cpu", "judging on \"" + device + "\" is not available in this build");
    return judge.judge(items);
}

}  // namespace rusca
