// comm_nccl.cpp: the NCCL communicator (comm_nccl.h). Built with NVIDIA's NCCL when nccl.h was
// found, and in the emulator build against the emulator's NCCL (cuda/emu/nccl.cpp: ranks as threads
// of one process), where tests/test_cuda_comm.cpp runs it with several ranks.
#include "host/comm_nccl.h"

#include "host/error.h"

#if defined(RUSCA_CUDA) && (defined(RUSCA_NCCL) || defined(RUSCA_EMU))
#include <cuda_runtime.h>
#include <nccl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <thread>
#include <vector>

#include "cuda/common.cuh"
#include "host/fileio.h"

namespace rusca {

namespace {

void nccl_check(ncclResult_t rc, const char* call) {
    if (rc != ncclSuccess) throw Error(std::string(call) + " failed: " + ncclGetErrorString(rc));
}

class NcclComm final : public Comm {
public:
    NcclComm(const ncclUniqueId& id, int rank, int size, int device, Comm* bootstrap)
        : rank_(rank), size_(size), bootstrap_(bootstrap) {
        CUDA_CHECK(cudaSetDevice(device));
        CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
        CUDA_CHECK(cudaMalloc(&scratch_, sizeof(float)));
        nccl_check(ncclCommInitRank(&comm_, size, id, rank), "ncclCommInitRank");
    }
    ~NcclComm() override {
        if (comm_) ncclCommDestroy(comm_);
        cudaFree(scratch_);
        cudaStreamDestroy(stream_);
    }
    int rank() const override { return rank_; }
    int size() const override { return size_; }
    const char* backend() const override { return "nccl"; }

    void all_reduce(float* d, size_t n, ReduceOp op) override {
        nccl_check(ncclAllReduce(d, d, n, ncclFloat, red(op), comm_, stream_), "ncclAllReduce");
        sync();
    }
    void all_reduce(double* d, size_t n, ReduceOp op) override {
        nccl_check(ncclAllReduce(d, d, n, ncclDouble, red(op), comm_, stream_), "ncclAllReduce");
        sync();
    }
    void reduce_scatter(const float* in, float* out, size_t chunk) override {
        nccl_check(ncclReduceScatter(in, out, chunk, ncclFloat, ncclSum, comm_, stream_), "ncclReduceScatter");
        sync();
    }
    void all_gather(const float* in, float* out, size_t chunk) override {
        nccl_check(ncclAllGather(in, out, chunk, ncclFloat, comm_, stream_), "ncclAllGather");
        sync();
    }
    void all_gather_bf16(const void* in, void* out, size_t chunk) override {
        nccl_check(ncclAllGather(in, out, chunk, ncclBfloat16, comm_, stream_), "ncclAllGather");
        sync();
    }
    void broadcast(void* d, size_t bytes, int root) override {
        nccl_check(ncclBroadcast(d, d, bytes, ncclChar, root, comm_, stream_), "ncclBroadcast");
        sync();
    }
    void barrier() override { all_reduce(scratch_, 1, ReduceOp::Sum); }
    [[noreturn]] void abort(int code) override {
        ncclCommAbort(comm_);
        comm_ = nullptr;
        if (bootstrap_) bootstrap_->abort(code);
        std::_Exit(code);
    }

private:
    static ncclRedOp_t red(ReduceOp op) { return op == ReduceOp::Max ? ncclMax : ncclSum; }
    void sync() { CUDA_CHECK(cudaStreamSynchronize(stream_)); }

    int rank_, size_;
    Comm* bootstrap_;
    ncclComm_t comm_ = nullptr;
    cudaStream_t stream_ = nullptr;
    float* scratch_ = nullptr;
};

}  // namespace

bool nccl_built() { return true; }

std::string nccl_version() {
    int v = 0;
    nccl_check(ncclGetVersion(&v), "ncclGetVersion");
    return std::to_string(v / 10000) + "." + std::to_string(v / 100 % 100) + "." + std::to_string(v % 100);
}

std::unique_ptr<Comm> make_nccl_comm(Comm& bootstrap, int device) {
    ncclUniqueId id;
    if (bootstrap.rank() == 0) nccl_check(ncclGetUniqueId(&id), "ncclGetUniqueId");
    bootstrap.broadcast(&id, sizeof id, 0);
    return std::make_unique<NcclComm>(id, bootstrap.rank(), bootstrap.size(), device, &bootstrap);
}

std::unique_ptr<Comm> make_device_comm(Comm& world, std::string* why) {
    if (world.size() < 2) {
        *why = "one rank";
        return nullptr;
    }
#ifdef RUSCA_EMU
    *why = "the emulator's NCCL joins the threads of one process, not a launcher's processes";
    return nullptr;
#else
    // Each rank's GPU as (host, PCI bus id), hashed to 53 bits (exact in a double) and gathered
    // through a sum of one-hot slots: equal keys are ranks sharing a GPU, which every rank sees.
    int device = 0;
    CUDA_CHECK(cudaGetDevice(&device));
    char bus[64] = {}, host[256] = {};
    CUDA_CHECK(cudaDeviceGetPCIBusId(bus, sizeof bus, device));
    gethostname(host, sizeof host - 1);
    std::vector<double> keys(size_t(world.size()), 0.0);
    keys[size_t(world.rank())] = double(std::hash<std::string>{}(std::string(host) + "/" + bus) >> 11);
    world.all_reduce(keys.data(), keys.size(), ReduceOp::Sum);
    std::sort(keys.begin(), keys.end());
    if (std::adjacent_find(keys.begin(), keys.end()) != keys.end()) {
        *why = "ranks share a GPU";
        return nullptr;
    }
    return make_nccl_comm(world, device);
#endif
}

std::unique_ptr<Comm> make_nccl_comm_from_file(const std::string& id_file, const std::string& job_tag, int rank,
                                               int size, int device, double timeout_s) {
    ncclUniqueId id;
    const std::string header = "rusca-nccl-id " + job_tag + "\n";
    if (rank == 0) {
        nccl_check(ncclGetUniqueId(&id), "ncclGetUniqueId");
        write_file_atomic(id_file, header + std::string(reinterpret_cast<const char*>(&id), sizeof id));
    } else {
        const auto t0 = std::chrono::steady_clock::now();
        for (;;) {
            if (file_exists(id_file)) {
                const std::string s = read_file(id_file);
                if (s.size() == header.size() + sizeof id && s.compare(0, header.size(), header) == 0) {
                    std::memcpy(&id, s.data() + header.size(), sizeof id);
                    break;
                }
            }
            check(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() < timeout_s,
                  id_file + ": rank 0 wrote no NCCL id for job \"" + job_tag + "\" within " +
                      std::to_string(int(timeout_s)) + " s");
            std::this_thread::sleep_for(std::chrono::milliseconds(100));
        }
    }
    return std::make_unique<NcclComm>(id, rank, size, device, nullptr);
}

}  // namespace rusca

#else  // no NCCL in this build

namespace rusca {

namespace {
const char* kWhy = "NCCL was not built (no nccl.h when this rusca was compiled)";
}

bool nccl_built() { return false; }
std::string nccl_version() { return kWhy; }
std::unique_ptr<Comm> make_nccl_comm(Comm&, int) { throw Error(kWhy); }
std::unique_ptr<Comm> make_device_comm(Comm&, std::string* why) {
    *why = kWhy;
    return nullptr;
}
std::unique_ptr<Comm> make_nccl_comm_from_file(const std::string&, const std::string&, int, int, int, double) {
    throw Error(kWhy);
}

}  // namespace rusca

#endif
