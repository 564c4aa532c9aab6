// cmd_info.cpp: `rusca info`, the build and the GPUs this process can see.
#include <omp.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>

#include "cli.h"
#include "comm.h"
#include "comm_nccl.h"
#include "fileio.h"
#include "gpu.h"

namespace rusca {

namespace {

// The data-parallel view: which rank this is, through what, and the device it trains on.
void print_ranks(const std::vector<GpuInfo>& gpus) {
    const std::string plugin = mpi_plugin_path();
    std::printf("MPI: %s\n", file_exists(plugin) ? ("plugin " + plugin).c_str() : "not built (no MPI found at build time)");
    std::printf("NCCL: %s\n", nccl_version().c_str());
    const LaunchInfo li = launch_info();
    Comm& comm = world();
    // Several ranks on a node with several GPUs: each trains on GPU (local rank mod GPUs seen).
    const int gpu = rank_gpu(li, int(gpus.size()));
    std::string device = gpus.empty() ? std::string("CPU")
                                      : "GPU " + std::to_string(std::max(gpu, 0)) + " of the " + std::to_string(gpus.size()) +
                                            " it sees" + (gpu >= 0 ? " (local rank mod GPUs)" : "");
    std::printf("rank %d of %d (launcher variable: %s, communicator: %s, local rank %d): %s\n", comm.rank(), comm.size(),
                li.source.c_str(), comm.backend(), li.local_rank, device.c_str());
}

}  // namespace

void add_info_command(CLI::App& app) {
    CLI::App* cmd = app.add_subcommand("info", "Show the build (CPU / CUDA) and the GPUs with their memory");
    cmd->callback([] {
        std::printf("rusca build: CPU backend (fp32, OpenMP, %d threads)%s%s\n", omp_get_max_threads(),
                    cuda_built() ? " + " : "; CUDA not built", cuda_built() ? cuda_backend_name() : "");
        std::string why;
        std::vector<GpuInfo> gpus = list_gpus(&why, GpuFree::kAll);  // one process: contexts are harmless
        if (gpus.empty()) std::printf("GPUs: none (%s)\n", why.c_str());
        for (const GpuInfo& g : gpus)
            std::printf("GPU %d: %s, compute capability %d.%d, %d SMs, %.1f GiB total, %.1f GiB free\n", g.index,
                        g.name.c_str(), g.cc_major, g.cc_minor, g.sm_count, g.total_bytes / 1073741824.0,
                        g.free_bytes / 1073741824.0);
        print_ranks(gpus);
    });
}

}  // namespace rusca
