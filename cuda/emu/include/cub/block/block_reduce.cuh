// cub/block/block_reduce.cuh (emulator build): cub::BlockReduce, CUB's default algorithm
// (BLOCK_REDUCE_WARP_REDUCTIONS) step for step, so the emulator combines values in the very order a
// GPU does and a floating-point reduction gives the GPU's bits:
//   1. each warp reduces its lanes with shuffles: at offsets 1, 2, 4, 8, 16, lane i replaces its
//      value v with op(v, value of lane i + offset) when that lane exists (a balanced tree; the
//      emulator replays the five rounds in one warp rendezvous, see emu::warp_reduce);
//   2. lane 0 of each warp stores the warp's result in shared memory; __syncthreads();
//   3. thread 0 folds them in warp order: op(op(w0, w1), w2) ...
// The result is valid in thread 0 only, as in CUB. TempStorage is one value per warp (as CUB's),
// so kernels keep their real shared-memory footprint.
#pragma once
#include <cuda_runtime.h>

#include <cstring>
#include <string>
#include <type_traits>

#include "cub/util_type.cuh"

namespace cub {

enum BlockReduceAlgorithm { BLOCK_REDUCE_RAKING_COMMUTATIVE_ONLY, BLOCK_REDUCE_RAKING, BLOCK_REDUCE_WARP_REDUCTIONS };

namespace emu {

// CUB's warp reduction: five rounds of PTX shfl.sync.down with the clamp c = last_lane; in round
// `offset`, lane l reads lane l + offset if that is <= last_lane (else its own value, so a partial
// warp reads no missing lane) and then, if it read a real peer, v = op(v, peer). The emulator runs
// the five rounds inside one warp rendezvous (each lane posts its value, the combine replays the
// rounds over all lanes and hands every lane its value after the last round): the same values a
// GPU computes, for a fifth of the fiber switches.
template <typename T, typename ReductionOp>
struct WarpReduceArgs {
    ReductionOp* op;
    int lanes;
};

template <typename T, typename ReductionOp>
void warp_reduce_combine(unsigned mask, const void* const in[32], void* const out[32], const void* ctx) {
    const WarpReduceArgs<T, ReductionOp>& a = *static_cast<const WarpReduceArgs<T, ReductionOp>*>(ctx);
    alignas(T) unsigned char storage[32 * sizeof(T)];
    T* v = reinterpret_cast<T*>(storage);
    for (int l = 0; l < a.lanes; l++) std::memcpy(static_cast<void*>(&v[l]), in[l], sizeof(T));
    for (int offset = 1; offset < 32; offset *= 2)
        for (int l = 0; l + offset < a.lanes; l++)  // ascending: lane l + offset still holds last round's value
            v[l] = (*a.op)(v[l], v[l + offset]);
    for (int l = 0; l < 32; l++)
        if (mask >> l & 1u) std::memcpy(out[l], static_cast<const void*>(&v[l]), sizeof(T));
}

template <typename T, typename ReductionOp>
__device__ T warp_reduce(const T& input, ReductionOp& op, int lanes, ::rusca::emu::Site site) {
    static_assert(std::is_trivially_copyable<T>::value, "warp reductions move values bytewise, as shuffles do");
    const unsigned mask = lanes == 32 ? 0xffffffffu : (1u << lanes) - 1;
    const WarpReduceArgs<T, ReductionOp> args{&op, lanes};
    alignas(T) unsigned char result[sizeof(T)];
    ::rusca::emu::warp_rendezvous("cub::WarpReduce (shfl.down x5)", mask, &input, result,
                                  warp_reduce_combine<T, ReductionOp>, &args, site);
    T out;
    std::memcpy(static_cast<void*>(&out), result, sizeof(T));
    return out;
}

}  // namespace emu

template <typename T, int BLOCK_DIM_X, BlockReduceAlgorithm ALGORITHM = BLOCK_REDUCE_WARP_REDUCTIONS,
          int BLOCK_DIM_Y = 1, int BLOCK_DIM_Z = 1>
class BlockReduce {
    static constexpr int kThreads = BLOCK_DIM_X * BLOCK_DIM_Y * BLOCK_DIM_Z;
    static constexpr int kWarps = (kThreads + 31) / 32;

    struct Storage {
        alignas(T) unsigned char warp_aggregates[kWarps * sizeof(T)];
    };

public:
    // Raw bytes (CUB's Uninitialized), so that kernels can put it in a __shared__ union.
    struct TempStorage : Storage {};

    __device__ explicit BlockReduce(TempStorage& storage) : storage_(storage) {
        emu::require_block_threads("cub::BlockReduce", kThreads);
    }

    // (The site arguments name the caller's line in the emulator's deadlock and mask reports.)
    template <typename ReductionOp>
    __device__ T Reduce(T input, ReductionOp op, RUSCA_EMU_SITE) {
        const int tid = emu::linear_tid(), warp = tid / 32, lane = tid % 32;
        const int lanes = warp == kWarps - 1 ? kThreads - 32 * warp : 32;  // the last warp may be partial
        T v = emu::warp_reduce(input, op, lanes, RUSCA_EMU_AT);
        T* aggregates = reinterpret_cast<T*>(storage_.warp_aggregates);
        if (lane == 0) std::memcpy(static_cast<void*>(&aggregates[warp]), &v, sizeof(T));
        __syncthreads(file_, line_);
        if (tid == 0)
            for (int w = 1; w < kWarps; w++) v = op(v, aggregates[w]);
        return v;
    }

    __device__ T Sum(T input, RUSCA_EMU_SITE) { return Reduce(input, cub::Sum(), file_, line_); }

private:
    TempStorage& storage_;
};

}  // namespace cub
