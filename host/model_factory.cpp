// model_factory.cpp: choosing a backend by name.
#include "error.h"
#include "gpu.h"
#include "model.h"

namespace rusca {

#ifdef RUSCA_CUDA
std::unique_ptr<Model> make_cuda_model(const ModelConfig& c);  // host/cuda/cuda_model.cpp
#endif

std::unique_ptr<Model> make_model(const ModelConfig& c, const std::string& device) {
    check(device == "cpu" || device == "cuda" || device == "auto",
          "--device: \"" + device + "\" (expected cpu, cuda or auto)");
    if (device == "cpu") return make_cpu_model(c);
    std::string why;
    const bool have_gpu = !list_gpus(&why).empty();
    if (device == "auto" && !have_gpu) return make_cpu_model(c);
    check(have_gpu, "--device cuda: no usable GPU (" + why + ")");
#ifdef RUSCA_CUDA
    return make_cuda_model(c);
#else
    throw Error("--device cuda: this rusca was built without CUDA");
#endif
}

}  // namespace rusca
