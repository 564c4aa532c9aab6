// cub/block/block_scan.cuh (emulator build): cub::BlockScan, the exclusive prefix sum rusca uses
// (ExclusiveSum, with or without the block's total). Thread 0 scans the block's values in thread
// order in shared memory, between two barriers.
//
// Why not CUB's raking order: the sampler scans counts (exact integers), where every order gives the
// same bits. A floating-point scan would differ from the GPU's in the last bits; BlockReduce, whose
// floating-point results matter, does follow CUB's order.
#pragma once
#include <cuda_runtime.h>

#include <cstring>

#include "cub/util_type.cuh"

namespace cub {

enum BlockScanAlgorithm { BLOCK_SCAN_RAKING, BLOCK_SCAN_RAKING_MEMOIZE, BLOCK_SCAN_WARP_SCANS };

template <typename T, int BLOCK_DIM_X, BlockScanAlgorithm ALGORITHM = BLOCK_SCAN_RAKING, int BLOCK_DIM_Y = 1,
          int BLOCK_DIM_Z = 1>
class BlockScan {
    static constexpr int kThreads = BLOCK_DIM_X * BLOCK_DIM_Y * BLOCK_DIM_Z;

    struct Storage {
        alignas(T) unsigned char items[kThreads * sizeof(T)];  // inputs, then exclusive prefixes
        alignas(T) unsigned char total[sizeof(T)];
    };

public:
    struct TempStorage : Storage {};  // raw bytes (CUB's Uninitialized): fits in a __shared__ union

    __device__ explicit BlockScan(TempStorage& storage) : storage_(storage) {
        emu::require_block_threads("cub::BlockScan", kThreads);
    }

    // output = sum of the inputs of threads before this one (0 in thread 0); aggregate = block total.
    __device__ void ExclusiveSum(T input, T& output, T& block_aggregate, RUSCA_EMU_SITE) {
        T* items = reinterpret_cast<T*>(storage_.items);
        const int tid = emu::linear_tid();
        std::memcpy(static_cast<void*>(&items[tid]), &input, sizeof(T));
        __syncthreads(file_, line_);
        if (tid == 0) {
            T running = T(0);
            for (int i = 0; i < kThreads; i++) {
                const T v = items[i];
                items[i] = running;
                running = running + v;
            }
            std::memcpy(static_cast<void*>(storage_.total), &running, sizeof(T));
        }
        __syncthreads(file_, line_);
        output = items[tid];
        std::memcpy(static_cast<void*>(&block_aggregate), storage_.total, sizeof(T));
    }

    __device__ void ExclusiveSum(T input, T& output, RUSCA_EMU_SITE) {
        T aggregate;
        ExclusiveSum(input, output, aggregate, file_, line_);
    }

private:
    TempStorage& storage_;
};

}  // namespace cub
