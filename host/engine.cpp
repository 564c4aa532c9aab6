// engine.cpp: the CPU engine, and the one switch between it and the CUDA engine.
#include "engine.h"

#include "error.h"
#ifdef RUSCA_CUDA
#include "host/cuda/cuda_infer.h"
#endif

namespace rusca {

namespace {

// CpuInference over the model's fp32 params: generate() and Judge::judge() as they are.
class CpuEngine final : public InferenceEngine {
public:
    explicit CpuEngine(Model& m) : inf_(m.config, m.params()) {}
    std::vector<std::vector<Completion>> generate(const std::vector<PromptGroup>& groups,
                                                  const GenerateOptions& opt) override {
        return rusca::generate(inf_, groups, opt);
    }
    std::vector<std::vector<Verdict>> judge(const Judge& judge, const std::vector<JudgeItem>& items) override {
        check(judge.scorer().params_of(inf_.layout.embed) == inf_.params_of(inf_.layout.embed),
              "judge: the Judge scores with other weights than this engine's (a rusca bug)");
        return judge.judge(items);
    }
    const char* device() const override { return "cpu"; }

private:
    CpuInference inf_;
};

#ifdef RUSCA_CUDA
class CudaInferenceEngine final : public InferenceEngine {
public:
    CudaInferenceEngine(Model& m, const CudaEngineOptions& opt)
        : engine_(m.device_weights() ? std::make_unique<CudaEngine>(m.config, SharedWeights{m.device_weights()}, opt)
                                     : std::make_unique<CudaEngine>(m.config, m.params(), opt)) {}
    std::vector<std::vector<Completion>> generate(const std::vector<PromptGroup>& groups,
                                                  const GenerateOptions& opt) override {
        return engine_->generate(groups, opt);
    }
    std::vector<std::vector<Verdict>> judge(const Judge& judge, const std::vector<JudgeItem>& items) override {
        return cuda_judge(*engine_, judge, items);
    }
    const char* device() const override { return "cuda"; }

private:
    std::unique_ptr<CudaEngine> engine_;
};
#endif

}  // namespace

std::unique_ptr<InferenceEngine> make_engine(const std::string& device, Model& model, size_t max_kv_pool_bytes,
                                             size_t reserve_kv_pool_bytes) {
#ifdef RUSCA_CUDA
    if (device == "cuda") {
        CudaEngineOptions opt;
        opt.max_kv_pool_bytes = max_kv_pool_bytes, opt.reserve_kv_pool_bytes = reserve_kv_pool_bytes;
        return std::make_unique<CudaInferenceEngine>(model, opt);
    }
#endif
    check(device == "cpu", "inference on \"" + device + "\" is not available in this build");
    check(model.device() == std::string("cpu"), "a CPU engine needs a CPU model (a rusca bug)");
    return std::make_unique<CpuEngine>(model);
}

}  // namespace rusca
