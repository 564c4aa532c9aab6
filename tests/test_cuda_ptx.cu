// test_cuda_ptx.cu: mma.sync and ldmatrix (cuda/ptx.cuh) against scalar formulas written from the
// PTX ISA's fragment tables. One source, both builds: nvcc runs it on the GPU (the hardware against
// the table) and the emulator build runs it on the SIMT emulator (the emulator against the same
// table), with the same random inputs, so a pass in both means the emulator computes what the
// hardware does. Each lane packs its own fragments from whole matrices by the table, the warp runs
// the instruction, and the unpacked result must equal the plain matrix formula.
#include <gtest/gtest.h>

#include <vector>

#include "cuda/device_buffer.h"
#include "cuda/launch.cuh"
#include "cuda/ptx.cuh"
#include "gpu_test_util.h"

using namespace rusca;
using cuda::DeviceBuffer;
using bf16 = __nv_bfloat16;

namespace {

__device__ uint32_t pair(const bf16* m, int i0, int i1) {  // two bf16 of m, the first in the low half
    uint16_t lo, hi;
    memcpy(&lo, m + i0, 2), memcpy(&hi, m + i1, 2);
    return uint32_t(lo) | uint32_t(hi) << 16;
}

// A 16x16 row-major, B 16x8 (B[k][n] at k * 8 + n), C and D 16x8 row-major; one warp.
// Table (PTX ISA, mma.m16n8k16, .bf16): g = lane / 4, t = lane % 4;
//   a0,a1 = A[g][2t, 2t+1]  a2,a3 = A[g+8][2t, 2t+1]  a4,a5 = A[g][2t+8, 2t+9]  a6,a7 = A[g+8][2t+8, 2t+9]
//   b0,b1 = B[2t, 2t+1][g]  b2,b3 = B[2t+8, 2t+9][g]
//   c0,c1 = C[g][2t, 2t+1]  c2,c3 = C[g+8][2t, 2t+1]
__global__ void mma_kernel(float* D, const bf16* A, const bf16* B, const float* C) {
    const int lane = threadIdx.x, g = lane / 4, t = lane % 4;
    const uint32_t a[4] = {pair(A, g * 16 + 2 * t, g * 16 + 2 * t + 1),
                           pair(A, (g + 8) * 16 + 2 * t, (g + 8) * 16 + 2 * t + 1),
                           pair(A, g * 16 + 2 * t + 8, g * 16 + 2 * t + 9),
                           pair(A, (g + 8) * 16 + 2 * t + 8, (g + 8) * 16 + 2 * t + 9)};
    const uint32_t b0 = pair(B, (2 * t) * 8 + g, (2 * t + 1) * 8 + g);
    const uint32_t b1 = pair(B, (2 * t + 8) * 8 + g, (2 * t + 9) * 8 + g);
    float d[4] = {C[g * 8 + 2 * t], C[g * 8 + 2 * t + 1], C[(g + 8) * 8 + 2 * t], C[(g + 8) * 8 + 2 * t + 1]};
    cuda::mma_bf16_16816(d, a, b0, b1);
    D[g * 8 + 2 * t] = d[0], D[g * 8 + 2 * t + 1] = d[1];
    D[(g + 8) * 8 + 2 * t] = d[2], D[(g + 8) * 8 + 2 * t + 1] = d[3];
}

// Four 8x8 bf16 matrices, matrix i row r at smem + (i * 8 + r) * stride; lane l gives the address of
// row l % 8 of matrix l / 8. Out: the 4 registers of every lane.
template <bool TRANS>
__global__ void ldmatrix_kernel(uint32_t* out, const bf16* M, int stride) {
    bf16* s = reinterpret_cast<bf16*>(cuda::dynamic_smem());
    for (int i = threadIdx.x; i < 32 * stride; i += 32) s[i] = M[i];
    __syncthreads();
    uint32_t r[4];
    const bf16* row = s + threadIdx.x * stride;
    if (TRANS) cuda::ldmatrix_x4_trans(r, row);
    else cuda::ldmatrix_x4(r, row);
    for (int i = 0; i < 4; i++) out[threadIdx.x * 4 + i] = r[i];
}

std::vector<float> bf16_values(int n, uint32_t seed) { return gputest::round_bf16(gputest::random_vector(n, seed)); }

uint16_t bits(float x) {
    bf16 b = __float2bfloat16(x);
    uint16_t u;
    memcpy(&u, &b, 2);
    return u;
}

}  // namespace

TEST(CudaPtx, MmaM16n8k16MatchesTheMatrixFormula) {
    SKIP_WITHOUT_GPU();
    const std::vector<float> A = bf16_values(256, 1), B = bf16_values(128, 2), C = gputest::random_vector(128, 3);
    DeviceBuffer<bf16> dA(gputest::to_device_bf16(A)), dB(gputest::to_device_bf16(B));
    DeviceBuffer<float> dC(C), dD(128);
    LAUNCH_KERNEL(mma_kernel, 1, 32, 0, nullptr, dD.data(), dA.data(), dB.data(), dC.data());
    const std::vector<float> D = dD.download();
    for (int m = 0; m < 16; m++)
        for (int n = 0; n < 8; n++) {
            double ref = C[m * 8 + n], size = std::fabs(ref);
            for (int k = 0; k < 16; k++) {
                ref += double(A[m * 16 + k]) * B[k * 8 + n];
                size += std::fabs(double(A[m * 16 + k]) * B[k * 8 + n]);
            }
            // fp32 accumulation: a few ulps of the terms' magnitude (tensor cores may round differently)
            EXPECT_NEAR(D[m * 8 + n], ref, 4e-7 * size + 1e-7) << "D[" << m << "][" << n << "]";
        }
}

TEST(CudaPtx, LdmatrixX4AndTransFollowTheFragmentTable) {
    SKIP_WITHOUT_GPU();
    const int stride = 8 + 8;  // padded rows, as the attention tiles
    const std::vector<float> M = bf16_values(32 * stride, 4);
    DeviceBuffer<bf16> dM(gputest::to_device_bf16(M));
    for (bool trans : {false, true}) {
        DeviceBuffer<uint32_t> out(128);
        if (trans) LAUNCH_KERNEL(ldmatrix_kernel<true>, 1, 32, 32 * stride * 2, nullptr, out.data(), dM.data(), stride);
        else LAUNCH_KERNEL(ldmatrix_kernel<false>, 1, 32, 32 * stride * 2, nullptr, out.data(), dM.data(), stride);
        const std::vector<uint32_t> r = out.download();
        // Register i of lane l: matrix i, row l / 4, columns 2 (l % 4) and 2 (l % 4) + 1; with .trans,
        // rows 2 (l % 4) and 2 (l % 4) + 1 of column l / 4.
        for (int l = 0; l < 32; l++)
            for (int i = 0; i < 4; i++) {
                const int g = l / 4, t = l % 4;
                auto at = [&](int row, int col) { return bits(M[(i * 8 + row) * stride + col]); };
                const uint32_t want = trans ? (at(2 * t, g) | uint32_t(at(2 * t + 1, g)) << 16)
                                            : (at(g, 2 * t) | uint32_t(at(g, 2 * t + 1)) << 16);
                EXPECT_EQ(r[l * 4 + i], want) << (trans ? "trans " : "") << "lane " << l << " register " << i;
            }
    }
}
