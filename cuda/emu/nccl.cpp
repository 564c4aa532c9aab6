// nccl.cpp: the emulator's NCCL (see include/nccl.h): the ranks of a communicator are threads of
// this process meeting at a rendezvous per collective.
#include <nccl.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <type_traits>
#include <vector>

#include "cuda/emu/emu.h"
#include "cuda/emu/runtime.h"

namespace {

enum class Kind { AllReduce, ReduceScatter, AllGather, Broadcast };

// What one rank brought to a collective.
struct Post {
    Kind kind;
    const void* send;
    void* recv;
    size_t count;  // elements: of the result (all-reduce, broadcast), of a chunk (reduce-scatter, all-gather)
    ncclDataType_t type;
    ncclRedOp_t op;
    int root;
};

// The ranks of one unique id. A collective fills `posts`; the last rank to arrive computes and bumps
// `generation`, which releases the others.
struct Group {
    explicit Group(int n) : size(n), posts(size_t(n)) {}
    const int size;
    std::mutex mu;
    std::condition_variable cv;
    int joined = 0, arrived = 0;
    uint64_t generation = 0;
    ncclResult_t result = ncclSuccess;
    std::vector<Post> posts;
};

std::mutex g_groups_mu;
std::map<std::string, std::shared_ptr<Group>> g_groups;
std::atomic<uint64_t> g_next_id{1};

size_t type_size(ncclDataType_t t) {
    switch (t) {
        case ncclInt8: case ncclUint8: return 1;
        case ncclFloat16: case ncclBfloat16: return 2;
        case ncclInt32: case ncclUint32: case ncclFloat32: return 4;
        case ncclInt64: case ncclUint64: case ncclFloat64: return 8;
    }
    return 0;
}

template <typename T>
void reduce_into(T* out, const std::vector<const T*>& in, size_t n, ncclRedOp_t op) {
    for (size_t i = 0; i < n; i++) {
        T acc = in[0][i];
        for (size_t r = 1; r < in.size(); r++) acc = op == ncclMax ? (in[r][i] > acc ? in[r][i] : acc) : acc + in[r][i];
        out[i] = acc;
    }
}

// The reduction of every rank's `n` elements at byte offset `offset` of its send buffer, into `out`.
ncclResult_t reduce(const std::vector<Post>& posts, size_t offset, size_t n, void* out) {
    const Post& p = posts[0];
    if (p.op != ncclSum && p.op != ncclMax) return ncclInvalidArgument;
    std::vector<const char*> in;
    for (const Post& q : posts) in.push_back(static_cast<const char*>(q.send) + offset);
    auto as = [&](auto* typed) {
        using T = std::remove_const_t<std::remove_pointer_t<decltype(typed)>>;
        std::vector<const T*> v;
        for (const char* c : in) v.push_back(reinterpret_cast<const T*>(c));
        reduce_into(static_cast<T*>(out), v, n, p.op);
        return ncclSuccess;
    };
    switch (p.type) {
        case ncclFloat32: return as(static_cast<float*>(nullptr));
        case ncclFloat64: return as(static_cast<double*>(nullptr));
        case ncclInt32: return as(static_cast<int32_t*>(nullptr));
        case ncclInt64: return as(static_cast<int64_t*>(nullptr));
        default: return ncclInvalidArgument;  // 16-bit and 8-bit reductions: not needed by rusca
    }
}

// Computes every rank's result from the posts; results are staged, so in-place calls are safe.
ncclResult_t compute(std::vector<Post>& posts) {
    const Post& p = posts[0];
    const int W = int(posts.size());
    for (const Post& q : posts)
        if (q.kind != p.kind || q.count != p.count || q.type != p.type || q.op != p.op || q.root != p.root)
            return ncclInvalidArgument;
    const size_t es = type_size(p.type), bytes = p.count * es;
    if (es == 0 || p.root < 0 || p.root >= W) return ncclInvalidArgument;
    const size_t send_bytes = p.kind == Kind::ReduceScatter ? bytes * W : bytes;
    const size_t recv_bytes = p.kind == Kind::AllGather ? bytes * W : bytes;
    try {
        for (int r = 0; r < W; r++) {
            if (p.kind != Kind::Broadcast || r == p.root) rusca::emu::check_device_range(posts[r].send, send_bytes, "NCCL send buffer");
            rusca::emu::check_device_range(posts[r].recv, recv_bytes, "NCCL receive buffer");
        }
    } catch (const rusca::emu::Fault&) {
        return ncclInvalidArgument;
    }
    std::vector<std::vector<char>> staged(static_cast<size_t>(W), std::vector<char>(recv_bytes));
    for (int r = 0; r < W; r++) {
        char* out = staged[size_t(r)].data();
        ncclResult_t rc = ncclSuccess;
        switch (p.kind) {
            case Kind::AllReduce: rc = reduce(posts, 0, p.count, out); break;
            case Kind::ReduceScatter: rc = reduce(posts, size_t(r) * bytes, p.count, out); break;
            case Kind::AllGather:
                for (int s = 0; s < W; s++) std::memcpy(out + size_t(s) * bytes, posts[size_t(s)].send, bytes);
                break;
            case Kind::Broadcast: std::memcpy(out, posts[size_t(p.root)].send, bytes); break;
        }
        if (rc != ncclSuccess) return rc;
    }
    for (int r = 0; r < W; r++) std::memcpy(posts[size_t(r)].recv, staged[size_t(r)].data(), recv_bytes);
    return ncclSuccess;
}

}  // namespace

struct ncclComm {
    std::shared_ptr<Group> group;
    int rank;
};

namespace {

ncclResult_t collective(ncclComm_t comm, cudaStream_t stream, const Post& post) {
    if (!comm) return ncclInvalidArgument;
    if (rusca::emu::capturing_stream()) return ncclInvalidUsage;  // not modelled inside CUDA graphs
    if (cudaStreamSynchronize(stream) != cudaSuccess) return ncclUnhandledCudaError;
    Group& g = *comm->group;
    std::unique_lock<std::mutex> lock(g.mu);
    g.posts[size_t(comm->rank)] = post;
    const uint64_t gen = g.generation;
    if (++g.arrived == g.size) {
        g.result = compute(g.posts);
        g.arrived = 0, g.generation++;
        g.cv.notify_all();
    } else {
        g.cv.wait(lock, [&] { return g.generation != gen; });
    }
    return g.result;
}

}  // namespace

extern "C" {

const char* ncclGetErrorString(ncclResult_t r) {
    switch (r) {
        case ncclSuccess: return "no error";
        case ncclUnhandledCudaError: return "unhandled cuda error (emulated NCCL)";
        case ncclSystemError: return "unhandled system error (emulated NCCL)";
        case ncclInternalError: return "internal error (emulated NCCL)";
        case ncclInvalidArgument: return "invalid argument (emulated NCCL: counts, types, ops, roots or buffers)";
        case ncclInvalidUsage: return "invalid usage (emulated NCCL: a collective during stream capture)";
        case ncclRemoteError: return "remote process exited or there was a network error";
        case ncclInProgress: return "NCCL operation in progress";
        default: return "unknown result code";
    }
}

ncclResult_t ncclGetVersion(int* version) {
    if (!version) return ncclInvalidArgument;
    *version = NCCL_MAJOR * 10000 + NCCL_MINOR * 100 + NCCL_PATCH;
    return ncclSuccess;
}

ncclResult_t ncclGetUniqueId(ncclUniqueId* id) {
    if (!id) return ncclInvalidArgument;
    std::memset(id->internal, 0, sizeof id->internal);
    std::snprintf(id->internal, sizeof id->internal, "emu-nccl-%llu", (unsigned long long)g_next_id++);
    return ncclSuccess;
}

// Blocks until all `nranks` ranks of `id` have joined, as the real call does.
ncclResult_t ncclCommInitRank(ncclComm_t* comm, int nranks, ncclUniqueId id, int rank) {
    if (!comm || nranks < 1 || rank < 0 || rank >= nranks) return ncclInvalidArgument;
    const std::string key(id.internal, strnlen(id.internal, sizeof id.internal));
    std::shared_ptr<Group> g;
    {
        std::lock_guard<std::mutex> lock(g_groups_mu);
        std::shared_ptr<Group>& slot = g_groups[key];
        if (!slot) slot = std::make_shared<Group>(nranks);
        if (slot->size != nranks) return ncclInvalidArgument;
        g = slot;
    }
    std::unique_lock<std::mutex> lock(g->mu);
    if (++g->joined == g->size) {
        std::lock_guard<std::mutex> glock(g_groups_mu);
        g_groups.erase(key);  // complete: a later init with this id starts a new communicator
        g->cv.notify_all();
    } else {
        g->cv.wait(lock, [&] { return g->joined == g->size; });
    }
    *comm = new ncclComm{g, rank};
    return ncclSuccess;
}

ncclResult_t ncclCommDestroy(ncclComm_t comm) {
    delete comm;
    return ncclSuccess;
}

ncclResult_t ncclCommAbort(ncclComm_t comm) { return ncclCommDestroy(comm); }

ncclResult_t ncclAllReduce(const void* send, void* recv, size_t count, ncclDataType_t type, ncclRedOp_t op,
                           ncclComm_t comm, cudaStream_t stream) {
    return collective(comm, stream, {Kind::AllReduce, send, recv, count, type, op, 0});
}

ncclResult_t ncclReduceScatter(const void* send, void* recv, size_t recvcount, ncclDataType_t type, ncclRedOp_t op,
                               ncclComm_t comm, cudaStream_t stream) {
    return collective(comm, stream, {Kind::ReduceScatter, send, recv, recvcount, type, op, 0});
}

ncclResult_t ncclAllGather(const void* send, void* recv, size_t sendcount, ncclDataType_t type, ncclComm_t comm,
                           cudaStream_t stream) {
    return collective(comm, stream, {Kind::AllGather, send, recv, sendcount, type, ncclSum, 0});
}

ncclResult_t ncclBroadcast(const void* send, void* recv, size_t count, ncclDataType_t type, int root, ncclComm_t comm,
                           cudaStream_t stream) {
    return collective(comm, stream, {Kind::Broadcast, send, recv, count, type, ncclSum, root});
}

}  // extern "C"
