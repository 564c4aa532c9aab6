// comm.h: the communication layer of data-parallel training: rank, world size and the five
// collectives the trainers use. Three implementations behind one interface:
//   single  one process (world size 1): every collective is a copy or nothing; no MPI needed.
//   mpi     Open MPI (or any MPI) on CPU ranks, launched by mpirun or srun. Built as a plugin,
//           build/lib/librusca_mpi.so, that rusca loads only when a launcher started several ranks,
//           so a binary built with MPI still runs (as one rank) where libmpi is absent.
//   nccl    NCCL on GPU ranks (host/comm_nccl.cpp): the same calls on DEVICE pointers, the
//           communicator set up through the MPI ranks or a shared file (Slurm without MPI).
// Every rank must make the same collective calls in the same order with the same sizes.
#pragma once
#include <cstddef>
#include <memory>
#include <string>

#include "error.h"

namespace rusca {

enum class ReduceOp { Sum, Max };

class Comm {
public:
    virtual ~Comm() = default;
    virtual int rank() const = 0;
    virtual int size() const = 0;
    virtual const char* backend() const = 0;  // "single", "mpi" or "nccl"

    // data[0..n) := the element-wise reduction of every rank's data[0..n), on every rank.
    virtual void all_reduce(float* data, size_t n, ReduceOp op = ReduceOp::Sum) = 0;
    virtual void all_reduce(double* data, size_t n, ReduceOp op = ReduceOp::Sum) = 0;
    // in holds size() chunks of `chunk` floats; out[0..chunk) := the sum over ranks of chunk rank().
    virtual void reduce_scatter(const float* in, float* out, size_t chunk) = 0;
    // out[r*chunk .. (r+1)*chunk) := rank r's in[0..chunk), on every rank.
    virtual void all_gather(const float* in, float* out, size_t chunk) = 0;
    // The same for 16-bit elements (bf16 weights: ZeRO-1's all-gather on device ranks); only the
    // communicators over device memory have it.
    virtual void all_gather_bf16(const void* /*in*/, void* /*out*/, size_t /*chunk*/) {
        throw Error(std::string("the ") + backend() + " communicator has no 16-bit all_gather (a rusca bug)");
    }
    // bytes of data from rank `root` to every rank.
    virtual void broadcast(void* data, size_t bytes, int root) = 0;
    virtual void barrier() = 0;
    // Ends every rank of the job with `code` (after this rank printed why); never returns.
    [[noreturn]] virtual void abort(int code) = 0;
};

// What the launcher told this process: rank and world size from OMPI_COMM_WORLD_*, PMI_*, or srun's
// PMIX_RANK / SLURM_PROCID with SLURM_STEP_NUM_TASKS (rank 0 of 1 when none is set). `source` names
// the variable read.
struct LaunchInfo {
    int rank = 0, size = 1;
    int local_rank = 0;  // rank on this node (OMPI_COMM_WORLD_LOCAL_RANK, SLURM_LOCALID): picks the GPU
    std::string source = "none";
};
LaunchInfo launch_info();
// The GPU (of n_gpus visible) a rank of `li` trains on: its local rank modulo n_gpus, so that
// `mpirun -np 8` on an 8-GPU node gives each rank its own; -1 (keep the current one) for a single
// rank or a single visible GPU (the launcher gave each rank its own: CUDA_VISIBLE_DEVICES, srun
// --gpus-per-task).
int rank_gpu(const LaunchInfo& li, int n_gpus);

// The process's communicator, made on first use: single when the launcher started one rank, MPI when
// it started several (an Error saying why when MPI cannot be had). Lives until the process exits.
Comm& world();
// True once world() has been made with more than one rank: main() then ends every rank on an error.
bool world_is_parallel();

std::unique_ptr<Comm> make_single_comm();
// The MPI plugin's communicator (MPI_Init on first call); an Error naming the plugin and what
// dlopen said when this build or this machine has no MPI.
std::unique_ptr<Comm> make_mpi_comm();
// Whether the MPI plugin was built next to this binary (it may still fail to load).
std::string mpi_plugin_path();

}  // namespace rusca
