// mfu.cpp: the peak table and the FLOP count behind the MFU on the step lines (see mfu.h).
#include "mfu.h"

#include <vector>

#include "gpu.h"
#include "params.h"

namespace rusca {

double peak_bf16_flops(const std::string& gpu_name) {
    // Vendor datasheet figures, dense (no sparsity), bf16 inputs with fp32 accumulation.
    struct Card {
        const char* name_part;
        double flops;
    };
    static const Card cards[] = {
        {"H200", 989e12}, {"GH200", 989e12}, {"H100 SXM", 989e12}, {"H100 80GB HBM3", 989e12},
        {"H100 PCIe", 756e12}, {"H100 NVL", 835e12}, {"H800", 989e12}, {"A100", 312e12}, {"A800", 312e12},
        {"L40S", 362e12}, {"L4", 121e12}, {"A10G", 70e12}, {"RTX 4090", 165e12}, {"RTX 3090", 71e12},
    };
    if (gpu_name.find("emulator") != std::string::npos) return 0;  // an emulator's MFU means nothing
    for (const Card& c : cards)
        if (gpu_name.find(c.name_part) != std::string::npos) return c.flops;
    return 0;
}

double forward_flops_per_token(const ModelConfig& c, int T) {
    const double params = double(ParamLayout(c).total);
    const double attention = 2.0 * 2.0 * (T / 2.0) * c.q_dim() * c.num_layers;
    return 2.0 * params + attention;
}

double current_gpu_peak_flops() {
    const std::vector<GpuInfo> gpus = list_gpus();
    return gpus.empty() ? 0 : peak_bf16_flops(gpus[0].name);
}

}  // namespace rusca
