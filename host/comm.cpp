// comm.cpp: launcher detection, the single-process communicator, and loading the MPI plugin.
#include "comm.h"

#include <dlfcn.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <filesystem>

#include "error.h"

namespace rusca {

namespace {

class SingleComm final : public Comm {
public:
    int rank() const override { return 0; }
    int size() const override { return 1; }
    const char* backend() const override { return "single"; }
    void all_reduce(float*, size_t, ReduceOp) override {}
    void all_reduce(double*, size_t, ReduceOp) override {}
    void reduce_scatter(const float* in, float* out, size_t chunk) override { copy(in, out, chunk); }
    void all_gather(const float* in, float* out, size_t chunk) override { copy(in, out, chunk); }
    void broadcast(void*, size_t, int root) override { check(root == 0, "broadcast from rank " + std::to_string(root) + " of 1"); }
    void barrier() override {}
    [[noreturn]] void abort(int code) override { std::_Exit(code); }

private:
    static void copy(const float* in, float* out, size_t n) {
        if (in != out) std::memmove(out, in, n * sizeof(float));
    }
};

// A launcher variable as a non-negative integer, or -1 when unset.
int env_int(const char* name) {
    const char* v = std::getenv(name);
    if (!v || !*v) return -1;
    char* end = nullptr;
    const long x = std::strtol(v, &end, 10);
    check(*end == '\0' && x >= 0 && x < (1 << 24), std::string("environment variable ") + name + "=\"" + v +
                                                       "\" is not a rank or a world size");
    return int(x);
}

std::unique_ptr<Comm>& world_slot() {
    static std::unique_ptr<Comm> comm;
    return comm;
}

}  // namespace

LaunchInfo launch_info() {
    // Most specific first: mpirun's own variables, then PMI (MPICH, srun --mpi=pmi2/pmix), then srun.
    // Slurm's sizes are the job step's (srun sets them), not SLURM_NTASKS: a batch script that runs
    // rusca directly inside an allocation of several tasks is still one process.
    const char* pairs[][2] = {{"OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE"},
                              {"PMI_RANK", "PMI_SIZE"},
                              {"PMIX_RANK", "SLURM_STEP_NUM_TASKS"},
                              {"SLURM_PROCID", "SLURM_STEP_NUM_TASKS"}};
    for (const auto& p : pairs) {
        const int rank = env_int(p[0]), size = env_int(p[1]);
        if (rank < 0 || size < 0) continue;
        check(size >= 1 && rank < size, std::string(p[0]) + "=" + std::to_string(rank) + " is not below " + p[1] + "=" +
                                            std::to_string(size));
        int local = env_int("OMPI_COMM_WORLD_LOCAL_RANK");
        if (local < 0) local = env_int("MPI_LOCALRANKID");
        if (local < 0) local = env_int("SLURM_LOCALID");
        return {rank, size, std::max(local, 0), p[0]};
    }
    return {};
}

int rank_gpu(const LaunchInfo& li, int n_gpus) {
    if (li.size <= 1 || n_gpus <= 1) return -1;
    return li.local_rank % n_gpus;
}

std::string mpi_plugin_path() {
    std::error_code ec;
    const std::filesystem::path exe = std::filesystem::read_symlink("/proc/self/exe", ec);
    return ((ec ? std::filesystem::path(".") : exe.parent_path()) / "lib" / "librusca_mpi.so").string();
}

std::unique_ptr<Comm> make_single_comm() { return std::make_unique<SingleComm>(); }

std::unique_ptr<Comm> make_mpi_comm() {
    const std::string path = mpi_plugin_path();
    check(std::filesystem::exists(path), path + ": not built (this build found no MPI: install libopenmpi-dev and rebuild)");
    // RTLD_GLOBAL: Open MPI's own components, loaded by MPI_Init, resolve symbols of libmpi.
    void* lib = dlopen(path.c_str(), RTLD_NOW | RTLD_GLOBAL);
    if (!lib) {
        const char* why = dlerror();
        throw Error(path + ": cannot load: " + (why ? why : "unknown dlopen error"));
    }
    using Make = Comm* (*)();
    auto make = reinterpret_cast<Make>(dlsym(lib, "rusca_make_mpi_comm"));
    check(make != nullptr, path + ": has no rusca_make_mpi_comm (a stale plugin: rebuild)");
    return std::unique_ptr<Comm>(make());
}

Comm& world() {
    std::unique_ptr<Comm>& comm = world_slot();
    if (comm) return *comm;
    const LaunchInfo li = launch_info();
    if (li.size == 1) {
        comm = make_single_comm();
        return *comm;
    }
    comm = make_mpi_comm();
    check(comm->size() == li.size && comm->rank() == li.rank,
          "MPI says rank " + std::to_string(comm->rank()) + " of " + std::to_string(comm->size()) + " but " + li.source +
              " says rank " + std::to_string(li.rank) + " of " + std::to_string(li.size));
    return *comm;
}

bool world_is_parallel() { return world_slot() && world_slot()->size() > 1; }

}  // namespace rusca
