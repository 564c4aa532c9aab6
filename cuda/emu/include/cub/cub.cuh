// cub/cub.cuh (emulator build): the emulated subset of NVIDIA's CUB that rusca's kernels use, for
// the emulator build (cuda/*.cu compiled by g++ against cuda/emu/include). Each header has the real
// CUB path, so the kernels' #include lines stay the same in both builds:
//   block:  BlockReduce (CUB's warp-reduction order), BlockScan (ExclusiveSum),
//           BlockRadixSort (Sort / SortDescending, blocked or striped output, keys or pairs);
//   device: DeviceRadixSort (SortPairs / SortKeys, ascending and descending),
//           DeviceSegmentedRadixSort (SortKeys / SortKeysDescending, DoubleBuffer or pointers),
//           DeviceReduce (TransformReduce, Reduce), with CUB's temporary-storage size query;
//   util:   DoubleBuffer, NullType, Sum.
// Written as ordinary CUDA-style code on the emulator's threadIdx, __syncthreads and shuffles
// (block level) and as host code run in stream order by the emulator (device level).
#pragma once
#include <cuda_runtime.h>

#include "cub/block/block_radix_sort.cuh"
#include "cub/block/block_reduce.cuh"
#include "cub/block/block_scan.cuh"
#include "cub/device/device_radix_sort.cuh"
#include "cub/device/device_reduce.cuh"
#include "cub/device/device_segmented_radix_sort.cuh"
#include "cub/util_type.cuh"
