// ptx.cpp: mma.sync, ldmatrix and cp.async emulated from the PTX ISA; see ptx_emu.h.
#include <cuda_runtime.h>

#include <cstring>
#include <string>

#include "cuda/emu/engine.h"
#include "cuda/emu/ptx_emu.h"

namespace rusca::emu {
namespace {

float bf16_lo(uint32_t r) { return __uint_as_float(r << 16); }
float bf16_hi(uint32_t r) { return __uint_as_float(r & 0xFFFF0000u); }

struct MmaIn {
    const uint32_t* a;
    const uint32_t* b;
    const float* c;
};

// The fragment tables, lane l, g = l / 4, t = l % 4:
//   A 16x16: a[0] = A[g][2t, 2t+1], a[1] = A[g+8][2t, 2t+1], a[2] = A[g][2t+8, 2t+9], a[3] = A[g+8][2t+8, 2t+9]
//   B 16x8:  b[0] = B[2t, 2t+1][g], b[1] = B[2t+8, 2t+9][g]
//   C, D 16x8: c[0], c[1] = C[g][2t, 2t+1], c[2], c[3] = C[g+8][2t, 2t+1]
void mma_combine(unsigned, const void* const in[32], void* const out[32], const void*) {
    float A[16][16], B[16][8], C[16][8];
    for (int l = 0; l < 32; l++) {
        const MmaIn& f = *static_cast<const MmaIn*>(in[l]);
        const int g = l / 4, t = l % 4;
        for (int half = 0; half < 2; half++) {  // rows g and g + 8
            const int row = g + 8 * half;
            A[row][2 * t] = bf16_lo(f.a[half]), A[row][2 * t + 1] = bf16_hi(f.a[half]);
            A[row][2 * t + 8] = bf16_lo(f.a[2 + half]), A[row][2 * t + 9] = bf16_hi(f.a[2 + half]);
            C[row][2 * t] = f.c[2 * half], C[row][2 * t + 1] = f.c[2 * half + 1];
        }
        B[2 * t][g] = bf16_lo(f.b[0]), B[2 * t + 1][g] = bf16_hi(f.b[0]);
        B[2 * t + 8][g] = bf16_lo(f.b[1]), B[2 * t + 9][g] = bf16_hi(f.b[1]);
    }
    for (int l = 0; l < 32; l++) {
        float* d = static_cast<float*>(out[l]);
        const int g = l / 4, t = l % 4;
        for (int i = 0; i < 4; i++) {
            const int row = g + 8 * (i / 2), col = 2 * t + i % 2;
            // Products of bf16 values are exact in fp32; the sum is formed in double and rounded once
            // (tensor cores keep extra bits too; the order of their additions is not specified).
            double acc = C[row][col];
            for (int k = 0; k < 16; k++) acc += double(A[row][k]) * double(B[k][col]);
            d[i] = float(acc);
        }
    }
}

struct LdmatrixArgs {
    int count;
    bool trans;
};

void ldmatrix_combine(unsigned, const void* const in[32], void* const out[32], const void* ctx) {
    const LdmatrixArgs& a = *static_cast<const LdmatrixArgs*>(ctx);
    uint16_t M[4][8][8];  // matrix, row, column
    for (int i = 0; i < a.count; i++)
        for (int row = 0; row < 8; row++) {
            const void* p = *static_cast<const void* const*>(in[8 * i + row]);
            if (reinterpret_cast<uintptr_t>(p) % 16)
                fault("ldmatrix: the row address of lane " + std::to_string(8 * i + row) + " is not 16-byte aligned");
            std::memcpy(M[i][row], p, 16);
        }
    for (int l = 0; l < 32; l++) {
        uint32_t* r = static_cast<uint32_t*>(out[l]);
        const int g = l / 4, t = l % 4;
        for (int i = 0; i < a.count; i++) {
            const uint16_t lo = a.trans ? M[i][2 * t][g] : M[i][g][2 * t];
            const uint16_t hi = a.trans ? M[i][2 * t + 1][g] : M[i][g][2 * t + 1];
            r[i] = uint32_t(lo) | uint32_t(hi) << 16;
        }
    }
}

}  // namespace

void mma_m16n8k16_bf16_f32(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2], const float (&c)[4],
                           Site site) {
    const MmaIn in{a, b, c};
    float result[4];
    warp_rendezvous("mma.sync.m16n8k16", 0xffffffffu, &in, result, mma_combine, nullptr, site);
    std::memcpy(d, result, sizeof result);  // d may alias c
}

void ldmatrix(uint32_t* r, int count, bool trans, const void* row_addr, Site site) {
    const LdmatrixArgs args{count, trans};
    warp_rendezvous(trans ? "ldmatrix.trans" : "ldmatrix", 0xffffffffu, &row_addr, r, ldmatrix_combine, &args, site);
}

// ---- cp.async ----
void cp_async(void* dst, const void* src, int bytes, int src_bytes) {
    Thread& me = current_thread();
    if (reinterpret_cast<uintptr_t>(dst) % bytes || reinterpret_cast<uintptr_t>(src) % bytes)
        fault("cp.async of " + std::to_string(bytes) + " bytes with a misaligned address");
    AsyncCopy c{static_cast<unsigned char*>(dst), {}, bytes, me.committed};
    if (src_bytes > 0) {
        check_device_range(src, size_t(src_bytes), "cp.async source");
        std::memcpy(c.data, src, size_t(src_bytes));
    }
    std::memset(dst, 0xFF, size_t(bytes));  // reads before the wait see poison (NaN)
    me.copies.push_back(c);
}

void cp_async_commit() { current_thread().committed++; }

void cp_async_wait(int n) {
    Thread& me = current_thread();
    land_copies(me, me.committed - n);
}

void land_copies(Thread& t, int below) {
    size_t kept = 0;
    for (AsyncCopy& c : t.copies) {
        if (below < 0 || c.group < below) std::memcpy(c.dst, c.data, size_t(c.bytes));
        else t.copies[kept++] = c;
    }
    t.copies.resize(kept);
}

}  // namespace rusca::emu
