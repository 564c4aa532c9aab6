// cmd_info.cpp: `rusca info`, the build and the GPUs this process can see.
#include <omp.h>

#include <CLI/CLI.hpp>
#include <cstdio>

#include "cli.h"
#include "gpu.h"

namespace rusca {

void add_info_command(CLI::App& app) {
    CLI::App* cmd = app.add_subcommand("info", "Show the build (CPU / CUDA) and the GPUs with their memory");
    cmd->callback([] {
        std::printf("rusca build: CPU backend (fp32, OpenMP, %d threads)%s%s\n", omp_get_max_threads(),
                    cuda_built() ? " + " : "; CUDA not built", cuda_built() ? cuda_backend_name() : "");
        std::string why;
        std::vector<GpuInfo> gpus = list_gpus(&why);
        if (gpus.empty()) std::printf("GPUs: none (%s)\n", why.c_str());
        for (const GpuInfo& g : gpus)
            std::printf("GPU %d: %s, compute capability %d.%d, %d SMs, %.1f GiB total, %.1f GiB free\n", g.index,
                        g.name.c_str(), g.cc_major, g.cc_minor, g.sm_count, g.total_bytes / 1073741824.0,
                        g.free_bytes / 1073741824.0);
    });
}

}  // namespace rusca
