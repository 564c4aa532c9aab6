// model_factory.cpp: choosing a backend by name.
#include "checkpoint.h"  // load_params
#include "error.h"
#include "comm.h"
#include "gpu.h"
#include "model.h"
#include "model_hook.h"

namespace rusca {

#ifdef RUSCA_CUDA
std::unique_ptr<Model> make_cuda_model(const ModelConfig& c, bool frozen);  // host/cuda/cuda_model.cpp
#endif

void require_gpu(const std::string& what) {
    std::string why;
    const bool have_gpu = !list_gpus(&why).empty();  // before the message: it fills `why`
    check(have_gpu, what + " needs a GPU: " + why);
}

std::string resolve_device(const std::string& device) {
    check(device == "cpu" || device == "cuda" || device == "auto",
          "--device: \"" + device + "\" (expected cpu, cuda or auto)");
    if (device == "cpu") return "cpu";
    if (device == "auto" && list_gpus().empty()) return "cpu";
    require_gpu("--device cuda");
    check(cuda_built(), "--device cuda: this rusca was built without CUDA");
    static const bool picked = [] {  // several ranks on a node of several GPUs: one GPU each
        const int gpu = rank_gpu(launch_info(), int(list_gpus().size()));
        if (gpu >= 0) use_gpu(gpu);
        return true;
    }();
    (void)picked;
    return "cuda";
}

namespace {
std::function<std::unique_ptr<Model>(std::unique_ptr<Model>)> model_wrapper;  // the test hook
}

void set_model_wrapper(std::function<std::unique_ptr<Model>(std::unique_ptr<Model>)> wrap) {
    model_wrapper = std::move(wrap);
}

std::unique_ptr<Model> make_model(const ModelConfig& c, const std::string& device, bool frozen) {
    std::unique_ptr<Model> m;
    if (resolve_device(device) == "cpu") {
        m = make_cpu_model(c, frozen);
    } else {
#ifdef RUSCA_CUDA
        m = make_cuda_model(c, frozen);
#else
        throw Error("--device cuda: this rusca was built without CUDA");
#endif
    }
    return model_wrapper ? model_wrapper(std::move(m)) : std::move(m);
}

std::unique_ptr<Model> load_model(const std::string& dir, const std::string& device, bool frozen) {
    std::unique_ptr<Model> m = make_model(load_config(dir + "/config.json"), device, frozen);
    load_params(dir, m->layout, m->params());
    m->upload_params();
    return m;
}

}  // namespace rusca
