// ptx.cuh: every inline-PTX instruction rusca's kernels use, each behind a named device function,
// and the dynamic shared memory. This is the only file in cuda/ with `asm(`: under nvcc each function
// is the one instruction (forceinline, so the GPU code is what writing the asm in place gives); in
// the emulator build (RUSCA_EMU) each calls the emulator's version from the PTX ISA (cuda/emu/).
// `make check-sources` enforces it.
//
// Fragment layouts of mma.m16n8k16 (PTX ISA, "Matrix Fragments for mma.m16n8k16"), lane l,
// g = l / 4, t = l % 4; each 32-bit register holds two bf16, lower column/row index in the low half:
//   A 16x16 (row-major): a0 = A[g][2t..2t+1], a1 = A[g+8][2t..], a2 = A[g][2t+8..], a3 = A[g+8][2t+8..]
//   B 16x8  (k x n):     b0 = B[2t..2t+1][g],  b1 = B[2t+8..2t+9][g]
//   C 16x8  fp32:        c0, c1 = C[g][2t], C[g][2t+1];  c2, c3 = C[g+8][2t], C[g+8][2t+1]
// ldmatrix .x4: lanes 8i..8i+7 give the row addresses of 8x8 matrix i; register i of lane l gets
// matrix i's elements [l/4][2(l%4)..+1] (with .trans: [2(l%4)..+1][l/4], i.e. the transpose).
#pragma once
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

#ifdef RUSCA_EMU
#include "cuda/emu/ptx_emu.h"
// The emulator reports the calling line of a warp-wide instruction (deadlocks, mask errors).
#define RUSCA_PTX_SITE , RUSCA_EMU_SITE
#else
#define RUSCA_PTX_SITE
#endif

namespace rusca::cuda {

// Address of a shared-memory object in the shared window (what PTX's .shared operands take).
__device__ __forceinline__ uint32_t smem_addr(const void* p) {
#ifdef RUSCA_EMU
    return static_cast<uint32_t>(reinterpret_cast<uintptr_t>(p));  // never dereferenced in the emulator
#else
    return static_cast<uint32_t>(__cvta_generic_to_shared(p));
#endif
}

// The kernel's dynamic shared memory (the launch's smem bytes), 16-byte aligned.
__device__ __forceinline__ unsigned char* dynamic_smem() {
#ifdef RUSCA_EMU
    return ::rusca::emu::dynamic_smem();
#else
    extern __shared__ __align__(16) unsigned char smem_[];
    return smem_;
#endif
}

// ldmatrix.sync.aligned.m8n8.x4.shared.b16: four 8x8 bf16 matrices from shared memory.
__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], const __nv_bfloat16* p RUSCA_PTX_SITE) {
#ifdef RUSCA_EMU
    ::rusca::emu::ldmatrix(r, 4, false, p, RUSCA_EMU_AT);
#else
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(smem_addr(p))
                 : "memory");
#endif
}

// The same with .trans: each matrix is delivered transposed.
__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t (&r)[4], const __nv_bfloat16* p RUSCA_PTX_SITE) {
#ifdef RUSCA_EMU
    ::rusca::emu::ldmatrix(r, 4, true, p, RUSCA_EMU_AT);
#else
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(smem_addr(p))
                 : "memory");
#endif
}

// d[16x8] += a[16x16] * b[16x8], bf16 inputs, fp32 accumulate (mma.sync.aligned.m16n8k16.row.col).
__device__ __forceinline__ void mma_bf16_16816(float (&d)[4], const uint32_t (&a)[4], uint32_t b0,
                                               uint32_t b1 RUSCA_PTX_SITE) {
#ifdef RUSCA_EMU
    const uint32_t b[2] = {b0, b1};
    ::rusca::emu::mma_m16n8k16_bf16_f32(d, a, b, d, RUSCA_EMU_AT);
#else
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
        "{%0, %1, %2, %3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
#endif
}

// cp.async: 16 (or 4) bytes global -> shared, asynchronous. With valid == false the source size is 0:
// nothing is read and the destination is zero-filled (rows past the end of the sequence).
__device__ __forceinline__ void cp_async_16(void* dst, const void* src, bool valid) {
#ifdef RUSCA_EMU
    ::rusca::emu::cp_async(dst, src, 16, valid ? 16 : 0);
#else
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_addr(dst)),
                 "l"(__cvta_generic_to_global(src)), "r"(valid ? 16 : 0)
                 : "memory");
#endif
}
__device__ __forceinline__ void cp_async_4(void* dst, const void* src, bool valid) {
#ifdef RUSCA_EMU
    ::rusca::emu::cp_async(dst, src, 4, valid ? 4 : 0);
#else
    asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(smem_addr(dst)),
                 "l"(__cvta_generic_to_global(src)), "r"(valid ? 4 : 0)
                 : "memory");
#endif
}
__device__ __forceinline__ void cp_async_commit() {
#ifdef RUSCA_EMU
    ::rusca::emu::cp_async_commit();
#else
    asm volatile("cp.async.commit_group;\n" ::: "memory");
#endif
}
// Wait until at most N of this thread's committed groups are still in flight (then __syncthreads()
// makes every thread's copies visible to the block).
template <int N>
__device__ __forceinline__ void cp_async_wait() {
#ifdef RUSCA_EMU
    ::rusca::emu::cp_async_wait(N);
#else
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
#endif
}

}  // namespace rusca::cuda
