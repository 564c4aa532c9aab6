// cub/util_type.cuh (emulator build): the CUB utility types rusca uses with the emulated CUB
// (cub::DoubleBuffer, cub::NullType, cub::Sum) and the helpers the emulated algorithms share:
// a thread's linear id in its block, and radix-sort keys as CUB orders them.
//
// Why: CUB's radix sorts order keys by their bits after a "twiddle" (signed integers get the sign
// bit flipped, so negative numbers sort first) over the bit range [begin_bit, end_bit). The
// emulated block and device sorts both compare keys through RadixDigits below, so they agree with
// each other and with CUB's order exactly.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>
#include <string>
#include <type_traits>

// OpenMP loops in the device-level algorithms, except under ThreadSanitizer (libgomp is not
// instrumented: its barriers would show up as races in the emulator's racecheck build).
#if defined(__SANITIZE_THREAD__)
#define RUSCA_EMU_PARALLEL_FOR
#else
#define RUSCA_EMU_PARALLEL_FOR _Pragma("omp parallel for schedule(static)")
#endif

namespace cub {

// A pair of device buffers and a selector naming the one that holds the current data. Sorts that
// take a DoubleBuffer may leave their result in either buffer: read it through Current().
template <typename T>
struct DoubleBuffer {
    T* d_buffers[2] = {nullptr, nullptr};
    int selector = 0;
    DoubleBuffer() = default;
    DoubleBuffer(T* d_current, T* d_alternate) : d_buffers{d_current, d_alternate}, selector(0) {}
    T* Current() { return d_buffers[selector]; }
    T* Alternate() { return d_buffers[selector ^ 1]; }
};

struct NullType {};

struct Sum {
    template <typename T, typename U>
    __device__ auto operator()(const T& a, const U& b) const -> decltype(a + b) {
        return a + b;
    }
};

namespace emu {

// The calling thread's rank in its block, x fastest (CUB's linear thread id).
inline int linear_tid() { return int((threadIdx.z * blockDim.y + threadIdx.y) * blockDim.x + threadIdx.x); }
inline int block_threads() { return int(blockDim.x * blockDim.y * blockDim.z); }

// CUB's block algorithms assume the block has exactly the template's thread count; on a GPU a
// mismatch silently computes garbage, the emulator reports it.
inline void require_block_threads(const char* algorithm, int threads) {
    if (block_threads() != threads)
        throw ::rusca::emu::Fault(std::string(algorithm) + ": the block has " + std::to_string(block_threads()) +
                                  " threads, the template says " + std::to_string(threads));
}

// The bits of `key` that a CUB radix sort over [begin_bit, end_bit) compares, as an unsigned
// number: ascending order of these is CUB's ascending order. Integral keys only (what rusca sorts).
template <typename Key>
struct RadixDigits {
    static_assert(std::is_integral<Key>::value, "the emulated CUB radix sorts take integral keys");
    using Bits = typename std::make_unsigned<Key>::type;
    static uint64_t of(Key key, int begin_bit, int end_bit) {
        Bits b = static_cast<Bits>(key);
        if (std::is_signed<Key>::value) b ^= Bits(Bits(1) << (sizeof(Key) * 8 - 1));  // CUB's twiddle
        const int width = end_bit - begin_bit;
        if (width <= 0) return 0;
        const uint64_t shifted = uint64_t(b) >> begin_bit;
        return width >= 64 ? shifted : shifted & ((uint64_t(1) << width) - 1);
    }
};

// Is [begin_bit, end_bit) a bit range CUB accepts for this key type?
template <typename Key>
bool valid_bit_range(int begin_bit, int end_bit) {
    return begin_bit >= 0 && begin_bit <= end_bit && end_bit <= int(sizeof(Key) * 8);
}

}  // namespace emu
}  // namespace cub
