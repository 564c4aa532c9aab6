// cub/device/device_reduce.cuh (emulator build): cub::DeviceReduce::TransformReduce (and Reduce,
// the same with no transform): *d_out = init op t(x0) op t(x1) ... over num_items items.
//
// Order (deterministic, independent of the thread count): the items are cut into fixed chunks of
// 4096; each chunk is folded left to right, t(x_first) op t(x_next) ...; then the result is
// init op chunk0 op chunk1 ... . CUB's grid reduction uses another fixed tree, so a floating-point
// result can differ from a GPU's in the last bits (rusca reduces in double, where that is ~1e-16).
// The chunk partials are what CUB keeps in its temporary storage, and are sized the same way.
#pragma once
#include <cuda_runtime.h>

#include <iterator>
#include <type_traits>
#include <vector>

#include "cub/device/device_emu.cuh"

namespace cub {

struct DeviceReduce {
    template <typename InputIteratorT, typename OutputIteratorT, typename ReductionOpT, typename TransformOpT,
              typename T, typename NumItemsT>
    static cudaError_t TransformReduce(void* d_temp_storage, size_t& temp_storage_bytes, InputIteratorT d_in,
                                       OutputIteratorT d_out, NumItemsT num_items, ReductionOpT reduction_op,
                                       TransformOpT transform_op, T init, cudaStream_t stream = 0) {
        using Input = typename std::iterator_traits<InputIteratorT>::value_type;
        using Accum = std::decay_t<std::invoke_result_t<ReductionOpT, T, std::invoke_result_t<TransformOpT, Input>>>;
        if (int64_t(num_items) < 0) return cudaErrorInvalidValue;
        const int64_t n = int64_t(num_items);
        const int64_t chunks = (n + kChunk - 1) / kChunk;
        const size_t needed = emu::temp_bytes_for({size_t(chunks) * sizeof(Accum)});
        if (!d_temp_storage) {
            temp_storage_bytes = needed;
            return cudaSuccess;
        }
        if (const cudaError_t err = emu::check_temp(d_temp_storage, temp_storage_bytes, needed)) return err;
        const size_t temp_given = temp_storage_bytes;
        ::rusca::emu::enqueue(stream, [=] {
            emu::poison_temp(d_temp_storage, temp_given, "cub::DeviceReduce: temporary storage");
            emu::check_items(d_in, size_t(n), "cub::DeviceReduce: d_in");
            emu::check_items(d_out, 1, "cub::DeviceReduce: d_out");
            std::vector<Accum> partial(static_cast<size_t>(chunks), static_cast<Accum>(init));
RUSCA_EMU_PARALLEL_FOR
            for (int64_t c = 0; c < chunks; c++) {
                const int64_t first = c * kChunk, last = std::min(n, first + kChunk);
                Accum acc = Accum(transform_op(d_in[first]));
                for (int64_t i = first + 1; i < last; i++) acc = reduction_op(acc, transform_op(d_in[i]));
                partial[size_t(c)] = acc;
            }
            Accum result = Accum(init);
            for (const Accum& p : partial) result = reduction_op(result, p);
            *d_out = result;
        });
        return cudaSuccess;
    }

    template <typename InputIteratorT, typename OutputIteratorT, typename ReductionOpT, typename T,
              typename NumItemsT>
    static cudaError_t Reduce(void* d_temp_storage, size_t& temp_storage_bytes, InputIteratorT d_in,
                              OutputIteratorT d_out, NumItemsT num_items, ReductionOpT reduction_op, T init,
                              cudaStream_t stream = 0) {
        return TransformReduce(d_temp_storage, temp_storage_bytes, d_in, d_out, num_items, reduction_op, Identity{},
                               init, stream);
    }

private:
    static constexpr int64_t kChunk = 4096;
    struct Identity {
        template <typename U>
        __device__ U operator()(const U& x) const {
            return x;
        }
    };
};

}  // namespace cub
