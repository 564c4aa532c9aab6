// cublaslt.cpp: the emulator's cuBLASLt (see include/cublasLt.h), the subset rusca calls,
// computed by a reference GEMM on the CPU.
//
// Why it validates so much: the point of running cuda/matmul.cu on the emulator is to exercise its
// descriptor logic (the row-major/column-major swap, transposes, leading dimensions, the bias
// epilogue, the alignment preferences). So every descriptor value is checked the way cuBLASLt
// checks it, and a problem it would refuse is refused with its status:
//   CUBLAS_STATUS_INVALID_VALUE  inconsistent shapes, ld < rows, a bad transpose value, a wrong
//                                attribute size, a bias epilogue without a bias pointer, a pointer
//                                less aligned than the algorithm was chosen for, a too-small workspace;
//   CUBLAS_STATUS_NOT_SUPPORTED  type combinations, orders, batching, pointer modes and epilogues
//                                outside the emulated subset (bf16 or fp32 A/B, fp32 compute and
//                                scale, bf16 or fp32 C/D, epilogue DEFAULT or BIAS, column-major,
//                                one matrix per call), and attributes the emulator does not model.
// Every pointer is checked against the emulator's device allocations (rusca::emu::check_device_range).
//
// The GEMM: op(A) and op(B) are converted to fp32 copies (B in panels of 32 columns), then each
// output element is an fp32 sum over k in increasing order (vectorized across output columns, never
// across k; OpenMP across tiles), so the result does not depend on the thread count. Then v = alpha * sum + beta * C (C not read when
// beta == 0) + bias[row], rounded once to D's type (bf16: round to nearest even, NaN -> 0x7fff as
// NVIDIA's __float2bfloat16). The work runs in stream order via rusca::emu::enqueue, with every
// value it needs copied, since callers destroy their descriptors right after the call.
#include <cublasLt.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include "cuda/emu/emu.h"

// ----------------------------------------------------------------------------------------------
// descriptor objects (defaults as documented in NVIDIA's cublasLt.h)

struct cublasLtContext {
    uint64_t magic;
};

struct rusca_emu_LtMatmulDesc {
    int32_t compute_type;
    int32_t scale_type;
    int32_t pointer_mode = CUBLASLT_POINTER_MODE_HOST;
    int32_t transa = CUBLAS_OP_N, transb = CUBLAS_OP_N, transc = CUBLAS_OP_N;
    uint32_t epilogue = CUBLASLT_EPILOGUE_DEFAULT;
    const void* bias = nullptr;
    int32_t bias_type = -1;  // -1: the type of D
};

struct rusca_emu_LtMatrixLayout {
    uint32_t type;
    int32_t order = CUBLASLT_ORDER_COL;
    uint64_t rows, cols;
    int64_t ld;
    int32_t batch_count = 1;
    int64_t batch_offset = 0, plane_offset = 0;
    uint32_t batch_mode = 0;
};

struct rusca_emu_LtMatmulPreference {
    uint32_t search_mode = 0;
    uint64_t max_workspace = 0;
    uint32_t align_a = 256, align_b = 256, align_c = 256, align_d = 256;
};

namespace {

// OpenMP loops, except under ThreadSanitizer (libgomp is not instrumented: its barriers would
// show up as races in the emulator's racecheck build).
#if defined(__SANITIZE_THREAD__)
#define RUSCA_EMU_PARALLEL_FOR
#else
#define RUSCA_EMU_PARALLEL_FOR _Pragma("omp parallel for schedule(static)")
#endif

constexpr uint64_t kHandleMagic = 0x72757363614c7448ull;  // "ruscaLtH"
constexpr uint64_t kAlgoMagic = 0x72757363614c7441ull;    // "ruscaLtA"

// Where an attribute lives in a descriptor and how many bytes it has; size 0: not modeled.
struct Field {
    void* at;
    size_t size;
};
template <typename T>
Field field(T& x) {
    return Field{&x, sizeof(T)};
}

cublasStatus_t set_field(Field f, const void* buf, size_t size) {
    if (f.size == 0) return CUBLAS_STATUS_NOT_SUPPORTED;
    if (!buf || size != f.size) return CUBLAS_STATUS_INVALID_VALUE;
    std::memcpy(f.at, buf, size);
    return CUBLAS_STATUS_SUCCESS;
}

// cuBLASLt's Get convention: size 0 asks for the size; otherwise the size must match exactly.
cublasStatus_t get_field(Field f, void* buf, size_t size, size_t* written) {
    if (f.size == 0) return CUBLAS_STATUS_NOT_SUPPORTED;
    if (size == 0) {
        if (!written) return CUBLAS_STATUS_INVALID_VALUE;
        *written = f.size;
        return CUBLAS_STATUS_SUCCESS;
    }
    if (!buf || size != f.size) return CUBLAS_STATUS_INVALID_VALUE;
    std::memcpy(buf, f.at, size);
    if (written) *written = size;
    return CUBLAS_STATUS_SUCCESS;
}

Field desc_field(rusca_emu_LtMatmulDesc& d, cublasLtMatmulDescAttributes_t attr) {
    switch (attr) {
        case CUBLASLT_MATMUL_DESC_COMPUTE_TYPE: return field(d.compute_type);
        case CUBLASLT_MATMUL_DESC_SCALE_TYPE: return field(d.scale_type);
        case CUBLASLT_MATMUL_DESC_POINTER_MODE: return field(d.pointer_mode);
        case CUBLASLT_MATMUL_DESC_TRANSA: return field(d.transa);
        case CUBLASLT_MATMUL_DESC_TRANSB: return field(d.transb);
        case CUBLASLT_MATMUL_DESC_TRANSC: return field(d.transc);
        case CUBLASLT_MATMUL_DESC_EPILOGUE: return field(d.epilogue);
        case CUBLASLT_MATMUL_DESC_BIAS_POINTER: return field(d.bias);
        case CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE: return field(d.bias_type);
        default: return Field{nullptr, 0};
    }
}

Field layout_field(rusca_emu_LtMatrixLayout& l, cublasLtMatrixLayoutAttribute_t attr) {
    switch (attr) {
        case CUBLASLT_MATRIX_LAYOUT_TYPE: return field(l.type);
        case CUBLASLT_MATRIX_LAYOUT_ORDER: return field(l.order);
        case CUBLASLT_MATRIX_LAYOUT_ROWS: return field(l.rows);
        case CUBLASLT_MATRIX_LAYOUT_COLS: return field(l.cols);
        case CUBLASLT_MATRIX_LAYOUT_LD: return field(l.ld);
        case CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT: return field(l.batch_count);
        case CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET: return field(l.batch_offset);
        case CUBLASLT_MATRIX_LAYOUT_PLANE_OFFSET: return field(l.plane_offset);
        case CUBLASLT_MATRIX_LAYOUT_BATCH_MODE: return field(l.batch_mode);
        default: return Field{nullptr, 0};
    }
}

Field pref_field(rusca_emu_LtMatmulPreference& p, cublasLtMatmulPreferenceAttributes_t attr) {
    switch (attr) {
        case CUBLASLT_MATMUL_PREF_SEARCH_MODE: return field(p.search_mode);
        case CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES: return field(p.max_workspace);
        case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES: return field(p.align_a);
        case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES: return field(p.align_b);
        case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES: return field(p.align_c);
        case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES: return field(p.align_d);
        default: return Field{nullptr, 0};
    }
}

// ----------------------------------------------------------------------------------------------
// the problem, validated

size_t element_bytes(int32_t type) { return type == CUDA_R_16BF ? 2 : 4; }

// One matrix of the problem: stored column-major, rows x cols with leading dimension ld.
struct Operand {
    const void* p = nullptr;
    int32_t type = CUDA_R_32F;
    int64_t rows = 0, cols = 0, ld = 0;
    size_t bytes() const {  // the span the matrix occupies
        return cols == 0 || rows == 0 ? 0 : (size_t(cols - 1) * ld + rows) * element_bytes(type);
    }
};

// Everything the GEMM needs, by value (it may run later, from a CUDA graph).
struct Problem {
    int64_t m = 0, n = 0, k = 0;
    bool ta = false, tb = false;
    Operand A, B, C, D;
    bool has_bias = false;
    int32_t bias_type = CUDA_R_32F;
    const void* bias = nullptr;
    float alpha = 1.0f, beta = 0.0f;
};

cublasStatus_t check_layout(const rusca_emu_LtMatrixLayout* l) {
    if (!l) return CUBLAS_STATUS_INVALID_VALUE;
    if (l->order != CUBLASLT_ORDER_COL) return CUBLAS_STATUS_NOT_SUPPORTED;  // not emulated
    if (l->batch_count < 1) return CUBLAS_STATUS_INVALID_VALUE;
    if (l->batch_count != 1 || l->plane_offset != 0) return CUBLAS_STATUS_NOT_SUPPORTED;  // not emulated
    if (l->type != CUDA_R_16BF && l->type != CUDA_R_32F) return CUBLAS_STATUS_NOT_SUPPORTED;
    const uint64_t int_max = uint64_t(std::numeric_limits<int32_t>::max());
    if (l->rows > int_max || l->cols > int_max) return CUBLAS_STATUS_NOT_SUPPORTED;
    // column-major: columns must not overlap, and ld >= 1 even for an empty matrix
    if (l->ld < 1 || l->ld < int64_t(l->rows)) return CUBLAS_STATUS_INVALID_VALUE;
    return CUBLAS_STATUS_SUCCESS;
}

Operand operand(const rusca_emu_LtMatrixLayout* l, const void* p) {
    Operand o;
    o.p = p;
    o.type = int32_t(l->type);
    o.rows = int64_t(l->rows);
    o.cols = int64_t(l->cols);
    o.ld = l->ld;
    return o;
}

bool valid_op(int32_t op) { return op == CUBLAS_OP_N || op == CUBLAS_OP_T || op == CUBLAS_OP_C; }

// Shapes, types, transposes and epilogue of (desc, layouts); pointers are filled in by the caller.
cublasStatus_t describe(const rusca_emu_LtMatmulDesc* desc, const rusca_emu_LtMatrixLayout* a,
                        const rusca_emu_LtMatrixLayout* b, const rusca_emu_LtMatrixLayout* c,
                        const rusca_emu_LtMatrixLayout* d, Problem* pr) {
    if (!desc) return CUBLAS_STATUS_INVALID_VALUE;
    for (const rusca_emu_LtMatrixLayout* l : {a, b, c, d}) {
        const cublasStatus_t st = check_layout(l);
        if (st != CUBLAS_STATUS_SUCCESS) return st;
    }
    if (!valid_op(desc->transa) || !valid_op(desc->transb) || !valid_op(desc->transc))
        return CUBLAS_STATUS_INVALID_VALUE;
    if (desc->transc != CUBLAS_OP_N) return CUBLAS_STATUS_NOT_SUPPORTED;  // cuBLASLt: only N for C
    if (desc->compute_type != CUBLAS_COMPUTE_32F && desc->compute_type != CUBLAS_COMPUTE_32F_PEDANTIC)
        return CUBLAS_STATUS_NOT_SUPPORTED;
    if (desc->scale_type != CUDA_R_32F) return CUBLAS_STATUS_NOT_SUPPORTED;
    if (desc->pointer_mode != CUBLASLT_POINTER_MODE_HOST) return CUBLAS_STATUS_NOT_SUPPORTED;

    // Types: A and B alike, C and D alike; fp32 A/B need fp32 C/D.
    if (a->type != b->type || c->type != d->type) return CUBLAS_STATUS_NOT_SUPPORTED;
    if (a->type == CUDA_R_32F && d->type != CUDA_R_32F) return CUBLAS_STATUS_NOT_SUPPORTED;

    Problem p;
    p.ta = desc->transa != CUBLAS_OP_N;  // OP_C is OP_T for real types
    p.tb = desc->transb != CUBLAS_OP_N;
    p.A = operand(a, nullptr);
    p.B = operand(b, nullptr);
    p.C = operand(c, nullptr);
    p.D = operand(d, nullptr);
    p.m = p.D.rows;
    p.n = p.D.cols;
    p.k = p.ta ? p.A.rows : p.A.cols;
    const int64_t a_m = p.ta ? p.A.cols : p.A.rows;
    const int64_t b_k = p.tb ? p.B.cols : p.B.rows, b_n = p.tb ? p.B.rows : p.B.cols;
    if (a_m != p.m || b_k != p.k || b_n != p.n || p.C.rows != p.m || p.C.cols != p.n)
        return CUBLAS_STATUS_INVALID_VALUE;

    if (desc->epilogue == CUBLASLT_EPILOGUE_BIAS) {
        p.has_bias = true;
        p.bias = desc->bias;
        p.bias_type = desc->bias_type == -1 ? int32_t(d->type) : desc->bias_type;
        if (p.bias_type != CUDA_R_16BF && p.bias_type != CUDA_R_32F) return CUBLAS_STATUS_NOT_SUPPORTED;
    } else if (desc->epilogue != CUBLASLT_EPILOGUE_DEFAULT) {
        return CUBLAS_STATUS_NOT_SUPPORTED;  // not emulated
    }
    *pr = p;
    return CUBLAS_STATUS_SUCCESS;
}

// ----------------------------------------------------------------------------------------------
// the algorithm: what the heuristic chose it for, checked again by cublasLtMatmul

// data[0] magic, [1..4] alignment (bytes) it assumes for A, B, C, D, [5] for the bias,
// [6] the type signature it was chosen for, [7] workspace bytes it needs.
constexpr int kAlgoAlign = 1, kAlgoSig = 6, kAlgoWorkspace = 7;

uint64_t signature(const Problem& p) {
    return uint64_t(p.A.type) | uint64_t(p.D.type) << 8 | uint64_t(p.has_bias ? p.bias_type + 1 : 0) << 16;
}

// Largest power of two (<= 256) dividing the address.
uint64_t alignment_of(const void* ptr) {
    const uintptr_t a = reinterpret_cast<uintptr_t>(ptr);
    uint64_t al = 256;
    while (al > 1 && a % al != 0) al /= 2;
    return al;
}

bool power_of_two(uint32_t x) { return x != 0 && (x & (x - 1)) == 0; }

// An algorithm is offered for any alignment of at least one element; it then relies on pointers
// aligned as promised (up to 16 bytes, a vector load), as a Hopper kernel does.
cublasStatus_t choose_algo(const Problem& p, const rusca_emu_LtMatmulPreference& pref, cublasLtMatmulAlgo_t* algo) {
    const uint32_t align[4] = {pref.align_a, pref.align_b, pref.align_c, pref.align_d};
    const Operand* ops[4] = {&p.A, &p.B, &p.C, &p.D};
    std::memset(algo, 0, sizeof(*algo));
    algo->data[0] = kAlgoMagic;
    for (int i = 0; i < 4; i++) {
        if (!power_of_two(align[i]) || align[i] < element_bytes(ops[i]->type)) return CUBLAS_STATUS_NOT_SUPPORTED;
        algo->data[kAlgoAlign + i] = std::min<uint64_t>(align[i], 16);
    }
    // the heuristic reads the bias pointer's value (not its data) for its alignment
    algo->data[kAlgoAlign + 4] = p.has_bias && p.bias ? std::min<uint64_t>(alignment_of(p.bias), 16) : 16;
    algo->data[kAlgoSig] = signature(p);
    algo->data[kAlgoWorkspace] = 0;  // the reference GEMM needs no workspace
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t check_algo(const Problem& p, const cublasLtMatmulAlgo_t& algo, size_t workspace_bytes) {
    if (algo.data[0] != kAlgoMagic || algo.data[kAlgoSig] != signature(p)) return CUBLAS_STATUS_INVALID_VALUE;
    if (workspace_bytes < algo.data[kAlgoWorkspace]) return CUBLAS_STATUS_INVALID_VALUE;
    const void* ptrs[5] = {p.A.p, p.B.p, p.C.p, p.D.p, p.bias};
    for (int i = 0; i < 5; i++)
        if (ptrs[i] && alignment_of(ptrs[i]) < algo.data[kAlgoAlign + i]) return CUBLAS_STATUS_INVALID_VALUE;
    return CUBLAS_STATUS_SUCCESS;
}

// ----------------------------------------------------------------------------------------------
// the reference GEMM

float bf16_to_float(uint16_t h) {
    const uint32_t u = uint32_t(h) << 16;
    float f;
    std::memcpy(&f, &u, 4);
    return f;
}

uint16_t float_to_bf16(float f) {  // round to nearest even; NaN -> 0x7fff (as NVIDIA's host code)
    uint32_t u;
    std::memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return 0x7fff;
    u += 0x7fffu + ((u >> 16) & 1u);
    return uint16_t(u >> 16);
}

float load(const Operand& o, int64_t row, int64_t col) {
    const size_t at = size_t(col) * o.ld + row;
    if (o.type == CUDA_R_16BF) return bf16_to_float(static_cast<const uint16_t*>(o.p)[at]);
    return static_cast<const float*>(o.p)[at];
}

float load_vector(const void* p, int32_t type, int64_t i) {
    return type == CUDA_R_16BF ? bf16_to_float(static_cast<const uint16_t*>(p)[i]) : static_cast<const float*>(p)[i];
}

// op(A) as a row-major fp32 [rows_pad, k] copy, rows beyond `rows` zero: element (r, kk) is A(r, kk),
// or A(kk, r) if transposed.
std::vector<float> pack_a(const Operand& x, bool trans, int64_t rows, int64_t k, int64_t rows_pad) {
    std::vector<float> out(size_t(rows_pad) * k, 0.0f);
RUSCA_EMU_PARALLEL_FOR
    for (int64_t r = 0; r < rows; r++)
        for (int64_t kk = 0; kk < k; kk++) out[size_t(r) * k + kk] = trans ? load(x, kk, r) : load(x, r, kk);
    return out;
}

// op(B) [k, cols] in panels of `width` columns, each panel [k, width] contiguous (what one tile
// reads, front to back), columns beyond `cols` zero.
std::vector<float> pack_b(const Operand& x, bool trans, int64_t k, int64_t cols, int64_t cols_pad, int64_t width) {
    std::vector<float> out(size_t(k) * cols_pad, 0.0f);
RUSCA_EMU_PARALLEL_FOR
    for (int64_t c = 0; c < cols; c++) {
        float* panel = &out[size_t(c / width) * k * width + c % width];
        for (int64_t kk = 0; kk < k; kk++) panel[size_t(kk) * width] = trans ? load(x, c, kk) : load(x, kk, c);
    }
    return out;
}

// Every byte the GEMM will touch must lie in a live device allocation (empty matrices touch none).
void check_range(const void* ptr, size_t bytes, const char* what) {
    if (bytes > 0) rusca::emu::check_device_range(ptr, bytes, what);
}

void check_pointers(const Problem& p) {
    if (p.m == 0 || p.n == 0) return;
    check_range(p.A.p, p.A.bytes(), "cublasLtMatmul: matrix A");
    check_range(p.B.p, p.B.bytes(), "cublasLtMatmul: matrix B");
    if (p.beta != 0.0f) check_range(p.C.p, p.C.bytes(), "cublasLtMatmul: matrix C");
    check_range(p.D.p, p.D.bytes(), "cublasLtMatmul: matrix D");
    if (p.has_bias) check_range(p.bias, size_t(p.m) * element_bytes(p.bias_type), "cublasLtMatmul: bias");
}

// The epilogue for one output element: alpha * sum + beta * C + bias, rounded once to D's type.
void store(const Problem& p, int64_t i, int64_t j, float sum) {
    float v = p.alpha * sum;
    if (p.beta != 0.0f) v += p.beta * load(p.C, i, j);
    if (p.has_bias) v += load_vector(p.bias, p.bias_type, i);
    const size_t at = size_t(j) * p.D.ld + i;
    if (p.D.type == CUDA_R_16BF)
        static_cast<uint16_t*>(const_cast<void*>(p.D.p))[at] = float_to_bf16(v);
    else
        static_cast<float*>(const_cast<void*>(p.D.p))[at] = v;
}

// Register tiles: kTileRows x kTileCols sums live in registers for the whole k loop (4 x 32 floats
// = 16 AVX registers), each step a broadcast of A times a row segment of B. GCC's vector extension
// (8 floats) and unrolled constant loops make that explicit; every lane still sums over k in order.
constexpr int64_t kTileRows = 4, kTileCols = 32, kLanes = 8, kVecs = kTileCols / kLanes;
typedef float Vec8 __attribute__((vector_size(kLanes * sizeof(float))));
typedef float Vec8Unaligned __attribute__((vector_size(kLanes * sizeof(float)), aligned(alignof(float))));

int64_t round_up(int64_t x, int64_t to) { return (x + to - 1) / to * to; }

// sums[r][c] = sum over kk (in order) of a[i0 + r][kk] * panel[kk][c].
void gemm_tile(float (&sums)[kTileRows][kTileCols], const float* a, const float* panel, int64_t k, int64_t i0) {
    Vec8 acc[kTileRows][kVecs] = {};
    for (int64_t kk = 0; kk < k; kk++) {
        const Vec8Unaligned* bv = reinterpret_cast<const Vec8Unaligned*>(panel + size_t(kk) * kTileCols);
#pragma GCC unroll 4
        for (int64_t r = 0; r < kTileRows; r++) {
            const float av = a[size_t(i0 + r) * k + kk];
#pragma GCC unroll 4
            for (int64_t v = 0; v < kVecs; v++) acc[r][v] += av * bv[v];
        }
    }
    std::memcpy(sums, acc, sizeof(acc));
}

void run_gemm(const Problem& p) {
    check_pointers(p);
    if (p.m == 0 || p.n == 0) return;
    const int64_t mp = round_up(p.m, kTileRows), np = round_up(p.n, kTileCols);
    const std::vector<float> a = pack_a(p.A, p.ta, p.m, p.k, mp);
    const std::vector<float> b = pack_b(p.B, p.tb, p.k, p.n, np, kTileCols);
    const int64_t row_tiles = mp / kTileRows, tiles = row_tiles * (np / kTileCols);
    // Tiles in column-panel order, so a thread's consecutive tiles share one panel of B in cache.
RUSCA_EMU_PARALLEL_FOR
    for (int64_t t = 0; t < tiles; t++) {
        const int64_t i0 = (t % row_tiles) * kTileRows, j0 = (t / row_tiles) * kTileCols;
        float sums[kTileRows][kTileCols];
        gemm_tile(sums, a.data(), b.data() + size_t(j0) * p.k, p.k, i0);
        for (int64_t c = 0; c < kTileCols && j0 + c < p.n; c++)
            for (int64_t r = 0; r < kTileRows && i0 + r < p.m; r++) store(p, i0 + r, j0 + c, sums[r][c]);
    }
}

}  // namespace

// ----------------------------------------------------------------------------------------------
// the API

extern "C" {

cublasStatus_t cublasLtCreate(cublasLtHandle_t* handle) {
    if (!handle) return CUBLAS_STATUS_INVALID_VALUE;
    *handle = new cublasLtContext{kHandleMagic};
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtDestroy(cublasLtHandle_t handle) {
    if (!handle || handle->magic != kHandleMagic) return CUBLAS_STATUS_NOT_INITIALIZED;
    handle->magic = 0;
    delete handle;
    return CUBLAS_STATUS_SUCCESS;
}

const char* cublasLtGetStatusName(cublasStatus_t status) {
    switch (status) {
        case CUBLAS_STATUS_SUCCESS: return "CUBLAS_STATUS_SUCCESS";
        case CUBLAS_STATUS_NOT_INITIALIZED: return "CUBLAS_STATUS_NOT_INITIALIZED";
        case CUBLAS_STATUS_ALLOC_FAILED: return "CUBLAS_STATUS_ALLOC_FAILED";
        case CUBLAS_STATUS_INVALID_VALUE: return "CUBLAS_STATUS_INVALID_VALUE";
        case CUBLAS_STATUS_ARCH_MISMATCH: return "CUBLAS_STATUS_ARCH_MISMATCH";
        case CUBLAS_STATUS_MAPPING_ERROR: return "CUBLAS_STATUS_MAPPING_ERROR";
        case CUBLAS_STATUS_EXECUTION_FAILED: return "CUBLAS_STATUS_EXECUTION_FAILED";
        case CUBLAS_STATUS_INTERNAL_ERROR: return "CUBLAS_STATUS_INTERNAL_ERROR";
        case CUBLAS_STATUS_NOT_SUPPORTED: return "CUBLAS_STATUS_NOT_SUPPORTED";
        case CUBLAS_STATUS_LICENSE_ERROR: return "CUBLAS_STATUS_LICENSE_ERROR";
    }
    return "CUBLAS_STATUS_UNKNOWN";
}

const char* cublasLtGetStatusString(cublasStatus_t status) {
    switch (status) {
        case CUBLAS_STATUS_SUCCESS: return "success";
        case CUBLAS_STATUS_NOT_INITIALIZED: return "the library was not initialized";
        case CUBLAS_STATUS_ALLOC_FAILED: return "the resource allocation failed";
        case CUBLAS_STATUS_INVALID_VALUE: return "an invalid numeric value was used as an argument";
        case CUBLAS_STATUS_ARCH_MISMATCH: return "an absent device architectural feature is required";
        case CUBLAS_STATUS_MAPPING_ERROR: return "an access to GPU memory space failed";
        case CUBLAS_STATUS_EXECUTION_FAILED: return "the GPU program failed to execute";
        case CUBLAS_STATUS_INTERNAL_ERROR: return "an internal operation failed";
        case CUBLAS_STATUS_NOT_SUPPORTED: return "the functionality requested is not supported";
        case CUBLAS_STATUS_LICENSE_ERROR: return "error detected trying to check the license";
    }
    return "unknown status";
}

cublasStatus_t cublasLtMatrixLayoutCreate(cublasLtMatrixLayout_t* layout, cudaDataType type, uint64_t rows,
                                          uint64_t cols, int64_t ld) {
    if (!layout) return CUBLAS_STATUS_INVALID_VALUE;
    rusca_emu_LtMatrixLayout* l = new rusca_emu_LtMatrixLayout;
    l->type = uint32_t(type);
    l->rows = rows;
    l->cols = cols;
    l->ld = ld;
    *layout = l;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatrixLayoutDestroy(cublasLtMatrixLayout_t layout) {
    delete layout;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatrixLayoutSetAttribute(cublasLtMatrixLayout_t layout, cublasLtMatrixLayoutAttribute_t attr,
                                                const void* buf, size_t size) {
    if (!layout) return CUBLAS_STATUS_INVALID_VALUE;
    return set_field(layout_field(*layout, attr), buf, size);
}

cublasStatus_t cublasLtMatrixLayoutGetAttribute(cublasLtMatrixLayout_t layout, cublasLtMatrixLayoutAttribute_t attr,
                                                void* buf, size_t size, size_t* written) {
    if (!layout) return CUBLAS_STATUS_INVALID_VALUE;
    return get_field(layout_field(*layout, attr), buf, size, written);
}

cublasStatus_t cublasLtMatmulDescCreate(cublasLtMatmulDesc_t* desc, cublasComputeType_t compute,
                                        cudaDataType_t scale) {
    if (!desc) return CUBLAS_STATUS_INVALID_VALUE;
    rusca_emu_LtMatmulDesc* d = new rusca_emu_LtMatmulDesc;
    d->compute_type = int32_t(compute);
    d->scale_type = int32_t(scale);
    *desc = d;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulDescDestroy(cublasLtMatmulDesc_t desc) {
    delete desc;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulDescSetAttribute(cublasLtMatmulDesc_t desc, cublasLtMatmulDescAttributes_t attr,
                                              const void* buf, size_t size) {
    if (!desc) return CUBLAS_STATUS_INVALID_VALUE;
    return set_field(desc_field(*desc, attr), buf, size);
}

cublasStatus_t cublasLtMatmulDescGetAttribute(cublasLtMatmulDesc_t desc, cublasLtMatmulDescAttributes_t attr,
                                              void* buf, size_t size, size_t* written) {
    if (!desc) return CUBLAS_STATUS_INVALID_VALUE;
    return get_field(desc_field(*desc, attr), buf, size, written);
}

cublasStatus_t cublasLtMatmulPreferenceCreate(cublasLtMatmulPreference_t* pref) {
    if (!pref) return CUBLAS_STATUS_INVALID_VALUE;
    *pref = new rusca_emu_LtMatmulPreference;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulPreferenceDestroy(cublasLtMatmulPreference_t pref) {
    delete pref;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulPreferenceSetAttribute(cublasLtMatmulPreference_t pref,
                                                    cublasLtMatmulPreferenceAttributes_t attr, const void* buf,
                                                    size_t size) {
    if (!pref) return CUBLAS_STATUS_INVALID_VALUE;
    return set_field(pref_field(*pref, attr), buf, size);
}

cublasStatus_t cublasLtMatmulPreferenceGetAttribute(cublasLtMatmulPreference_t pref,
                                                    cublasLtMatmulPreferenceAttributes_t attr, void* buf,
                                                    size_t size, size_t* written) {
    if (!pref) return CUBLAS_STATUS_INVALID_VALUE;
    return get_field(pref_field(*pref, attr), buf, size, written);
}

cublasStatus_t cublasLtMatmulAlgoGetHeuristic(cublasLtHandle_t handle, cublasLtMatmulDesc_t desc,
                                              cublasLtMatrixLayout_t a, cublasLtMatrixLayout_t b,
                                              cublasLtMatrixLayout_t c, cublasLtMatrixLayout_t d,
                                              cublasLtMatmulPreference_t pref, int requested,
                                              cublasLtMatmulHeuristicResult_t results[], int* returned) {
    if (!handle || handle->magic != kHandleMagic) return CUBLAS_STATUS_NOT_INITIALIZED;
    if (requested <= 0 || !results || !returned || !pref) return CUBLAS_STATUS_INVALID_VALUE;
    *returned = 0;
    Problem p;
    cublasStatus_t st = describe(desc, a, b, c, d, &p);
    if (st != CUBLAS_STATUS_SUCCESS) return st;
    cublasLtMatmulHeuristicResult_t r;
    std::memset(&r, 0, sizeof(r));
    st = choose_algo(p, *pref, &r.algo);
    if (st != CUBLAS_STATUS_SUCCESS) return st;
    if (r.algo.data[kAlgoWorkspace] > pref->max_workspace) return CUBLAS_STATUS_NOT_SUPPORTED;
    r.workspaceSize = r.algo.data[kAlgoWorkspace];
    r.state = CUBLAS_STATUS_SUCCESS;
    r.wavesCount = 1.0f;
    results[0] = r;
    *returned = 1;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmul(cublasLtHandle_t handle, cublasLtMatmulDesc_t desc, const void* alpha, const void* A,
                              cublasLtMatrixLayout_t a, const void* B, cublasLtMatrixLayout_t b, const void* beta,
                              const void* C, cublasLtMatrixLayout_t c, void* D, cublasLtMatrixLayout_t d,
                              const cublasLtMatmulAlgo_t* algo, void* workspace, size_t workspace_bytes,
                              cudaStream_t stream) {
    if (!handle || handle->magic != kHandleMagic) return CUBLAS_STATUS_NOT_INITIALIZED;
    if (!alpha || !beta) return CUBLAS_STATUS_INVALID_VALUE;
    Problem p;
    cublasStatus_t st = describe(desc, a, b, c, d, &p);
    if (st != CUBLAS_STATUS_SUCCESS) return st;
    p.alpha = *static_cast<const float*>(alpha);  // host pointer mode: read at call time
    p.beta = *static_cast<const float*>(beta);
    p.A.p = A;
    p.B.p = B;
    p.C.p = C;
    p.D.p = D;
    // In place (C == D) needs identical layouts, as in cuBLASLt.
    if (C == D && (c->ld != d->ld || c->type != d->type)) return CUBLAS_STATUS_INVALID_VALUE;
    if (p.has_bias && !p.bias) return CUBLAS_STATUS_INVALID_VALUE;  // BIAS epilogue, no BIAS_POINTER
    if (workspace_bytes > 0 && !workspace) return CUBLAS_STATUS_INVALID_VALUE;
    if (p.m > 0 && p.n > 0) {
        if (!D || (p.k > 0 && (!A || !B)) || (p.beta != 0.0f && !C)) return CUBLAS_STATUS_INVALID_VALUE;
        const void* ptrs[3] = {A, B, D};
        const Operand* ops[3] = {&p.A, &p.B, &p.D};
        for (int i = 0; i < 3; i++)  // every element access must be aligned
            if (ptrs[i] && reinterpret_cast<uintptr_t>(ptrs[i]) % element_bytes(ops[i]->type) != 0)
                return CUBLAS_STATUS_INVALID_VALUE;
    }
    // No algorithm given: cuBLASLt runs its own heuristic, for the pointers at hand.
    cublasLtMatmulAlgo_t chosen;
    if (!algo) {
        rusca_emu_LtMatmulPreference here;
        here.max_workspace = workspace_bytes;
        here.align_a = uint32_t(alignment_of(A));
        here.align_b = uint32_t(alignment_of(B));
        here.align_c = uint32_t(alignment_of(C));
        here.align_d = uint32_t(alignment_of(D));
        st = choose_algo(p, here, &chosen);
        if (st != CUBLAS_STATUS_SUCCESS) return st;
        algo = &chosen;
    }
    st = check_algo(p, *algo, workspace_bytes);
    if (st != CUBLAS_STATUS_SUCCESS) return st;
    // Pointers are checked when the work runs (as a GPU faults then, not at the call): during graph
    // capture, memory from cudaMallocAsync is only promised.
    rusca::emu::enqueue(stream, [p, workspace, workspace_bytes] {
        check_range(workspace, workspace_bytes, "cublasLtMatmul: workspace");
        run_gemm(p);
    });
    return CUBLAS_STATUS_SUCCESS;
}

}  // extern "C"
