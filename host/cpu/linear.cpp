// linear.cpp: the CPU matmuls, out = inp @ W^T + b and its backward.
// These three products are nearly all of the FLOPs of CPU training, so they get the one bit of
// performance engineering in host/cpu: register blocking (a small tile of outputs lives in AVX2
// registers while we stream over the reduction dimension) and cache blocking (the operand we reuse
// most stays in L2). Everything else stays plain.
//
// Determinism: every output element is computed by exactly one thread, by the same sequence of
// floating-point operations no matter which thread or which tile shape handles it, so results are
// bit-identical for any OMP_NUM_THREADS.
//   forward      out[n,o]  = bias[o] + dot(inp[n,:], W[o,:])   dot = one partial sum per SIMD lane,
//                                                              lanes added pairwise, then tail of C
//   dinp, dW     d[i,j]    = (((d[i,j] + t_0) + t_1) + ...)    terms added one by one in k order
#include <algorithm>
#include <cstring>

#include "host/cpu/ops.h"

namespace rusca::cpu {
namespace {

// One AVX2 register's worth of Real (8 floats or 4 doubles), via GCC/Clang vector extensions so
// the same template serves float and double; arithmetic on V is lane-wise.
template <typename Real>
struct Simd {
    static constexpr int L = 32 / sizeof(Real);
    typedef Real V __attribute__((vector_size(32)));
    static V load(const Real* p) { V v; std::memcpy(&v, p, sizeof v); return v; }  // unaligned
    static void store(Real* p, V v) { std::memcpy(p, &v, sizeof v); }
    static V splat(Real x) {  // one vbroadcast (a loop or V{} + x would not compile to just that)
        if constexpr (L == 8) return V{x, x, x, x, x, x, x, x};
        else return V{x, x, x, x};
    }
    static Real hsum(V v) {  // pairwise tree over the lanes: a fixed order, and short
        Real t[L];
        std::memcpy(t, &v, sizeof v);
        for (int w = L / 2; w >= 1; w /= 2)
            for (int l = 0; l < w; l++) t[l] += t[l + w];
        return t[0];
    }
};

// Tile sizes: MR x NR accumulator registers = 12 of AVX2's 16, the rest hold the operands.
constexpr int MR = 4, NR = 3;
// Bytes of the reused operand we try to keep in L2 (1 MiB per core here, 2 MiB on most servers).
constexpr size_t kL2Panel = 256 * 1024;

// ----------------------------------------------------------------------------------------------
// forward: "NT" product, both operands contiguous along C, so each output is a dot product.

// out[i, j] = bias[j] + dot(inp[i, :], W[j, :]) for an R x S tile (R <= MR rows of inp, S <= NR rows
// of W). inp points at the tile's first row, W at its first row, out at out[n0, o0].
template <typename Real, int R, int S>
void dot_tile(Real* out, const Real* inp, const Real* W, const Real* bias, int C, int OC) {
    using K = Simd<Real>;
    typename K::V acc[R][S] = {};
    int c = 0;
    for (; c + K::L <= C; c += K::L) {
        typename K::V w[S];
        for (int j = 0; j < S; j++) w[j] = K::load(W + (size_t)j * C + c);
        for (int i = 0; i < R; i++) {
            typename K::V x = K::load(inp + (size_t)i * C + c);
            for (int j = 0; j < S; j++) acc[i][j] += x * w[j];
        }
    }
    for (int i = 0; i < R; i++) {
        for (int j = 0; j < S; j++) {
            Real s = K::hsum(acc[i][j]);
            for (int cc = c; cc < C; cc++) s += inp[(size_t)i * C + cc] * W[(size_t)j * C + cc];
            out[(size_t)i * OC + j] = bias ? bias[j] + s : s;
        }
    }
}

// An mr x nr block (mr <= MR, nr <= NR): the full tile when it fits, narrower tiles at the edges.
template <typename Real>
void dot_block(Real* out, const Real* inp, const Real* W, const Real* bias, int mr, int nr, int C,
               int OC) {
    if (mr == MR && nr == NR) return dot_tile<Real, MR, NR>(out, inp, W, bias, C, OC);
    for (int i = 0; i < mr; i++) {
        for (int j = 0; j < nr; j++) {
            dot_tile<Real, 1, 1>(out + (size_t)i * OC + j, inp + (size_t)i * C, W + (size_t)j * C,
                                 bias ? bias + j : nullptr, C, OC);
        }
    }
}

// ----------------------------------------------------------------------------------------------
// backward: "NN" products D[M, J] += A[M, K] @ B[K, J], with B row-major (contiguous along J) and A
// read through strides (A(i, k) = A[i*sa_i + k*sa_k]) so dout can be used as is or transposed.
// The inner step broadcasts one A value and multiplies a row of B: contiguous, no horizontal sums.

template <typename Real>
struct NN {
    Real* D;            // [M, J], row stride J
    const Real* A;      // A(i, k) = A[i * sa_i + k * sa_k]
    size_t sa_i, sa_k;
    const Real* B;      // [K, J], row stride J
    int M, J, K;
};

// D[i, j..j+S*L) += sum_{k in [k0,k1)} A(i,k) B[k, j..] for R rows i starting at i0.
template <typename Real, int R, int S>
void axpy_tile(const NN<Real>& p, int i0, int j, int k0, int k1) {
    using K = Simd<Real>;
    typename K::V acc[R][S];
    for (int i = 0; i < R; i++)
        for (int s = 0; s < S; s++) acc[i][s] = K::load(p.D + (size_t)(i0 + i) * p.J + j + s * K::L);
    const Real* a = p.A + i0 * p.sa_i;
    for (int k = k0; k < k1; k++) {
        typename K::V b[S];
        for (int s = 0; s < S; s++) b[s] = K::load(p.B + (size_t)k * p.J + j + s * K::L);
        for (int i = 0; i < R; i++) {
            typename K::V ai = K::splat(a[i * p.sa_i + k * p.sa_k]);
            for (int s = 0; s < S; s++) acc[i][s] += ai * b[s];
        }
    }
    for (int i = 0; i < R; i++)
        for (int s = 0; s < S; s++) K::store(p.D + (size_t)(i0 + i) * p.J + j + s * K::L, acc[i][s]);
}

// The same for the last few (< L) columns, in scalar code.
template <typename Real, int R>
void axpy_tail(const NN<Real>& p, int i0, int j, int ncols, int k0, int k1) {
    Real acc[R][Simd<Real>::L];
    for (int i = 0; i < R; i++)
        for (int c = 0; c < ncols; c++) acc[i][c] = p.D[(size_t)(i0 + i) * p.J + j + c];
    const Real* a = p.A + i0 * p.sa_i;
    for (int k = k0; k < k1; k++) {
        for (int i = 0; i < R; i++) {
            Real ai = a[i * p.sa_i + k * p.sa_k];
            for (int c = 0; c < ncols; c++) acc[i][c] += ai * p.B[(size_t)k * p.J + j + c];
        }
    }
    for (int i = 0; i < R; i++)
        for (int c = 0; c < ncols; c++) p.D[(size_t)(i0 + i) * p.J + j + c] = acc[i][c];
}

// R rows x up to NR*L columns starting at column j.
template <typename Real, int R>
void axpy_rows(const NN<Real>& p, int i0, int j, int ncols, int k0, int k1) {
    constexpr int L = Simd<Real>::L;
    if (ncols == NR * L) return axpy_tile<Real, R, NR>(p, i0, j, k0, k1);
    int c = 0;
    for (; c + L <= ncols; c += L) axpy_tile<Real, R, 1>(p, i0, j + c, k0, k1);
    if (c < ncols) axpy_tail<Real, R>(p, i0, j + c, ncols - c, k0, k1);
}

// D += A @ B. The K loop is cut into panels of B that fit in L2; within a panel, threads own
// disjoint MR x (NR*L) tiles of D, and panels run one after another (barrier), so each element
// still receives its terms in k order.
template <typename Real>
void gemm_nn_acc(const NN<Real>& p) {
    constexpr int strip = NR * Simd<Real>::L;
    // panel rows: fill ~kL2Panel, but at least 64 so loading/storing the register tile is amortized
    const int kb = (int)std::max<size_t>(64, kL2Panel / ((size_t)std::max(p.J, 1) * sizeof(Real)));
    const int mblocks = (p.M + MR - 1) / MR, strips = (p.J + strip - 1) / strip;
#pragma omp parallel
    for (int k0 = 0; k0 < p.K; k0 += kb) {
        const int k1 = std::min(p.K, k0 + kb);
#pragma omp for collapse(2) schedule(static)
        for (int mb = 0; mb < mblocks; mb++) {
            for (int sb = 0; sb < strips; sb++) {  // consecutive strips reuse the A rows in L1
                const int i0 = mb * MR, mr = std::min(MR, p.M - i0);
                const int j = sb * strip, ncols = std::min(strip, p.J - j);
                if (mr == MR) {
                    axpy_rows<Real, MR>(p, i0, j, ncols, k0, k1);
                } else {
                    for (int i = 0; i < mr; i++) axpy_rows<Real, 1>(p, i0 + i, j, ncols, k0, k1);
                }
            }
        }
    }
}

}  // namespace

// out[N, OC] = inp[N, C] @ W[OC, C]^T + bias[OC]
// A chunk of W rows (sized to stay in L2) is swept by every MR-row block of inp (which stays in L1).
template <typename Real>
void linear_forward(Real* out, const Real* inp, const Real* W, const Real* bias, int N, int C, int OC) {
    int ochunk = (int)(kL2Panel / ((size_t)std::max(C, 1) * sizeof(Real))) / NR * NR;
    ochunk = std::max(NR, std::min(ochunk, (OC + NR - 1) / NR * NR));
    const int ochunks = (OC + ochunk - 1) / ochunk, nblocks = (N + MR - 1) / MR;
#pragma omp parallel for collapse(2) schedule(static)
    for (int ob = 0; ob < ochunks; ob++) {
        for (int nb = 0; nb < nblocks; nb++) {
            const int n0 = nb * MR, mr = std::min(MR, N - n0);
            const int oend = std::min(OC, (ob + 1) * ochunk);
            for (int o0 = ob * ochunk; o0 < oend; o0 += NR) {
                dot_block(out + (size_t)n0 * OC + o0, inp + (size_t)n0 * C, W + (size_t)o0 * C,
                          bias ? bias + o0 : nullptr, mr, std::min(NR, oend - o0), C, OC);
            }
        }
    }
}

// dinp[N, C] += dout[N, OC] @ W[OC, C]
// dW[OC, C]  += dout[N, OC]^T @ inp[N, C]
// dbias[OC]  += sum_n dout[n, :]
template <typename Real>
void linear_backward(Real* dinp, Real* dW, Real* dbias, const Real* dout, const Real* inp,
                     const Real* W, int N, int C, int OC) {
    // dinp: A = dout as stored (row n, column o), B = W.
    gemm_nn_acc(NN<Real>{dinp, dout, (size_t)OC, 1, W, N, C, OC});
    // dW: A = dout transposed (row o, column n), B = inp.
    gemm_nn_acc(NN<Real>{dW, dout, 1, (size_t)OC, inp, OC, C, N});
    if (dbias) {
        // Each thread owns a chunk of dbias and adds the rows of dout in order (vectorized over o).
        constexpr int OB = 64;
#pragma omp parallel for schedule(static)
        for (int o0 = 0; o0 < OC; o0 += OB) {
            const int ob = std::min(OB, OC - o0);
            Real acc[OB] = {};
            for (int n = 0; n < N; n++) {
                const Real* row = dout + (size_t)n * OC + o0;
#pragma omp simd
                for (int j = 0; j < ob; j++) acc[j] += row[j];
            }
            for (int j = 0; j < ob; j++) dbias[o0 + j] += acc[j];
        }
    }
}

template void linear_forward<float>(float*, const float*, const float*, const float*, int, int, int);
template void linear_forward<double>(double*, const double*, const double*, const double*, int, int,
                                     int);
template void linear_backward<float>(float*, float*, float*, const float*, const float*, const float*,
                                     int, int, int);
template void linear_backward<double>(double*, double*, double*, const double*, const double*,
                                      const double*, int, int, int);

}  // namespace rusca::cpu
