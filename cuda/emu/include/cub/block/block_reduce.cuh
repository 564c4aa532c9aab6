// cub/block/block_reduce.cuh (emulator build): cub::BlockReduce, CUB's default algorithm
// (BLOCK_REDUCE_WARP_REDUCTIONS) step for step, so the emulator combines values in the very order a
// GPU does and a floating-point reduction gives the GPU's bits:
//   1. each warp reduces its lanes with shuffles: at offsets 1, 2, 4, 8, 16, lane i replaces its
//      value v with op(v, value of lane i + offset) when that lane exists (a balanced tree);
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

// CUB's ShuffleDown: PTX shfl.sync.down with the clamp operand c = last_lane, i.e. lane l reads
// lane l + offset if that is <= last_lane, else its own value (no lane outside the segment is
// read, so a partial warp is well defined). T moves whole, as CUB moves it word by word.
struct ShuffleDownArgs {
    int offset, last_lane, bytes;
};
inline void shuffle_down_combine(unsigned mask, const void* const in[32], void* const out[32], const void* ctx) {
    const ShuffleDownArgs& a = *static_cast<const ShuffleDownArgs*>(ctx);
    for (int l = 0; l < 32; l++) {
        if (!(mask >> l & 1u)) continue;
        const int src = l + a.offset <= a.last_lane ? l + a.offset : l;
        if (!(mask >> src & 1u))
            throw ::rusca::emu::Fault("cub shuffle: lane " + std::to_string(l) + " reads lane " + std::to_string(src) +
                                      ", which is not in the mask");
        std::memcpy(out[l], in[src], size_t(a.bytes));
    }
}

template <typename T>
__device__ T shuffle_down(unsigned mask, const T& v, int offset, int last_lane, ::rusca::emu::Site site) {
    static_assert(std::is_trivially_copyable<T>::value, "block reductions shuffle values bytewise");
    const ShuffleDownArgs args{offset, last_lane, int(sizeof(T))};
    T out;
    ::rusca::emu::warp_rendezvous("cub shuffle down", mask, &v, &out, shuffle_down_combine, &args, site);
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
        const unsigned mask = lanes == 32 ? 0xffffffffu : (1u << lanes) - 1;
        T v = input;
        for (int offset = 1; offset < 32; offset *= 2) {
            const T other = emu::shuffle_down(mask, v, offset, lanes - 1, RUSCA_EMU_AT);
            if (lane + offset < lanes) v = op(v, other);
        }
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
