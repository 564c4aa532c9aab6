// rope.cu: rotary position embedding, Hugging Face "rotate_half" layout (Llama, Qwen):
//   out[i]       = x[i] * cos - x[i + D/2] * sin
//   out[i + D/2] = x[i + D/2] * cos + x[i] * sin           angle = pos * theta^(-2i/D), i < D/2
// The backward applies the transposed rotation (angle negated) and adds into dx.
//
// Angles match the CPU twin: inv_freq_i = 1 / pow(theta, 2i/D) is computed on the host in double
// with the twin's exact formula and passed by value; the kernel forms pos * inv_freq_i in double and
// takes cos/sin in double, then rounds them to fp32 (as the float twin does).
//
// Layout: one block per row n (all H heads of one token). Its first D/2 threads fill the row's
// cos/sin table in shared memory (double-precision sincos, amortized over the heads), then the
// block's threads share the H * D/2 pairs: each thread owns V consecutive pairs (i .. i+V) of one
// head, read as two V-wide accesses (x[i..], x[i + D/2 ..]); V = 4 (8-byte accesses) when D/2 % 4 == 0
// and the pointers are 8-byte aligned, otherwise V = 1.
#include <cmath>
#include <cstdint>
#include <string>

#include "common.cuh"
#include "launch.cuh"
#include "cuda/pack.cuh"
#include "host/error.h"
#include "rope.cuh"

namespace rusca::cuda {
namespace {

using bf16 = __nv_bfloat16;

constexpr int kMaxHalf = 256;  // D <= 512

struct InvFreq {
    double v[kMaxHalf];  // inv_freq_i for i < D/2
};

// Block n: out[n] = R(dir * angle) x[n] for all heads; x, out: [N, H, D]. dir = +1 forward, -1 backward;
// ACCUMULATE: out += instead of out = . out may alias x: each pair is read and written by one thread.
template <int V, bool ACCUMULATE>
__global__ void rope_kernel(bf16* out, const bf16* x, const int* pos, int H, int D, InvFreq inv, float dir) {
    __shared__ float cs[2 * kMaxHalf];  // cos in [0, half), dir * sin in [half, 2 * half)
    const int n = blockIdx.x;
    const int half = D / 2;
    for (int i = threadIdx.x; i < half; i += blockDim.x) {
        double s, c;
        sincos((double)pos[n] * inv.v[i], &s, &c);
        cs[i] = (float)c;
        cs[half + i] = dir * (float)s;
    }
    __syncthreads();

    const int packs_per_head = half / V;
    for (int item = threadIdx.x; item < H * packs_per_head; item += blockDim.x) {
        const int h = item / packs_per_head;
        const int i = (item % packs_per_head) * V;
        const size_t off = ((size_t)n * H + h) * D + i;
        const Pack<V> ap = load<V>(x + off), bp = load<V>(x + off + half);
        Pack<V> ra, rb;
        if (ACCUMULATE) ra = load<V>(out + off), rb = load<V>(out + off + half);
        for (int k = 0; k < V; k++) {
            const float c = cs[i + k], s = cs[half + i + k];
            const float a = __bfloat162float(ap.v[k]), b = __bfloat162float(bp.v[k]);
            float oa = a * c - b * s, ob = b * c + a * s;
            if (ACCUMULATE) oa += __bfloat162float(ra.v[k]), ob += __bfloat162float(rb.v[k]);
            ra.v[k] = __float2bfloat16(oa);
            rb.v[k] = __float2bfloat16(ob);
        }
        store<V>(out + off, ra);
        store<V>(out + off + half, rb);
    }
}

template <bool ACCUMULATE>
void rope_launch(const char* what, bf16* out, const bf16* x, const int* pos, int N, int H, int D, float theta,
                 float dir, cudaStream_t stream) {
    check(N >= 0 && H > 0 && D > 0 && D % 2 == 0 && D <= 2 * kMaxHalf,
          std::string(what) + ": bad sizes N=" + std::to_string(N) + " H=" + std::to_string(H) +
              " D=" + std::to_string(D) + " (D must be even and <= 512)");
    check(theta > 0, std::string(what) + ": theta must be > 0");
    if (N == 0) return;
    check(out && x && pos, std::string(what) + ": null pointer");

    InvFreq inv = {};
    for (int i = 0; i < D / 2; i++) inv.v[i] = 1.0 / std::pow((double)theta, (2.0 * i) / D);  // the twin's formula

    const int threads = 128;
    if ((D / 2) % 4 == 0 && aligned(out, 8) && aligned(x, 8)) {
        LAUNCH_KERNEL(rope_kernel<4, ACCUMULATE>, N, threads, 0, stream, out, x, pos, H, D, inv, dir);
    } else {
        LAUNCH_KERNEL(rope_kernel<1, ACCUMULATE>, N, threads, 0, stream, out, x, pos, H, D, inv, dir);
    }
}

}  // namespace

void rope_forward(bf16* out, const bf16* x, const int* pos, int N, int H, int D, float theta, cudaStream_t stream) {
    rope_launch<false>("rope_forward", out, x, pos, N, H, D, theta, 1.0f, stream);
}

void rope_backward(bf16* dx, const bf16* dout, const int* pos, int N, int H, int D, float theta,
                   cudaStream_t stream) {
    rope_launch<true>("rope_backward", dx, dout, pos, N, H, D, theta, -1.0f, stream);
}

}  // namespace rusca::cuda
