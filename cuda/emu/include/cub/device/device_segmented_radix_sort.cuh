// cub/device/device_segmented_radix_sort.cuh (emulator build): cub::DeviceSegmentedRadixSort,
// keys only: SortKeys / SortKeysDescending over segments [d_begin_offsets[s], d_end_offsets[s])
// (a segment with end <= begin is empty), each sorted stably by the key bits [begin_bit, end_bit).
// Items outside every segment are left as they are.
//
// The DoubleBuffer forms behave as CUB's: the sort ping-pongs between the two buffers, one pass per
// 6-bit digit (5 for 1-byte keys), so the result lands in the alternate buffer when the number of
// passes is odd; the selector is updated at the call, and callers must read d_keys.Current(). The
// buffer not holding the result is overwritten with the passes' leftovers (here: within the
// segments, the keys in reverse order), so code that reads the wrong buffer gets wrong keys.
// The pointer forms sort from d_keys_in to d_keys_out (input unchanged) with a third buffer in the
// temporary storage, as CUB does.
#pragma once
#include <cuda_runtime.h>

#include "cub/device/device_emu.cuh"

namespace cub {

struct DeviceSegmentedRadixSort {
    template <typename KeyT, typename BeginOffsetIteratorT, typename EndOffsetIteratorT>
    static cudaError_t SortKeys(void* d_temp_storage, size_t& temp_storage_bytes, DoubleBuffer<KeyT>& d_keys,
                                int num_items, int num_segments, BeginOffsetIteratorT d_begin_offsets,
                                EndOffsetIteratorT d_end_offsets, int begin_bit = 0, int end_bit = sizeof(KeyT) * 8,
                                cudaStream_t stream = 0) {
        return sort_double_buffer(d_temp_storage, temp_storage_bytes, d_keys, num_items, num_segments,
                                  d_begin_offsets, d_end_offsets, begin_bit, end_bit, false, stream);
    }
    template <typename KeyT, typename BeginOffsetIteratorT, typename EndOffsetIteratorT>
    static cudaError_t SortKeysDescending(void* d_temp_storage, size_t& temp_storage_bytes, DoubleBuffer<KeyT>& d_keys,
                                          int num_items, int num_segments,
                                          BeginOffsetIteratorT d_begin_offsets, EndOffsetIteratorT d_end_offsets,
                                          int begin_bit = 0, int end_bit = sizeof(KeyT) * 8,
                                          cudaStream_t stream = 0) {
        return sort_double_buffer(d_temp_storage, temp_storage_bytes, d_keys, num_items, num_segments,
                                  d_begin_offsets, d_end_offsets, begin_bit, end_bit, true, stream);
    }
    template <typename KeyT, typename BeginOffsetIteratorT, typename EndOffsetIteratorT>
    static cudaError_t SortKeys(void* d_temp_storage, size_t& temp_storage_bytes, const KeyT* d_keys_in,
                                KeyT* d_keys_out, int num_items, int num_segments,
                                BeginOffsetIteratorT d_begin_offsets, EndOffsetIteratorT d_end_offsets,
                                int begin_bit = 0, int end_bit = sizeof(KeyT) * 8, cudaStream_t stream = 0) {
        return sort_pointers(d_temp_storage, temp_storage_bytes, d_keys_in, d_keys_out, num_items, num_segments,
                             d_begin_offsets, d_end_offsets, begin_bit, end_bit, false, stream);
    }
    template <typename KeyT, typename BeginOffsetIteratorT, typename EndOffsetIteratorT>
    static cudaError_t SortKeysDescending(void* d_temp_storage, size_t& temp_storage_bytes, const KeyT* d_keys_in,
                                          KeyT* d_keys_out, int num_items, int num_segments,
                                          BeginOffsetIteratorT d_begin_offsets, EndOffsetIteratorT d_end_offsets,
                                          int begin_bit = 0, int end_bit = sizeof(KeyT) * 8,
                                          cudaStream_t stream = 0) {
        return sort_pointers(d_temp_storage, temp_storage_bytes, d_keys_in, d_keys_out, num_items, num_segments,
                             d_begin_offsets, d_end_offsets, begin_bit, end_bit, true, stream);
    }

private:
    template <typename KeyT>
    static int passes(int begin_bit, int end_bit) {
        const int digit_bits = sizeof(KeyT) > 1 ? 6 : 5;  // CUB's segmented policy
        return std::max(1, (end_bit - begin_bit + digit_bits - 1) / digit_bits);
    }

    // Sort every segment of `in` into `out` (which may be `in`); `leftover`, if given, gets the
    // segment's keys in reverse order (what a pass left in the buffer not holding the result).
    template <typename KeyT, typename BeginIt, typename EndIt>
    static void sort_segments(const KeyT* in, KeyT* out, KeyT* leftover, int64_t num_items, int64_t num_segments,
                              BeginIt begins, EndIt ends, int begin_bit, int end_bit, bool descending) {
        emu::check_items(begins, size_t(num_segments), "cub::DeviceSegmentedRadixSort: d_begin_offsets");
        emu::check_items(ends, size_t(num_segments), "cub::DeviceSegmentedRadixSort: d_end_offsets");
        for (int64_t s = 0; s < num_segments; s++) {
            const int64_t b = int64_t(begins[s]), e = int64_t(ends[s]);
            if (e <= b) continue;
            if (b < 0 || e > num_items)
                throw ::rusca::emu::Fault("cub::DeviceSegmentedRadixSort: segment " + std::to_string(s) + " [" +
                                          std::to_string(b) + ", " + std::to_string(e) + ") lies outside the " +
                                          std::to_string(num_items) + " items");
            const std::vector<KeyT> keys(in + b, in + e);
            const std::vector<size_t> order =
                emu::radix_order(keys.data(), keys.size(), begin_bit, end_bit, descending);
            for (size_t i = 0; i < keys.size(); i++) out[b + int64_t(i)] = keys[order[i]];
            if (leftover)
                for (size_t i = 0; i < keys.size(); i++) leftover[b + int64_t(i)] = keys[keys.size() - 1 - i];
        }
    }

    template <typename KeyT, typename BeginIt, typename EndIt>
    static cudaError_t sort_double_buffer(void* d_temp_storage, size_t& temp_storage_bytes, DoubleBuffer<KeyT>& d_keys,
                                          int64_t num_items, int64_t num_segments, BeginIt begins, EndIt ends,
                                          int begin_bit, int end_bit, bool descending, cudaStream_t stream) {
        if (num_items < 0 || num_segments < 0 || !emu::valid_bit_range<KeyT>(begin_bit, end_bit))
            return cudaErrorInvalidValue;
        if (num_items == 0 || num_segments == 0 || begin_bit == end_bit) {  // nothing to do (CUB: size 1)
            if (!d_temp_storage) temp_storage_bytes = 1;
            return cudaSuccess;
        }
        const size_t needed = emu::temp_bytes_for({});  // the buffers are the caller's
        if (!d_temp_storage) {
            temp_storage_bytes = needed;
            return cudaSuccess;
        }
        if (const cudaError_t err = emu::check_temp(d_temp_storage, temp_storage_bytes, needed)) return err;
        KeyT* current = d_keys.Current();
        KeyT* alternate = d_keys.Alternate();
        const bool odd = passes<KeyT>(begin_bit, end_bit) % 2 == 1;
        if (odd) d_keys.selector ^= 1;
        const size_t temp_given = temp_storage_bytes;
        ::rusca::emu::enqueue(stream, [=] {
            emu::poison_temp(d_temp_storage, temp_given, "cub::DeviceSegmentedRadixSort: temporary storage");
            emu::check_items(current, size_t(num_items), "cub::DeviceSegmentedRadixSort: d_keys.Current()");
            emu::check_items(alternate, size_t(num_items), "cub::DeviceSegmentedRadixSort: d_keys.Alternate()");
            KeyT* result = odd ? alternate : current;
            KeyT* other = odd ? current : alternate;
            sort_segments(current, result, other, num_items, num_segments, begins, ends, begin_bit, end_bit,
                          descending);
        });
        return cudaSuccess;
    }

    template <typename KeyT, typename BeginIt, typename EndIt>
    static cudaError_t sort_pointers(void* d_temp_storage, size_t& temp_storage_bytes, const KeyT* keys_in,
                                     KeyT* keys_out, int64_t num_items, int64_t num_segments, BeginIt begins,
                                     EndIt ends, int begin_bit, int end_bit, bool descending, cudaStream_t stream) {
        if (num_items < 0 || num_segments < 0 || !emu::valid_bit_range<KeyT>(begin_bit, end_bit))
            return cudaErrorInvalidValue;
        if (num_items == 0 || num_segments == 0) {
            if (!d_temp_storage) temp_storage_bytes = 1;
            return cudaSuccess;
        }
        const size_t needed = emu::temp_bytes_for({size_t(num_items) * sizeof(KeyT)});  // CUB's third buffer
        if (!d_temp_storage) {
            temp_storage_bytes = needed;
            return cudaSuccess;
        }
        if (const cudaError_t err = emu::check_temp(d_temp_storage, temp_storage_bytes, needed)) return err;
        const size_t temp_given = temp_storage_bytes;
        ::rusca::emu::enqueue(stream, [=] {
            emu::poison_temp(d_temp_storage, temp_given, "cub::DeviceSegmentedRadixSort: temporary storage");
            emu::check_items(keys_in, size_t(num_items), "cub::DeviceSegmentedRadixSort: d_keys_in");
            emu::check_items(keys_out, size_t(num_items), "cub::DeviceSegmentedRadixSort: d_keys_out");
            sort_segments(keys_in, keys_out, static_cast<KeyT*>(nullptr), num_items, num_segments, begins, ends,
                          begin_bit, end_bit, descending);
        });
        return cudaSuccess;
    }
};

}  // namespace cub
