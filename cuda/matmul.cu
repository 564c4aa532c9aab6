// matmul.cu: the bf16 matmuls (linear layers, LM head) on cuBLASLt, with fp32 math.
//
// Why cuBLASLt: it is the vendor's tuned Hopper GEMM (wgmma, TMA) and it fuses the bias add into
// the GEMM's epilogue, so a linear layer is one kernel and its output is rounded to bf16 once.
// We keep one handle per device and one 32 MiB workspace per (device, stream): work queued on two
// streams (the trainer's and an inference engine's) may run at once, and a shared workspace would
// be scribbled on by both. We cache the algorithm that
// cublasLtMatmulAlgoGetHeuristic picks per (shape, transposes, leading dims, output type,
// epilogue, pointer alignments): the heuristic query costs tens of microseconds, a cache hit
// costs a map lookup.
//
// Layouts. rusca stores matrices row-major (PyTorch's layout); cuBLASLt is column-major. A row-major
// [R, C] matrix with row stride ld is the same bytes as a column-major [C, R] matrix with leading
// dimension ld, i.e. its transpose. So the row-major product
//     D[M, N] = op(A)[M, K] @ op(B)[K, N]
// is computed as the column-major product of the transposes
//     D^T[N, M] = op(B)^T[N, K] @ op(A)^T[K, M]
// i.e. cuBLASLt's "A" is our B and its "B" is our A, with m = N, n = M, k = K; our transposes
// carry over (a row-major operand that is stored transposed is a column-major one that is not).
// Example, linear_forward: out[N, OC] = inp[N, C] @ W[OC, C]^T. The bytes of W are a column-major
// [C, OC] matrix, of inp a column-major [C, N] one, of out a column-major [OC, N] one, and
// out^T = W @ inp^T there: cuBLASLt gets A = W with op T (lda = C), B = inp with op N (ldb = C),
// D [OC, N] (ldd = OC), and its bias epilogue (one value per row of D, m = OC of them) is exactly
// the per-output-feature bias.
//
// Accumulation (the CPU twin's +=): dinp and dW use beta = 1 with C = D (cuBLASLt allows in-place):
// for bf16 dinp the old value is added in fp32 and the sum rounded once; dW is an fp32 C/D.
// dbias uses our own column-sum kernel (deterministic, and +=; the BGRADB epilogue overwrites).
//
// Alignment: cuBLASLt's heuristic assumes 256-byte-aligned pointers unless told otherwise, and an
// algorithm chosen under that assumption may fault on a less aligned pointer (e.g. a row offset into
// an activation). We pass each pointer's actual alignment as a heuristic preference (and as part of
// the cache key). When cuBLASLt has no algorithm at all for a layout, gemm() falls back to a plain
// (slow, correct) kernel and says so on stderr (once per layout).
#include "cuda/matmul.cuh"

#include <cublasLt.h>

#include <array>
#include <cstdint>
#include <cstdio>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "cuda/common.cuh"
#include "cuda/launch.cuh"
#include "host/error.h"

namespace rusca::cuda {
namespace {

using bf16 = __nv_bfloat16;

constexpr size_t kWorkspaceBytes = size_t(32) << 20;  // what NVIDIA recommends for Hopper

void check_cublas(cublasStatus_t st, const char* file, int line) {
    if (st == CUBLAS_STATUS_SUCCESS) return;
    throw Error(std::string(file) + ":" + std::to_string(line) + ": cuBLASLt error " +
                cublasLtGetStatusName(st) + ": " + cublasLtGetStatusString(st));
}
#define CUBLAS_CHECK(call) check_cublas((call), __FILE__, __LINE__)

// ----------------------------------------------------------------------------------------------
// kernels

// dbias[o] += sum_n dout[n, o]        dout [N, OC] bf16
// A block owns 32 columns; thread (x, y) sums rows y, y + 32, y + 64, ... of column x in order
// (a warp reads 32 adjacent columns of one row: coalesced), then the 32 partial sums of a column are
// added in a fixed tree. Same order on every run: deterministic.
__global__ void column_sum_kernel(float* dbias, const bf16* dout, int N, int OC) {
    __shared__ float part[32][33];  // +1: no bank conflicts
    const int x = threadIdx.x, y = threadIdx.y, o = blockIdx.x * 32 + x;
    float s = 0.0f;
    if (o < OC)
        for (int n = y; n < N; n += 32) s += __bfloat162float(dout[(size_t)n * OC + o]);
    part[y][x] = s;
    __syncthreads();
    for (int w = 16; w >= 1; w /= 2) {
        if (y < w) part[y][x] += part[y + w][x];
        __syncthreads();
    }
    if (y == 0 && o < OC) dbias[o] += part[0][x];
}

// gemm_fallback: one thread per output D[i, j] (x = column, so a warp writes a row segment),
// an fp32 sum over k in order. Any leading dimension, any alignment; slow.
__global__ void gemm_fallback_kernel(void* D, bool d_fp32, int ldd, MatRef A, MatRef B, int M, int N,
                                     int K, float alpha, float beta, const bf16* bias) {
    const int j = blockIdx.x * blockDim.x + threadIdx.x, i = blockIdx.y * blockDim.y + threadIdx.y;
    if (i >= M || j >= N) return;
    float acc = 0.0f;
    for (int k = 0; k < K; k++) {
        const bf16 a = A.trans ? A.p[(size_t)k * A.ld + i] : A.p[(size_t)i * A.ld + k];
        const bf16 b = B.trans ? B.p[(size_t)j * B.ld + k] : B.p[(size_t)k * B.ld + j];
        acc += __bfloat162float(a) * __bfloat162float(b);
    }
    float v = alpha * acc;
    const size_t at = (size_t)i * ldd + j;
    if (d_fp32) {
        float* d = static_cast<float*>(D);
        if (beta != 0.0f) v += beta * d[at];
        d[at] = v;
    } else {
        bf16* d = static_cast<bf16*>(D);
        if (beta != 0.0f) v += beta * __bfloat162float(d[at]);
        if (bias) v += __bfloat162float(bias[j]);
        d[at] = __float2bfloat16(v);
    }
}

// ----------------------------------------------------------------------------------------------
// the cuBLASLt context

// A cuBLASLt descriptor that destroys itself.
template <typename T, cublasStatus_t (*Destroy)(T)>
struct LtObject {
    T h = nullptr;
    LtObject() = default;
    LtObject(const LtObject&) = delete;
    LtObject& operator=(const LtObject&) = delete;
    ~LtObject() {
        if (h) Destroy(h);  // not checked: destructors must not throw
    }
};
using MatmulDesc = LtObject<cublasLtMatmulDesc_t, cublasLtMatmulDescDestroy>;
using Layout = LtObject<cublasLtMatrixLayout_t, cublasLtMatrixLayoutDestroy>;
using Preference = LtObject<cublasLtMatmulPreference_t, cublasLtMatmulPreferenceDestroy>;

// Everything that can change cuBLASLt's choice of algorithm.
using AlgoKey = std::array<int64_t, 15>;
struct AlgoChoice {
    bool found = false;  // false: cuBLASLt offered none, use the fallback kernel
    cublasLtMatmulAlgo_t algo{};
};

struct Context {
    cublasLtHandle_t handle = nullptr;
    std::map<cudaStream_t, void*> workspaces;  // one per stream that has run a GEMM
    std::map<AlgoKey, AlgoChoice> algos;

    void* workspace(cudaStream_t stream) {
        void*& w = workspaces[stream];
        if (!w) CUDA_CHECK(cudaMalloc(&w, kWorkspaceBytes));
        return w;
    }
};

std::mutex g_mutex;  // guards the contexts and their caches (and serializes host-side enqueueing)

// The current device's context, created on first use. Never freed: it lives until the process
// exits (freeing in a static destructor would race the CUDA runtime's own teardown).
Context& context() {
    static std::map<int, Context*> contexts;
    int device = 0;
    CUDA_CHECK(cudaGetDevice(&device));
    Context*& c = contexts[device];
    if (!c) {
        auto fresh = std::make_unique<Context>();
        CUBLAS_CHECK(cublasLtCreate(&fresh->handle));
        c = fresh.release();
    }
    return *c;
}

// The largest power of two (<= 256) that divides the address.
uint32_t alignment(const void* p) {
    const uintptr_t a = reinterpret_cast<uintptr_t>(p);
    uint32_t al = 256;
    while (al > 1 && a % al != 0) al /= 2;
    return al;
}

template <typename T>
void set_attr(cublasLtMatmulDesc_t d, cublasLtMatmulDescAttributes_t attr, const T& value) {
    CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(d, attr, &value, sizeof(value)));
}
template <typename T>
void set_pref(cublasLtMatmulPreference_t p, cublasLtMatmulPreferenceAttributes_t attr, const T& value) {
    CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(p, attr, &value, sizeof(value)));
}

std::string shape_str(int M, int N, int K) {
    return "M=" + std::to_string(M) + " N=" + std::to_string(N) + " K=" + std::to_string(K);
}

void check_gemm_args(const void* D, bool d_fp32, int ldd, const MatRef& A, const MatRef& B, int M,
                     int N, int K, const bf16* bias) {
    const std::string at = "gemm(" + shape_str(M, N, K) + "): ";
    check(M >= 0 && N >= 0 && K > 0, at + "need M, N >= 0 and K > 0");
    check(ldd >= N, at + "ldd = " + std::to_string(ldd) + " < N");
    // stored shapes: A is [M, K] or (trans) [K, M]; B is [K, N] or (trans) [N, K]
    check(A.ld >= (A.trans ? M : K), at + "A's row stride " + std::to_string(A.ld) + " is too small");
    check(B.ld >= (B.trans ? K : N), at + "B's row stride " + std::to_string(B.ld) + " is too small");
    check(!bias || !d_fp32, at + "a bias needs a bf16 output");
    check(M == 0 || N == 0 || (D && A.p && B.p), at + "null matrix pointer");
}

}  // namespace

// ----------------------------------------------------------------------------------------------
// launchers

void gemm_fallback(void* D, bool d_fp32, int ldd, MatRef A, MatRef B, int M, int N, int K,
                   float alpha, float beta, const bf16* bias, cudaStream_t stream) {
    check_gemm_args(D, d_fp32, ldd, A, B, M, N, K, bias);
    if (M == 0 || N == 0) return;
    const dim3 block(16, 16), grid(ceil_div(N, 16), ceil_div(M, 16));
    check(grid.y <= 65535, "gemm_fallback: M = " + std::to_string(M) + " is too large");
    LAUNCH_KERNEL(gemm_fallback_kernel, grid, block, 0, stream, D, d_fp32, ldd, A, B, M, N, K, alpha, beta, bias);
}

void gemm(void* D, bool d_fp32, int ldd, MatRef A, MatRef B, int M, int N, int K, float alpha,
          float beta, const bf16* bias, cudaStream_t stream) {
    check_gemm_args(D, d_fp32, ldd, A, B, M, N, K, bias);
    if (M == 0 || N == 0) return;
    const cudaDataType_t d_type = d_fp32 ? CUDA_R_32F : CUDA_R_16BF;
    // Column-major view (see the top of the file): cuBLASLt's A = our B, its B = our A.
    const cublasOperation_t op_a = B.trans ? CUBLAS_OP_T : CUBLAS_OP_N;
    const cublasOperation_t op_b = A.trans ? CUBLAS_OP_T : CUBLAS_OP_N;

    std::lock_guard<std::mutex> lock(g_mutex);
    Context& ctx = context();

    MatmulDesc desc;
    CUBLAS_CHECK(cublasLtMatmulDescCreate(&desc.h, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    set_attr(desc.h, CUBLASLT_MATMUL_DESC_TRANSA, op_a);
    set_attr(desc.h, CUBLASLT_MATMUL_DESC_TRANSB, op_b);
    if (bias) {  // bias vector type defaults to D's type (bf16)
        set_attr(desc.h, CUBLASLT_MATMUL_DESC_EPILOGUE, (uint32_t)CUBLASLT_EPILOGUE_BIAS);
        set_attr(desc.h, CUBLASLT_MATMUL_DESC_BIAS_POINTER, bias);
    }
    // Stored (pre-op) column-major shapes: rows x cols with leading dimension ld.
    Layout la, lb, ld;
    CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&la.h, CUDA_R_16BF, B.trans ? K : N, B.trans ? N : K, B.ld));
    CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&lb.h, CUDA_R_16BF, A.trans ? M : K, A.trans ? K : M, A.ld));
    CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&ld.h, d_type, N, M, ldd));

    int device = 0;
    CUDA_CHECK(cudaGetDevice(&device));
    const uint32_t align_a = alignment(B.p), align_b = alignment(A.p), align_d = alignment(D);
    const uint32_t align_bias = bias ? alignment(bias) : 256;
    const AlgoKey key = {device,  M,        N,       K,       A.trans, B.trans,  A.ld,      B.ld,
                         ldd,     d_fp32,   !!bias,  align_a, align_b, align_d, align_bias};
    auto it = ctx.algos.find(key);
    if (it == ctx.algos.end()) {
        Preference pref;
        CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref.h));
        set_pref(pref.h, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, (uint64_t)kWorkspaceBytes);
        set_pref(pref.h, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, align_a);
        set_pref(pref.h, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, align_b);
        set_pref(pref.h, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, align_d);
        set_pref(pref.h, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, align_d);
        cublasLtMatmulHeuristicResult_t result{};
        int returned = 0;
        const cublasStatus_t st = cublasLtMatmulAlgoGetHeuristic(ctx.handle, desc.h, la.h, lb.h, ld.h, ld.h,
                                                                 pref.h, 1, &result, &returned);
        AlgoChoice choice;
        if (st == CUBLAS_STATUS_SUCCESS && returned > 0 && result.state == CUBLAS_STATUS_SUCCESS) {
            choice.found = true;
            choice.algo = result.algo;
        } else if (st != CUBLAS_STATUS_NOT_SUPPORTED) {
            CUBLAS_CHECK(st);  // a real error (bad descriptor, ...), not just "no algorithm"
        }
        it = ctx.algos.emplace(key, choice).first;
        if (!choice.found)
            std::fprintf(stderr, "rusca: warning: cuBLASLt has no algorithm for gemm %s (row strides "
                         "%d %d %d, alignments %u %u %u): using the slow fallback kernel\n",
                         shape_str(M, N, K).c_str(), A.ld, B.ld, ldd, align_b, align_a, align_d);
    }
    if (!it->second.found) {
        gemm_fallback(D, d_fp32, ldd, A, B, M, N, K, alpha, beta, bias, stream);
        return;
    }
    // C = D (in place; beta = 0 does not read it).
    CUBLAS_CHECK(cublasLtMatmul(ctx.handle, desc.h, &alpha, B.p, la.h, A.p, lb.h, &beta, D, ld.h, D, ld.h,
                                &it->second.algo, ctx.workspace(stream), kWorkspaceBytes, stream));
}

void release_matmul_workspace(cudaStream_t stream) {
    std::lock_guard<std::mutex> lock(g_mutex);
    Context& ctx = context();
    auto it = ctx.workspaces.find(stream);
    if (it == ctx.workspaces.end()) return;
    CUDA_CHECK(cudaStreamSynchronize(stream));
    CUDA_CHECK(cudaFree(it->second));
    ctx.workspaces.erase(it);
}

void linear_forward(bf16* out, const bf16* inp, const bf16* W, const bf16* bias, int N, int C, int OC,
                    cudaStream_t stream) {
    check(N >= 0 && C > 0 && OC > 0, "linear_forward: bad sizes N=" + std::to_string(N) +
                                         " C=" + std::to_string(C) + " OC=" + std::to_string(OC));
    // out[N, OC] = inp[N, C] @ (W[OC, C])^T
    gemm(out, false, OC, MatRef{inp, C, false}, MatRef{W, C, true}, N, OC, C, 1.0f, 0.0f, bias, stream);
}

void linear_backward(bf16* dinp, float* dW, float* dbias, const bf16* dout, const bf16* inp,
                     const bf16* W, int N, int C, int OC, cudaStream_t stream) {
    check(N >= 0 && C > 0 && OC > 0, "linear_backward: bad sizes N=" + std::to_string(N) +
                                         " C=" + std::to_string(C) + " OC=" + std::to_string(OC));
    if (N == 0) return;
    // dinp[N, C] += dout[N, OC] @ W[OC, C]
    if (dinp) gemm(dinp, false, C, MatRef{dout, OC, false}, MatRef{W, C, false}, N, C, OC, 1.0f, 1.0f,
                   nullptr, stream);
    // dW[OC, C] += (dout[N, OC])^T @ inp[N, C]
    if (dW) gemm(dW, true, C, MatRef{dout, OC, true}, MatRef{inp, C, false}, OC, C, N, 1.0f, 1.0f,
                 nullptr, stream);
    if (dbias) {
        LAUNCH_KERNEL(column_sum_kernel, ceil_div(OC, 32), dim3(32, 32), 0, stream, dbias, dout, N, OC);
    }
}

}  // namespace rusca::cuda
