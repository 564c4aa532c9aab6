// comm_nccl.h: NCCL communicators for GPU ranks (one GPU per rank). Their collectives take DEVICE
// pointers and finish before returning (the communicator's own stream is synchronized), so a caller
// may read the result right away. Available when the build found nccl.h (Makefile: RUSCA_NCCL) and
// in the emulator build (its own NCCL); otherwise each call below is an Error saying NCCL was not built.
#pragma once
#include <memory>
#include <string>

#include "comm.h"

namespace rusca {

bool nccl_built();
// "2.28.9" (the linked library's version), or why there is none.
std::string nccl_version();
// Every rank of `bootstrap` (MPI) calls this with its GPU: rank 0 makes the NCCL id and broadcasts it.
std::unique_ptr<Comm> make_nccl_comm(Comm& bootstrap, int device);
// Without MPI (srun without PMI): rank 0 writes the id to `id_file` on a shared filesystem, tagged
// with `job_tag` (e.g. $SLURM_JOB_ID) so a file left by another job is never read; the other ranks
// wait up to `timeout_s` for it.
std::unique_ptr<Comm> make_nccl_comm_from_file(const std::string& id_file, const std::string& job_tag, int rank,
                                               int size, int device, double timeout_s = 300);
// The device communicator that data-parallel CUDA ranks sum their gradients over (DataParallel):
// NCCL over `world`'s ranks, each on its current GPU; or nullptr, with `why`, when there is none to
// be had, and the gradients then go through the host: one rank, NCCL not built, the emulator (its
// NCCL joins threads of one process, not a launcher's processes), or ranks sharing a GPU (NCCL
// refuses them). Every rank of `world` calls it and all get the same answer.
std::unique_ptr<Comm> make_device_comm(Comm& world, std::string* why);

}  // namespace rusca
