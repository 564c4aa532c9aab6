// device_builtins.h: what device code sees as built in, on the SIMT emulator: thread and block
// indices, __syncthreads, warp collectives, atomics, device math and bit casts. Each is a plain C++
// function over the engine in cuda/emu/emu.h; the file and line of a barrier or collective call are
// kept (via __builtin_FILE/__builtin_LINE default arguments) for deadlock and mask reports.
#pragma once
#include <cuda_runtime_api.h>

#include <cmath>
#include <math.h>  // isnan, isfinite, ... in the global namespace, as device code calls them
#include <cstdint>
#include <cstring>

#include "cuda/emu/emu.h"

// Set by the engine before it resumes a thread's fiber (a block's fibers share one OS thread).
extern thread_local uint3 threadIdx;
extern thread_local uint3 blockIdx;
extern thread_local dim3 blockDim;
extern thread_local dim3 gridDim;
constexpr int warpSize = 32;

#define RUSCA_EMU_SITE const char *file_ = __builtin_FILE(), int line_ = __builtin_LINE()
#define RUSCA_EMU_AT ::rusca::emu::Site{file_, line_}

inline void __syncthreads(RUSCA_EMU_SITE) { ::rusca::emu::syncthreads(RUSCA_EMU_AT); }

namespace rusca::emu {

// Shuffles move 4- or 8-byte values; ShflArgs says which lane each lane reads. Every lane posts its
// own arguments next to its value: a source lane may differ per lane (a rotation, a gather).
struct ShflArgs {
    enum Kind { Idx, Up, Down, Xor } kind;
    int arg, width, bytes;
};
struct ShflIn {
    ShflArgs args;
    unsigned char value[8];
};
void shfl_combine(unsigned mask, const void* const in[32], void* const out[32], const void* ctx);
void vote_combine(unsigned mask, const void* const in[32], void* const out[32], const void* ctx);

template <class T>
inline T shfl(const char* op, unsigned mask, T v, ShflArgs::Kind kind, int arg, int width, Site site) {
    static_assert(sizeof(T) == 4 || sizeof(T) == 8, "warp shuffles move 4- or 8-byte values");
    ShflIn in{{kind, arg, width, int(sizeof(T))}, {}};
    std::memcpy(in.value, &v, sizeof(T));
    T r;
    warp_rendezvous(op, mask, &in, &r, shfl_combine, nullptr, site);
    return r;
}
// 0: ballot (bit per lane of the mask with a nonzero predicate), reported to every lane.
inline unsigned vote(const char* op, unsigned mask, int pred, Site site) {
    unsigned r = 0;
    warp_rendezvous(op, mask, &pred, &r, vote_combine, nullptr, site);
    return r;
}

}  // namespace rusca::emu

template <class T>
inline T __shfl_sync(unsigned mask, T v, int src, int width = 32, RUSCA_EMU_SITE) {
    return ::rusca::emu::shfl("__shfl_sync", mask, v, ::rusca::emu::ShflArgs::Idx, src, width, RUSCA_EMU_AT);
}
template <class T>
inline T __shfl_up_sync(unsigned mask, T v, unsigned delta, int width = 32, RUSCA_EMU_SITE) {
    return ::rusca::emu::shfl("__shfl_up_sync", mask, v, ::rusca::emu::ShflArgs::Up, int(delta), width, RUSCA_EMU_AT);
}
template <class T>
inline T __shfl_down_sync(unsigned mask, T v, unsigned delta, int width = 32, RUSCA_EMU_SITE) {
    return ::rusca::emu::shfl("__shfl_down_sync", mask, v, ::rusca::emu::ShflArgs::Down, int(delta), width,
                              RUSCA_EMU_AT);
}
template <class T>
inline T __shfl_xor_sync(unsigned mask, T v, int lane_mask, int width = 32, RUSCA_EMU_SITE) {
    return ::rusca::emu::shfl("__shfl_xor_sync", mask, v, ::rusca::emu::ShflArgs::Xor, lane_mask, width,
                              RUSCA_EMU_AT);
}
inline unsigned __ballot_sync(unsigned mask, int pred, RUSCA_EMU_SITE) {
    return ::rusca::emu::vote("__ballot_sync", mask, pred, RUSCA_EMU_AT);
}
inline int __any_sync(unsigned mask, int pred, RUSCA_EMU_SITE) {
    return ::rusca::emu::vote("__any_sync", mask, pred, RUSCA_EMU_AT) != 0;
}
inline int __all_sync(unsigned mask, int pred, RUSCA_EMU_SITE) {
    return ::rusca::emu::vote("__all_sync", mask, pred, RUSCA_EMU_AT) == mask;  // every lane of mask exists
}
inline void __syncwarp(unsigned mask = 0xffffffffu, RUSCA_EMU_SITE) {
    ::rusca::emu::vote("__syncwarp", mask, 0, RUSCA_EMU_AT);
}
// On a GPU: the lanes converged with this one right now. The emulator runs lanes apart, so it
// reports every lane of the warp that has not exited (code should not rely on more).
inline unsigned __activemask() { return ::rusca::emu::live_lanes_mask(); }

// ---- atomics: blocks may later run on several OS threads, so these are real atomics ----
template <class T>
inline T atomicAdd(T* p, T v) {
    return __atomic_fetch_add(p, v, __ATOMIC_RELAXED);
}
inline float atomicAdd(float* p, float v) {
    float old, sum;
    __atomic_load(p, &old, __ATOMIC_RELAXED);
    do sum = old + v;
    while (!__atomic_compare_exchange(p, &old, &sum, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED));
    return old;
}
inline double atomicAdd(double* p, double v) {
    double old, sum;
    __atomic_load(p, &old, __ATOMIC_RELAXED);
    do sum = old + v;
    while (!__atomic_compare_exchange(p, &old, &sum, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED));
    return old;
}
template <class T>
inline T atomicSub(T* p, T v) {
    return __atomic_fetch_sub(p, v, __ATOMIC_RELAXED);
}
template <class T>
inline T atomicExch(T* p, T v) {
    return __atomic_exchange_n(p, v, __ATOMIC_RELAXED);
}
template <class T>
inline T atomicCAS(T* p, T compare, T v) {
    __atomic_compare_exchange_n(p, &compare, v, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED);
    return compare;
}
template <class T>
inline T atomicMax(T* p, T v) {
    T old = __atomic_load_n(p, __ATOMIC_RELAXED);
    while (old < v && !__atomic_compare_exchange_n(p, &old, v, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
    }
    return old;
}
template <class T>
inline T atomicMin(T* p, T v) {
    T old = __atomic_load_n(p, __ATOMIC_RELAXED);
    while (v < old && !__atomic_compare_exchange_n(p, &old, v, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
    }
    return old;
}
template <class T>
inline T atomicOr(T* p, T v) {
    return __atomic_fetch_or(p, v, __ATOMIC_RELAXED);
}
template <class T>
inline T atomicAnd(T* p, T v) {
    return __atomic_fetch_and(p, v, __ATOMIC_RELAXED);
}
inline void __threadfence() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
inline void __threadfence_block() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }

// ---- device math the host lacks (the rest, expf, exp2f, fmaxf, ..., is <cmath>) ----
// The fast-math intrinsics are computed exactly here; the GPU's are approximate (a few ulp).
inline float __expf(float x) { return expf(x); }
inline float __logf(float x) { return logf(x); }
inline float __log2f(float x) { return log2f(x); }
inline float __sinf(float x) { return sinf(x); }
inline float __cosf(float x) { return cosf(x); }
inline float __powf(float x, float y) { return powf(x, y); }
inline float __fdividef(float x, float y) { return x / y; }
inline float __frcp_rn(float x) { return 1.0f / x; }
inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }
inline double rsqrt(double x) { return 1.0 / sqrt(x); }
inline float __saturatef(float x) { return x < 0.0f ? 0.0f : (x > 1.0f ? 1.0f : x); }
inline float __fmaf_rn(float a, float b, float c) { return fmaf(a, b, c); }
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fmul_rn(float a, float b) { return a * b; }

template <class To, class From>
inline To rusca_emu_bit_cast(From v) {
    static_assert(sizeof(To) == sizeof(From), "bit cast between types of one size");
    To r;
    std::memcpy(&r, &v, sizeof r);
    return r;
}
inline unsigned __float_as_uint(float x) { return rusca_emu_bit_cast<unsigned>(x); }
inline int __float_as_int(float x) { return rusca_emu_bit_cast<int>(x); }
inline float __uint_as_float(unsigned x) { return rusca_emu_bit_cast<float>(x); }
inline float __int_as_float(int x) { return rusca_emu_bit_cast<float>(x); }
inline long long __double_as_longlong(double x) { return rusca_emu_bit_cast<long long>(x); }
inline double __longlong_as_double(long long x) { return rusca_emu_bit_cast<double>(x); }
inline int __popc(unsigned x) { return __builtin_popcount(x); }
inline int __popcll(unsigned long long x) { return __builtin_popcountll(x); }
inline int __clz(int x) { return x == 0 ? 32 : __builtin_clz(unsigned(x)); }
inline int __clzll(long long x) { return x == 0 ? 64 : __builtin_clzll((unsigned long long)x); }
inline int __ffs(int x) { return __builtin_ffs(x); }
inline unsigned __brev(unsigned x) {
    unsigned r = 0;
    for (int i = 0; i < 32; i++) r |= ((x >> i) & 1u) << (31 - i);
    return r;
}
template <class T>
inline T __ldg(const T* p) {
    return *p;
}

// CUDA's global min/max overloads (device code calls them unqualified).
inline int min(int a, int b) { return a < b ? a : b; }
inline int max(int a, int b) { return a > b ? a : b; }
inline unsigned min(unsigned a, unsigned b) { return a < b ? a : b; }
inline unsigned max(unsigned a, unsigned b) { return a > b ? a : b; }
inline long long min(long long a, long long b) { return a < b ? a : b; }
inline long long max(long long a, long long b) { return a > b ? a : b; }
inline unsigned long long min(unsigned long long a, unsigned long long b) { return a < b ? a : b; }
inline unsigned long long max(unsigned long long a, unsigned long long b) { return a > b ? a : b; }
inline float min(float a, float b) { return fminf(a, b); }
inline float max(float a, float b) { return fmaxf(a, b); }
inline double min(double a, double b) { return fmin(a, b); }
inline double max(double a, double b) { return fmax(a, b); }
