// test_emu_libs.cpp: the emulator's cuBLASLt and CUB (cuda/emu/cublaslt.cpp, cuda/emu/include/cub/)
// against independent references, emulator build only.
//  - cuBLASLt: every transpose combination, bf16 and fp32 outputs, the bias epilogue, beta != 0 in
//    place, ragged shapes with padded leading dimensions (padding must stay untouched), against a
//    double GEMM on the same inputs; descriptors cuBLASLt would refuse are refused with its status;
//    a matmul captured into a CUDA graph replays after its descriptors are gone.
//  - CUB device level: radix sorts against std::stable_sort (duplicates, signed keys, bit ranges,
//    segments, DoubleBuffer selector), TransformReduce against a double sum, and the size-query
//    convention (too little temporary storage is refused).
//  - CUB block level, in small kernels on the emulator: BlockReduce in CUB's exact combine order
//    (checked with a non-associative operator against a recursive formula of that order),
//    BlockScan, BlockRadixSort (blocked and striped, keys and pairs), under every thread schedule.
// Inputs are random and never zero; outputs are poisoned before each call.
#ifdef RUSCA_EMU
#include <cublasLt.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include <cub/cub.cuh>
#include <cuda/std/functional>

#include "cuda/device_buffer.h"
#include "cuda/launch.cuh"
#include "gpu_test_util.h"

using namespace rusca;
using namespace rusca::gputest;
using rusca::cuda::DeviceBuffer;
using bf16 = __nv_bfloat16;

namespace {

// ==============================================================================================
// cuBLASLt

// One column-major GEMM problem as cuBLASLt sees it: D[m, n] = alpha op(A) op(B) + beta C + bias.
struct LtCase {
    int m, n, k;
    bool ta, tb;
    bool d_fp32;
    bool bias;
    float alpha, beta;
    int pad;  // extra rows in every leading dimension
};

std::string label(const LtCase& c) {
    return "m=" + std::to_string(c.m) + " n=" + std::to_string(c.n) + " k=" + std::to_string(c.k) +
           (c.ta ? " A^T" : " A") + (c.tb ? " B^T" : " B") + (c.d_fp32 ? " fp32 D" : " bf16 D") +
           (c.bias ? " bias" : "") + " beta=" + std::to_string(c.beta);
}

// The stored shape of op's operand: [rows, cols] column-major with ld = rows + pad.
struct Stored {
    int rows, cols, ld;
    size_t elems() const { return size_t(cols) * ld; }
};
Stored stored(int op_rows, int op_cols, bool trans, int pad) {
    const int rows = trans ? op_cols : op_rows, cols = trans ? op_rows : op_cols;
    return Stored{rows, cols, rows + pad};
}
// Element (i, j) of op(X).
size_t at(const Stored& s, bool trans, int i, int j) {
    return trans ? size_t(i) * s.ld + j : size_t(j) * s.ld + i;
}

// Descriptors for a case; destroyed with the object.
struct LtSetup {
    cublasLtMatmulDesc_t desc = nullptr;
    cublasLtMatrixLayout_t a = nullptr, b = nullptr, d = nullptr;
    cublasLtMatmulPreference_t pref = nullptr;
    ~LtSetup() {
        if (desc) cublasLtMatmulDescDestroy(desc);
        for (cublasLtMatrixLayout_t l : {a, b, d})
            if (l) cublasLtMatrixLayoutDestroy(l);
        if (pref) cublasLtMatmulPreferenceDestroy(pref);
    }
};

void make_setup(LtSetup& s, const LtCase& c, const void* bias_ptr, uint32_t align = 256) {
    ASSERT_EQ(cublasLtMatmulDescCreate(&s.desc, CUBLAS_COMPUTE_32F, CUDA_R_32F), CUBLAS_STATUS_SUCCESS);
    const int32_t op_a = c.ta ? CUBLAS_OP_T : CUBLAS_OP_N, op_b = c.tb ? CUBLAS_OP_T : CUBLAS_OP_N;
    ASSERT_EQ(cublasLtMatmulDescSetAttribute(s.desc, CUBLASLT_MATMUL_DESC_TRANSA, &op_a, sizeof(op_a)), 0);
    ASSERT_EQ(cublasLtMatmulDescSetAttribute(s.desc, CUBLASLT_MATMUL_DESC_TRANSB, &op_b, sizeof(op_b)), 0);
    if (c.bias) {
        const uint32_t epi = CUBLASLT_EPILOGUE_BIAS;
        ASSERT_EQ(cublasLtMatmulDescSetAttribute(s.desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof(epi)), 0);
        ASSERT_EQ(cublasLtMatmulDescSetAttribute(s.desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias_ptr,
                                                 sizeof(bias_ptr)),
                  0);
    }
    const Stored sa = stored(c.m, c.k, c.ta, c.pad), sb = stored(c.k, c.n, c.tb, c.pad);
    ASSERT_EQ(cublasLtMatrixLayoutCreate(&s.a, CUDA_R_16BF, sa.rows, sa.cols, sa.ld), 0);
    ASSERT_EQ(cublasLtMatrixLayoutCreate(&s.b, CUDA_R_16BF, sb.rows, sb.cols, sb.ld), 0);
    ASSERT_EQ(cublasLtMatrixLayoutCreate(&s.d, c.d_fp32 ? CUDA_R_32F : CUDA_R_16BF, c.m, c.n, c.m + c.pad), 0);
    ASSERT_EQ(cublasLtMatmulPreferenceCreate(&s.pref), 0);
    const uint64_t ws = 1 << 20;
    ASSERT_EQ(cublasLtMatmulPreferenceSetAttribute(s.pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof(ws)),
              0);
    for (auto attr : {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
                      CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES})
        ASSERT_EQ(cublasLtMatmulPreferenceSetAttribute(s.pref, attr, &align, sizeof(align)), 0);
}

// Device data of a case, with host copies of what went in.
struct LtData {
    std::vector<float> a, b, bias, c;  // bf16-rounded host values (c: D's initial value)
    DeviceBuffer<bf16> da, db, dbias;
    DeviceBuffer<bf16> d16;
    DeviceBuffer<float> d32;
    DeviceBuffer<char> workspace{1 << 20};
};

// Random, never-zero data. D holds C's values (beta != 0, in place) or poison, with poison in its
// padding rows either way.
void make_data(LtData& x, const LtCase& c, uint32_t seed) {
    const Stored sa = stored(c.m, c.k, c.ta, c.pad), sb = stored(c.k, c.n, c.tb, c.pad);
    x.a = round_bf16(random_vector(sa.elems(), seed));
    x.b = round_bf16(random_vector(sb.elems(), seed + 1));
    x.bias = round_bf16(random_vector(c.m, seed + 2));
    const size_t d_elems = size_t(c.n) * (c.m + c.pad);
    x.c = round_bf16(random_vector(d_elems, seed + 3));
    for (size_t e = 0; e < d_elems; e++)
        if (c.beta == 0.0f || int(e % (c.m + c.pad)) >= c.m) x.c[e] = NAN;  // poison (padding: always)
    x.da = DeviceBuffer<bf16>(to_device_bf16(x.a));
    x.db = DeviceBuffer<bf16>(to_device_bf16(x.b));
    x.dbias = DeviceBuffer<bf16>(to_device_bf16(x.bias));
    if (c.d_fp32) x.d32 = DeviceBuffer<float>(x.c);
    else x.d16 = DeviceBuffer<bf16>(to_device_bf16(x.c));
}

void* d_ptr(LtData& x, const LtCase& c) {
    return c.d_fp32 ? static_cast<void*>(x.d32.data()) : static_cast<void*>(x.d16.data());
}

std::vector<float> d_values(const LtData& x, const LtCase& c) {
    return c.d_fp32 ? x.d32.download() : from_bf16(x.d16.download());
}

cublasStatus_t run_case(cublasLtHandle_t h, LtSetup& s, LtData& x, const LtCase& c, cudaStream_t stream = nullptr) {
    cublasLtMatmulHeuristicResult_t r{};
    int returned = 0;
    const cublasStatus_t st = cublasLtMatmulAlgoGetHeuristic(h, s.desc, s.a, s.b, s.d, s.d, s.pref, 1, &r, &returned);
    if (st != CUBLAS_STATUS_SUCCESS) return st;
    if (returned != 1 || r.state != CUBLAS_STATUS_SUCCESS) return CUBLAS_STATUS_INTERNAL_ERROR;
    void* D = d_ptr(x, c);
    return cublasLtMatmul(h, s.desc, &c.alpha, x.da.data(), s.a, x.db.data(), s.b, &c.beta, D, s.d, D, s.d, &r.algo,
                          x.workspace.data(), 1 << 20, stream);
}

// D against a double GEMM of the same inputs: fp32 accumulation error (k terms) plus, for bf16 D,
// one rounding to bf16. The padding rows must still hold their poison.
void expect_matches_reference(const LtData& x, const LtCase& c, const std::vector<float>& got) {
    const Stored sa = stored(c.m, c.k, c.ta, c.pad), sb = stored(c.k, c.n, c.tb, c.pad);
    const int ldd = c.m + c.pad;
    for (int j = 0; j < c.n; j++) {
        for (int i = 0; i < c.m + c.pad; i++) {
            const size_t e = size_t(j) * ldd + i;
            if (i >= c.m) {
                ASSERT_TRUE(std::isnan(got[e])) << label(c) << ": padding (" << i << ", " << j << ") was written";
                continue;
            }
            double ref = 0, magnitude = 0;
            for (int kk = 0; kk < c.k; kk++) {
                const double p = double(x.a[at(sa, c.ta, i, kk)]) * x.b[at(sb, c.tb, kk, j)];
                ref += p;
                magnitude += std::fabs(p);
            }
            ref *= c.alpha;
            if (c.beta != 0.0f) ref += double(c.beta) * x.c[e];
            if (c.bias) ref += x.bias[i];
            const double tol = 2e-6 * c.k * std::fabs(c.alpha) * magnitude + 1e-6 +
                               (c.d_fp32 ? 1e-6 * std::fabs(ref) : std::ldexp(std::fabs(ref), -8));
            ASSERT_NEAR(got[e], ref, tol) << label(c) << " at (" << i << ", " << j << ")";
        }
    }
}

struct Lt {
    cublasLtHandle_t h = nullptr;
    Lt() { EXPECT_EQ(cublasLtCreate(&h), CUBLAS_STATUS_SUCCESS); }
    ~Lt() { cublasLtDestroy(h); }
};

TEST(EmuCublasLt, EveryTransposeAndOutputMatchesDoubleReference) {
    Lt lt;
    uint32_t seed = 100;
    for (bool ta : {false, true})
        for (bool tb : {false, true})
            for (bool d_fp32 : {false, true}) {
                const LtCase c{37, 29, 70, ta, tb, d_fp32, false, 1.0f, 0.0f, 3};
                LtSetup s;
                make_setup(s, c, nullptr);
                LtData x;
                make_data(x, c, seed += 10);
                ASSERT_EQ(run_case(lt.h, s, x, c), CUBLAS_STATUS_SUCCESS) << label(c);
                expect_matches_reference(x, c, d_values(x, c));
            }
}

TEST(EmuCublasLt, BiasEpilogueAlphaAndBetaInPlace) {
    Lt lt;
    const LtCase cases[] = {
        {130, 37, 72, true, false, false, true, 1.0f, 0.0f, 0},   // linear_forward's shape, with bias
        {61, 19, 33, false, true, false, true, 0.5f, 0.0f, 5},    // bias, alpha != 1
        {72, 37, 130, false, false, false, false, 1.0f, 1.0f, 0}, // dinp += (bf16 D, beta = 1)
        {72, 130, 37, false, true, true, false, 1.0f, 1.0f, 2},   // dW += (fp32 D, beta = 1)
        {17, 23, 9, true, true, true, false, -1.5f, 0.25f, 1},    // both scales
        {1, 1, 1, false, false, false, true, 1.0f, 1.0f, 0},      // tiny, everything on
    };
    uint32_t seed = 200;
    for (const LtCase& c : cases) {
        LtData x;
        make_data(x, c, seed += 10);
        LtSetup s;
        make_setup(s, c, x.dbias.data());
        ASSERT_EQ(run_case(lt.h, s, x, c), CUBLAS_STATUS_SUCCESS) << label(c);
        expect_matches_reference(x, c, d_values(x, c));
    }
}

TEST(EmuCublasLt, LargerProblemIsDeterministic) {
    Lt lt;
    const LtCase c{384, 96, 1536, true, false, false, false, 1.0f, 0.0f, 0};
    LtData x;
    make_data(x, c, 300);
    LtSetup s;
    make_setup(s, c, nullptr);
    ASSERT_EQ(run_case(lt.h, s, x, c), CUBLAS_STATUS_SUCCESS);
    const std::vector<bf16> first = x.d16.download();
    expect_matches_reference(x, c, from_bf16(first));
    x.d16.poison();
    ASSERT_EQ(run_case(lt.h, s, x, c), CUBLAS_STATUS_SUCCESS);
    const std::vector<bf16> second = x.d16.download();
    EXPECT_EQ(std::memcmp(first.data(), second.data(), first.size() * sizeof(bf16)), 0);
}

// What cuBLASLt refuses, it refuses with its status; nothing is written then.
TEST(EmuCublasLt, InvalidDescriptorsAreRefused) {
    Lt lt;
    const LtCase c{37, 29, 70, false, true, false, true, 1.0f, 0.0f, 0};
    LtData x;
    make_data(x, c, 400);
    cublasLtMatmulHeuristicResult_t r{};
    int returned = 0;
    auto heuristic = [&](LtSetup& s) {
        return cublasLtMatmulAlgoGetHeuristic(lt.h, s.desc, s.a, s.b, s.d, s.d, s.pref, 1, &r, &returned);
    };
    {  // a leading dimension smaller than the rows
        LtSetup s;
        make_setup(s, c, x.dbias.data());
        const int64_t bad_ld = 36;
        ASSERT_EQ(cublasLtMatrixLayoutSetAttribute(s.a, CUBLASLT_MATRIX_LAYOUT_LD, &bad_ld, sizeof(bad_ld)), 0);
        EXPECT_EQ(heuristic(s), CUBLAS_STATUS_INVALID_VALUE);
        const float one = 1, zero = 0;
        EXPECT_EQ(cublasLtMatmul(lt.h, s.desc, &one, x.da.data(), s.a, x.db.data(), s.b, &zero, x.d16.data(), s.d,
                                 x.d16.data(), s.d, nullptr, nullptr, 0, nullptr),
                  CUBLAS_STATUS_INVALID_VALUE);
    }
    {  // inner dimensions that do not match (B's k is 69)
        LtSetup s;
        make_setup(s, c, x.dbias.data());
        const uint64_t cols = 69;
        ASSERT_EQ(cublasLtMatrixLayoutSetAttribute(s.b, CUBLASLT_MATRIX_LAYOUT_COLS, &cols, sizeof(cols)), 0);
        EXPECT_EQ(heuristic(s), CUBLAS_STATUS_INVALID_VALUE);
    }
    {  // a transpose value that is no cublasOperation_t
        LtSetup s;
        make_setup(s, c, x.dbias.data());
        const int32_t bad = 7;
        ASSERT_EQ(cublasLtMatmulDescSetAttribute(s.desc, CUBLASLT_MATMUL_DESC_TRANSA, &bad, sizeof(bad)), 0);
        EXPECT_EQ(heuristic(s), CUBLAS_STATUS_INVALID_VALUE);
    }
    {  // the bias epilogue without its pointer: the heuristic finds an algorithm, the matmul refuses
        LtSetup s;
        make_setup(s, c, nullptr);
        EXPECT_EQ(run_case(lt.h, s, x, c), CUBLAS_STATUS_INVALID_VALUE);
    }
    {  // attribute sizes must match exactly (TRANSA is an int32_t)
        LtSetup s;
        make_setup(s, c, x.dbias.data());
        const int64_t op = CUBLAS_OP_T;
        EXPECT_EQ(cublasLtMatmulDescSetAttribute(s.desc, CUBLASLT_MATMUL_DESC_TRANSA, &op, sizeof(op)),
                  CUBLAS_STATUS_INVALID_VALUE);
        size_t needed = 0;
        EXPECT_EQ(cublasLtMatmulDescGetAttribute(s.desc, CUBLASLT_MATMUL_DESC_TRANSA, nullptr, 0, &needed), 0);
        EXPECT_EQ(needed, sizeof(int32_t));
    }
    {  // what the emulator does not model is refused as unsupported
        LtSetup s;
        make_setup(s, c, x.dbias.data());
        const uint32_t gelu = CUBLASLT_EPILOGUE_GELU_BIAS;
        ASSERT_EQ(cublasLtMatmulDescSetAttribute(s.desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &gelu, sizeof(gelu)), 0);
        EXPECT_EQ(heuristic(s), CUBLAS_STATUS_NOT_SUPPORTED);
        const void* scale = nullptr;
        EXPECT_EQ(cublasLtMatmulDescSetAttribute(s.desc, CUBLASLT_MATMUL_DESC_A_SCALE_POINTER, &scale, sizeof(scale)),
                  CUBLAS_STATUS_NOT_SUPPORTED);
    }
    {  // fp32 A/B with a bf16 output: no such kernel
        LtSetup s;
        make_setup(s, c, x.dbias.data());
        const uint32_t f32 = CUDA_R_32F;
        ASSERT_EQ(cublasLtMatrixLayoutSetAttribute(s.a, CUBLASLT_MATRIX_LAYOUT_TYPE, &f32, sizeof(f32)), 0);
        ASSERT_EQ(cublasLtMatrixLayoutSetAttribute(s.b, CUBLASLT_MATRIX_LAYOUT_TYPE, &f32, sizeof(f32)), 0);
        EXPECT_EQ(heuristic(s), CUBLAS_STATUS_NOT_SUPPORTED);
    }
    {  // an alignment preference below one element: no algorithm
        LtSetup s;
        make_setup(s, c, x.dbias.data(), 1);
        EXPECT_EQ(heuristic(s), CUBLAS_STATUS_NOT_SUPPORTED);
    }
    {  // an algorithm chosen for 16-byte-aligned pointers, run on a 2-byte-aligned A
        LtSetup s;
        make_setup(s, c, x.dbias.data(), 16);
        ASSERT_EQ(heuristic(s), CUBLAS_STATUS_SUCCESS);
        DeviceBuffer<bf16> shifted(x.a.size() + 1);
        const float one = 1, zero = 0;
        EXPECT_EQ(cublasLtMatmul(lt.h, s.desc, &one, shifted.data() + 1, s.a, x.db.data(), s.b, &zero, x.d16.data(),
                                 s.d, x.d16.data(), s.d, &r.algo, nullptr, 0, nullptr),
                  CUBLAS_STATUS_INVALID_VALUE);
    }
    for (float v : d_values(x, c)) ASSERT_TRUE(std::isnan(v)) << "a refused call wrote D";
    EXPECT_STREQ(cublasLtGetStatusName(CUBLAS_STATUS_NOT_SUPPORTED), "CUBLAS_STATUS_NOT_SUPPORTED");
    EXPECT_EQ(cublasLtMatmulAlgoGetHeuristic(nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, 1, &r,
                                             &returned),
              CUBLAS_STATUS_NOT_INITIALIZED);
}

TEST(EmuCublasLt, OutOfBoundsMatrixFaults) {
    Lt lt;
    const LtCase c{37, 29, 70, false, false, false, false, 1.0f, 0.0f, 0};
    LtData x;
    make_data(x, c, 500);
    LtSetup s;
    make_setup(s, c, nullptr);
    x.da = DeviceBuffer<bf16>(x.a.size() - 1);  // one element short
    EXPECT_THROW(run_case(lt.h, s, x, c), emu::Fault);
}

// Recorded into a graph, the matmul replays after its descriptors were destroyed, on new inputs.
TEST(EmuCublasLt, CapturedMatmulReplays) {
    Lt lt;
    const LtCase c{45, 21, 38, true, false, false, true, 1.0f, 0.0f, 0};
    LtData x;
    make_data(x, c, 600);
    cudaStream_t stream;
    ASSERT_EQ(cudaStreamCreate(&stream), cudaSuccess);
    cudaGraph_t graph;
    {
        LtSetup s;
        make_setup(s, c, x.dbias.data());
        ASSERT_EQ(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal), cudaSuccess);
        ASSERT_EQ(run_case(lt.h, s, x, c, stream), CUBLAS_STATUS_SUCCESS);
        ASSERT_EQ(cudaStreamEndCapture(stream, &graph), cudaSuccess);
    }
    for (float v : d_values(x, c)) ASSERT_TRUE(std::isnan(v)) << "capture ran the matmul";
    cudaGraphExec_t exec;
    ASSERT_EQ(cudaGraphInstantiate(&exec, graph, 0), cudaSuccess);
    x.a = round_bf16(random_vector(x.a.size(), 601));
    x.da.upload(to_device_bf16(x.a));
    ASSERT_EQ(cudaGraphLaunch(exec, stream), cudaSuccess);
    ASSERT_EQ(cudaStreamSynchronize(stream), cudaSuccess);
    expect_matches_reference(x, c, d_values(x, c));
    cudaGraphExecDestroy(exec);
    cudaGraphDestroy(graph);
    cudaStreamDestroy(stream);
}

// ==============================================================================================
// CUB, device level

// The bits CUB compares for a signed key: sign bit flipped, then [begin, end).
uint64_t digit_of(int32_t key, int begin, int end) {
    const uint32_t twiddled = uint32_t(key) ^ 0x80000000u;
    return (uint64_t(twiddled) >> begin) & ((uint64_t(1) << (end - begin)) - 1);
}

TEST(EmuCub, SortPairsMatchesStableSort) {
    std::mt19937 gen(7);
    struct Case {
        int n, lo, hi, begin, end;
    };
    const Case cases[] = {{1000, 0, 50, 0, 32},          // token ids with many duplicates
                          {777, -100000, 100000, 0, 32},  // signed keys
                          {513, 0, 1 << 20, 4, 12},       // a bit range: only bits 4..11 count
                          {1, 3, 3, 0, 32}};
    for (const Case& c : cases) {
        std::uniform_int_distribution<int> u(c.lo, c.hi);
        std::vector<int> keys(c.n), values(c.n);
        for (int i = 0; i < c.n; i++) keys[i] = u(gen), values[i] = i * 7 + 1;
        DeviceBuffer<int> dk(keys), dv(values), dk_out(c.n), dv_out(c.n);
        dk_out.poison();
        dv_out.poison();
        size_t bytes = 0;
        ASSERT_EQ(cub::DeviceRadixSort::SortPairs(nullptr, bytes, dk.data(), dk_out.data(), dv.data(), dv_out.data(),
                                                  c.n, c.begin, c.end),
                  cudaSuccess);
        ASSERT_GT(bytes, 0u);
        DeviceBuffer<char> temp(bytes);
        ASSERT_EQ(cub::DeviceRadixSort::SortPairs(temp.data(), bytes, dk.data(), dk_out.data(), dv.data(),
                                                  dv_out.data(), c.n, c.begin, c.end),
                  cudaSuccess);
        std::vector<int> order(c.n);
        std::iota(order.begin(), order.end(), 0);
        std::stable_sort(order.begin(), order.end(), [&](int a, int b) {
            return digit_of(keys[a], c.begin, c.end) < digit_of(keys[b], c.begin, c.end);
        });
        const std::vector<int> got_k = dk_out.download(), got_v = dv_out.download();
        for (int i = 0; i < c.n; i++) {
            ASSERT_EQ(got_k[i], keys[order[i]]) << "n=" << c.n << " at " << i;
            ASSERT_EQ(got_v[i], values[order[i]]) << "n=" << c.n << " at " << i;
        }
        EXPECT_EQ(dk.download(), keys) << "the input keys changed";
    }
}

TEST(EmuCub, TooLittleTemporaryStorageIsRefused) {
    const int n = 300;
    DeviceBuffer<int> dk(std::vector<int>(n, 5)), dv(std::vector<int>(n, 1)), dk_out(n), dv_out(n);
    dk_out.poison();
    size_t bytes = 0;
    ASSERT_EQ(cub::DeviceRadixSort::SortPairs(nullptr, bytes, dk.data(), dk_out.data(), dv.data(), dv_out.data(), n),
              cudaSuccess);
    DeviceBuffer<char> temp(bytes);
    size_t fewer = bytes - 1;
    EXPECT_EQ(cub::DeviceRadixSort::SortPairs(temp.data(), fewer, dk.data(), dk_out.data(), dv.data(), dv_out.data(),
                                              n),
              cudaErrorInvalidValue);
    for (int v : dk_out.download()) ASSERT_EQ(v, -1) << "a refused sort wrote its output";

    DeviceBuffer<float> g(random_vector(n, 3));
    DeviceBuffer<double> out(1);
    size_t rbytes = 0;
    ASSERT_EQ(cub::DeviceReduce::Reduce(nullptr, rbytes, g.data(), out.data(), n, cub::Sum(), 0.0), cudaSuccess);
    ASSERT_GT(rbytes, 0u);
    DeviceBuffer<char> rtemp(rbytes);
    size_t rfewer = rbytes / 2;
    EXPECT_EQ(cub::DeviceReduce::Reduce(rtemp.data(), rfewer, g.data(), out.data(), n, cub::Sum(), 0.0),
              cudaErrorInvalidValue);
}

struct SquareInDouble {
    __device__ double operator()(float x) const { return double(x) * double(x); }
};

TEST(EmuCub, TransformReduceMatchesDoubleSum) {
    for (int n : {1, 4095, 4096, 4097, 100003}) {
        const std::vector<float> g = random_vector(n, 11 + n, 3.0f);
        long double ref = 0.25L;  // init; long double keeps the reference's own error far below the tolerance
        for (float x : g) ref += (long double)x * x;
        DeviceBuffer<float> dg(g);
        DeviceBuffer<double> out(1);
        out.poison();
        size_t bytes = 0;
        ASSERT_EQ(cub::DeviceReduce::TransformReduce(nullptr, bytes, dg.data(), out.data(), size_t(n),
                                                     ::cuda::std::plus<double>{}, SquareInDouble{}, 0.25),
                  cudaSuccess);
        DeviceBuffer<char> temp(bytes);
        ASSERT_EQ(cub::DeviceReduce::TransformReduce(temp.data(), bytes, dg.data(), out.data(), size_t(n),
                                                     ::cuda::std::plus<double>{}, SquareInDouble{}, 0.25),
                  cudaSuccess);
        EXPECT_NEAR(out.download()[0], double(ref), 1e-12 * double(ref)) << "n=" << n;
    }
}

// Segments with gaps, empty and reversed ones; keys < 2^63 with duplicates, as the sampler's.
TEST(EmuCub, SegmentedSortDescendingWithDoubleBuffer) {
    std::mt19937_64 gen(9);
    const int n = 5000;
    const std::vector<int> begins = {0, 700, 700, 2000, 4000, 4990};
    const std::vector<int> ends = {650, 700, 1999, 1500, 4990, 5000};  // [700,700) empty, [2000,1500) empty
    for (int end_bit : {63, 60}) {  // 11 passes of 6 bits (result in the other buffer), or 10
        std::vector<uint64_t> keys(n);
        for (uint64_t& k : keys) k = (gen() >> 1) % (end_bit == 63 ? 1000 : ~0ull) + 1;  // duplicates
        const uint64_t poison = ~0ull;
        DeviceBuffer<uint64_t> a(keys), b(std::vector<uint64_t>(n, poison));
        DeviceBuffer<int> db(begins), de(ends);
        cub::DoubleBuffer<uint64_t> buf(a.data(), b.data());
        size_t bytes = 0;
        ASSERT_EQ(cub::DeviceSegmentedRadixSort::SortKeysDescending(nullptr, bytes, buf, n, int(begins.size()),
                                                                    (int*)nullptr, (int*)nullptr, 0, end_bit),
                  cudaSuccess);
        ASSERT_GT(bytes, 0u);
        DeviceBuffer<char> temp(bytes);
        ASSERT_EQ(cub::DeviceSegmentedRadixSort::SortKeysDescending(temp.data(), bytes, buf, n, int(begins.size()),
                                                                    db.data(), de.data(), 0, end_bit),
                  cudaSuccess);
        const bool in_alternate = end_bit == 63;
        EXPECT_EQ(buf.Current(), in_alternate ? b.data() : a.data()) << "end_bit " << end_bit;
        std::vector<uint64_t> expect = in_alternate ? std::vector<uint64_t>(n, poison) : keys;
        for (size_t s = 0; s < begins.size(); s++) {
            if (ends[s] <= begins[s]) continue;
            std::vector<uint64_t> seg(keys.begin() + begins[s], keys.begin() + ends[s]);
            std::stable_sort(seg.begin(), seg.end(), [&](uint64_t x, uint64_t y) {
                const uint64_t mask = (uint64_t(1) << end_bit) - 1;
                return (x & mask) > (y & mask);
            });
            std::copy(seg.begin(), seg.end(), expect.begin() + begins[s]);
        }
        const std::vector<uint64_t> got = in_alternate ? b.download() : a.download();
        ASSERT_EQ(got.size(), expect.size());
        for (int i = 0; i < n; i++) ASSERT_EQ(got[i], expect[i]) << "end_bit " << end_bit << " at " << i;
    }
}

// The other forms: descending pairs and keys (stable), segmented pointer form (input unchanged),
// DoubleBuffer edge cases (no bits to sort; 1-byte keys sort in 5-bit digits: 2 passes, even).
TEST(EmuCub, DescendingAndPointerForms) {
    std::mt19937 gen(12);
    std::uniform_int_distribution<int> u(-40, 40);
    const int n = 600;
    std::vector<int> keys(n), values(n);
    for (int i = 0; i < n; i++) keys[i] = u(gen), values[i] = i;
    std::vector<int> order(n);
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return keys[a] > keys[b]; });

    DeviceBuffer<int> dk(keys), dv(values), dk_out(n), dv_out(n), dk_only(n);
    size_t bytes = 0;
    ASSERT_EQ(cub::DeviceRadixSort::SortPairsDescending(nullptr, bytes, dk.data(), dk_out.data(), dv.data(),
                                                        dv_out.data(), n),
              cudaSuccess);
    DeviceBuffer<char> temp(bytes);
    ASSERT_EQ(cub::DeviceRadixSort::SortPairsDescending(temp.data(), bytes, dk.data(), dk_out.data(), dv.data(),
                                                        dv_out.data(), n),
              cudaSuccess);
    size_t key_bytes = 0;
    ASSERT_EQ(cub::DeviceRadixSort::SortKeysDescending(nullptr, key_bytes, dk.data(), dk_only.data(), n), cudaSuccess);
    EXPECT_LT(key_bytes, bytes) << "keys only need no value buffer";
    ASSERT_EQ(cub::DeviceRadixSort::SortKeysDescending(temp.data(), key_bytes, dk.data(), dk_only.data(), n),
              cudaSuccess);
    const std::vector<int> got_k = dk_out.download(), got_v = dv_out.download(), got_only = dk_only.download();
    for (int i = 0; i < n; i++) {
        ASSERT_EQ(got_v[i], order[i]) << i;
        ASSERT_EQ(got_k[i], keys[order[i]]) << i;
        ASSERT_EQ(got_only[i], keys[order[i]]) << i;
    }

    // segmented, pointer form, ascending: two segments and a gap that keeps its poison
    const std::vector<int> begins = {0, 350}, ends = {300, 600};
    DeviceBuffer<int> db(begins), de(ends), seg_out(n);
    seg_out.poison();
    size_t seg_bytes = 0;
    ASSERT_EQ(cub::DeviceSegmentedRadixSort::SortKeys(nullptr, seg_bytes, dk.data(), seg_out.data(), n, 2, db.data(),
                                                      de.data()),
              cudaSuccess);
    DeviceBuffer<char> seg_temp(seg_bytes);
    ASSERT_EQ(cub::DeviceSegmentedRadixSort::SortKeys(seg_temp.data(), seg_bytes, dk.data(), seg_out.data(), n, 2,
                                                      db.data(), de.data()),
              cudaSuccess);
    std::vector<int> expect(n, -1);
    for (int s = 0; s < 2; s++) {
        std::vector<int> seg(keys.begin() + begins[s], keys.begin() + ends[s]);
        std::sort(seg.begin(), seg.end());
        std::copy(seg.begin(), seg.end(), expect.begin() + begins[s]);
    }
    EXPECT_EQ(seg_out.download(), expect);
    EXPECT_EQ(dk.download(), keys) << "the pointer form changed its input";

    // DoubleBuffer: nothing to sort leaves the selector alone; 8-bit keys take two passes
    std::vector<uint8_t> small(n);
    for (int i = 0; i < n; i++) small[i] = uint8_t(keys[i] + 40);
    DeviceBuffer<uint8_t> sa(small), sb(n);
    cub::DoubleBuffer<uint8_t> buf(sa.data(), sb.data());
    const std::vector<int> one_begin = {0}, one_end = {n};
    DeviceBuffer<int> ob(one_begin), oe(one_end);
    size_t db_bytes = 0;
    ASSERT_EQ(cub::DeviceSegmentedRadixSort::SortKeys(nullptr, db_bytes, buf, n, 1, ob.data(), oe.data(), 3, 3),
              cudaSuccess);
    DeviceBuffer<char> db_temp(std::max<size_t>(db_bytes, 256));
    ASSERT_EQ(cub::DeviceSegmentedRadixSort::SortKeys(db_temp.data(), db_bytes, buf, n, 1, ob.data(), oe.data(), 3, 3),
              cudaSuccess);
    EXPECT_EQ(buf.Current(), sa.data());
    db_bytes = 0;
    ASSERT_EQ(cub::DeviceSegmentedRadixSort::SortKeys(nullptr, db_bytes, buf, n, 1, ob.data(), oe.data()), cudaSuccess);
    ASSERT_LE(db_bytes, 256u);
    db_bytes = 256;
    ASSERT_EQ(cub::DeviceSegmentedRadixSort::SortKeys(db_temp.data(), db_bytes, buf, n, 1, ob.data(), oe.data()),
              cudaSuccess);
    EXPECT_EQ(buf.Current(), sa.data()) << "two passes end in the buffer they started from";
    std::vector<uint8_t> sorted_small = small;
    std::sort(sorted_small.begin(), sorted_small.end());
    EXPECT_EQ(sa.download(), sorted_small);
}

// A sort recorded into a graph replays on the inputs present at replay time.
TEST(EmuCub, CapturedSortReplays) {
    const int n = 100;
    std::vector<int> keys(n), values(n);
    for (int i = 0; i < n; i++) keys[i] = (i * 37) % 11, values[i] = i;
    DeviceBuffer<int> dk(n), dv(values), dk_out(n), dv_out(n);
    size_t bytes = 0;
    ASSERT_EQ(cub::DeviceRadixSort::SortPairs(nullptr, bytes, dk.data(), dk_out.data(), dv.data(), dv_out.data(), n),
              cudaSuccess);
    DeviceBuffer<char> temp(bytes);
    cudaStream_t stream;
    ASSERT_EQ(cudaStreamCreate(&stream), cudaSuccess);
    cudaGraph_t graph;
    ASSERT_EQ(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal), cudaSuccess);
    ASSERT_EQ(cub::DeviceRadixSort::SortPairs(temp.data(), bytes, dk.data(), dk_out.data(), dv.data(), dv_out.data(),
                                              n, 0, 32, stream),
              cudaSuccess);
    ASSERT_EQ(cudaStreamEndCapture(stream, &graph), cudaSuccess);
    dk.upload(keys);
    cudaGraphExec_t exec;
    ASSERT_EQ(cudaGraphInstantiate(&exec, graph, 0), cudaSuccess);
    ASSERT_EQ(cudaGraphLaunch(exec, stream), cudaSuccess);
    ASSERT_EQ(cudaStreamSynchronize(stream), cudaSuccess);
    const std::vector<int> got = dk_out.download(), got_v = dv_out.download();
    for (int i = 1; i < n; i++) {
        ASSERT_LE(got[i - 1], got[i]);
        if (got[i - 1] == got[i]) {
            ASSERT_LT(got_v[i - 1], got_v[i]) << "not stable";
        }
    }
    cudaGraphExecDestroy(exec);
    cudaGraphDestroy(graph);
    cudaStreamDestroy(stream);
}

// ==============================================================================================
// CUB, block level

// A non-associative operator: the result reveals the order in which values were combined.
struct Skewed {
    __device__ double operator()(double a, double b) const { return a * 1.0009765625 + b; }
};

// CUB's BlockReduce order, written as a recursion: a warp's value is a balanced tree over its lanes
// (halves of power-of-two size, missing lanes skipped), then warps are folded left to right.
double tree(const double* x, int lo, int size, int count) {
    if (size == 1) return x[lo];
    const int half = size / 2;
    if (lo + half >= count) return tree(x, lo, half, count);
    return Skewed()(tree(x, lo, half, count), tree(x, lo + half, half, count));
}
double cub_order_reduce(const std::vector<double>& x) {
    const int n = int(x.size());
    double acc = 0;
    for (int w = 0; w * 32 < n; w++) {
        const double warp = tree(x.data(), w * 32, 32, n);
        acc = w == 0 ? warp : Skewed()(acc, warp);
    }
    return acc;
}

template <int THREADS>
__global__ void block_reduce_kernel(double* out, const double* in) {
    using Reduce = cub::BlockReduce<double, THREADS>;
    __shared__ typename Reduce::TempStorage tmp;
    const double skewed = Reduce(tmp).Reduce(in[blockIdx.x * THREADS + threadIdx.x], Skewed());
    __syncthreads();
    const double sum = Reduce(tmp).Sum(in[blockIdx.x * THREADS + threadIdx.x]);
    if (threadIdx.x == 0) out[blockIdx.x * 2] = skewed, out[blockIdx.x * 2 + 1] = sum;
}

template <int THREADS>
void check_block_reduce() {
    const int blocks = 3;
    const std::vector<float> r = random_vector(blocks * THREADS, THREADS);
    const std::vector<double> in(r.begin(), r.end());
    DeviceBuffer<double> din(in), dout(blocks * 2);
    std::vector<double> got;
    expect_schedule_independent(
        [&] {
            dout.poison();
            LAUNCH_KERNEL(block_reduce_kernel<THREADS>, blocks, THREADS, 0, nullptr, dout.data(), din.data());
            got = dout.download();
            return got;
        },
        "BlockReduce " + std::to_string(THREADS));
    for (int b = 0; b < blocks; b++) {
        const std::vector<double> x(in.begin() + b * THREADS, in.begin() + (b + 1) * THREADS);
        EXPECT_EQ(got[b * 2], cub_order_reduce(x)) << THREADS << " threads, block " << b << ": not CUB's order";
        double sum = 0;
        for (double v : x) sum += v;
        EXPECT_NEAR(got[b * 2 + 1], sum, 1e-12) << THREADS << " threads, block " << b;
    }
}

TEST(EmuCubBlock, ReduceFollowsCubOrder) {
    check_block_reduce<512>();
    check_block_reduce<96>();
    check_block_reduce<80>();  // a partial last warp
}

TEST(EmuCubBlock, ReduceRefusesWrongBlockSize) {
    DeviceBuffer<double> din(std::vector<double>(512, 1.0)), dout(2);
    EXPECT_THROW(LAUNCH_KERNEL(block_reduce_kernel<512>, 1, 256, 0, nullptr, dout.data(), din.data()),
                 std::exception);
}

__global__ void block_scan_kernel(double* prefix, double* total, const int* counts) {
    using Scan = cub::BlockScan<double, 256>;
    __shared__ typename Scan::TempStorage tmp;
    double before, all;
    Scan(tmp).ExclusiveSum(double(counts[threadIdx.x]), before, all);
    prefix[threadIdx.x] = before;
    total[threadIdx.x] = all;
}

TEST(EmuCubBlock, ExclusiveSumAndTotal) {
    std::vector<int> counts(256);
    for (int i = 0; i < 256; i++) counts[i] = (i * 7919) % 9 + 1;
    DeviceBuffer<int> dc(counts);
    DeviceBuffer<double> prefix(256), total(256);
    expect_schedule_independent(
        [&] {
            prefix.poison();
            total.poison();
            LAUNCH_KERNEL(block_scan_kernel, 1, 256, 0, nullptr, prefix.data(), total.data(), dc.data());
            std::vector<double> both = prefix.download(), t = total.download();
            both.insert(both.end(), t.begin(), t.end());
            return both;
        },
        "BlockScan");
    const std::vector<double> p = prefix.download(), t = total.download();
    double running = 0;
    for (int i = 0; i < 256; i++) {
        ASSERT_EQ(p[i], running) << i;
        running += counts[i];
    }
    for (int i = 0; i < 256; i++) ASSERT_EQ(t[i], running) << i;
}

constexpr int kSortThreads = 128, kSortItems = 8;

// Keys only, descending (the sampler's call) or ascending, blocked or striped output.
__global__ void block_sort_keys_kernel(uint64_t* out, const uint64_t* in, int end_bit, bool descending, bool striped) {
    using Sort = cub::BlockRadixSort<uint64_t, kSortThreads, kSortItems>;
    __shared__ typename Sort::TempStorage tmp;
    uint64_t keys[kSortItems];
    for (int j = 0; j < kSortItems; j++) keys[j] = in[threadIdx.x * kSortItems + j];
    if (descending && striped) Sort(tmp).SortDescendingBlockedToStriped(keys, 0, end_bit);
    if (descending && !striped) Sort(tmp).SortDescending(keys, 0, end_bit);
    if (!descending && striped) Sort(tmp).SortBlockedToStriped(keys, 0, end_bit);
    if (!descending && !striped) Sort(tmp).Sort(keys, 0, end_bit);
    for (int j = 0; j < kSortItems; j++) {
        const int rank = striped ? j * kSortThreads + threadIdx.x : threadIdx.x * kSortItems + j;
        out[rank] = keys[j];
    }
}

// Pairs ascending over a bit range: stability shows in the values.
__global__ void block_sort_pairs_kernel(int* out_keys, int* out_values, const int* in, int begin_bit, int end_bit) {
    using Sort = cub::BlockRadixSort<int, 64, 4, int>;
    __shared__ typename Sort::TempStorage tmp;
    int keys[4], values[4];
    for (int j = 0; j < 4; j++) keys[j] = in[threadIdx.x * 4 + j], values[j] = threadIdx.x * 4 + j;
    Sort(tmp).Sort(keys, values, begin_bit, end_bit);
    for (int j = 0; j < 4; j++) out_keys[threadIdx.x * 4 + j] = keys[j], out_values[threadIdx.x * 4 + j] = values[j];
}

TEST(EmuCubBlock, RadixSortKeys) {
    const int n = kSortThreads * kSortItems;
    std::mt19937_64 gen(5);
    std::vector<uint64_t> keys(n);
    for (uint64_t& k : keys) k = (gen() >> 1) % 300 + 1;  // duplicates
    keys[3] = 0;                                           // a dropped token's key
    std::vector<uint64_t> ascending = keys;
    std::sort(ascending.begin(), ascending.end());
    const std::vector<uint64_t> descending(ascending.rbegin(), ascending.rend());
    DeviceBuffer<uint64_t> din(keys), dout(n);
    for (bool desc : {true, false}) {
        for (bool striped : {false, true}) {
            const std::string what = std::string(desc ? "descending " : "ascending ") + (striped ? "striped" : "blocked");
            std::vector<uint64_t> got;
            expect_schedule_independent(
                [&] {
                    dout.poison();
                    LAUNCH_KERNEL(block_sort_keys_kernel, 1, kSortThreads, 0, nullptr, dout.data(), din.data(), 63,
                                  desc, striped);
                    got = dout.download();
                    return got;
                },
                "BlockRadixSort " + what);
            EXPECT_EQ(got, desc ? descending : ascending) << what;
        }
    }
}

TEST(EmuCubBlock, RadixSortPairsStableOverBitRange) {
    const int n = 256;
    std::mt19937 gen(6);
    std::uniform_int_distribution<int> u(-5000, 5000);
    std::vector<int> keys(n);
    for (int& k : keys) k = u(gen);
    DeviceBuffer<int> din(keys), dk(n), dv(n);
    dk.poison();
    dv.poison();
    LAUNCH_KERNEL(block_sort_pairs_kernel, 1, 64, 0, nullptr, dk.data(), dv.data(), din.data(), 3, 11);
    std::vector<int> order(n);
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(),
                     [&](int a, int b) { return digit_of(keys[a], 3, 11) < digit_of(keys[b], 3, 11); });
    const std::vector<int> got_k = dk.download(), got_v = dv.download();
    for (int i = 0; i < n; i++) {
        ASSERT_EQ(got_v[i], order[i]) << i;
        ASSERT_EQ(got_k[i], keys[order[i]]) << i;
    }
}

}  // namespace
#endif  // RUSCA_EMU
