// swiglu.cu: the SwiGLU gate, elementwise:
//   out = silu(g) * u,   silu(g) = g * sigmoid(g)
//   dup += dout * silu(g),   dgate += dout * u * sigmoid(g) * (1 + g * (1 - sigmoid(g)))
// Memory-bound: a grid-stride loop where each thread step owns V consecutive elements, moved as
// one 16-byte access per array when n % 8 == 0 and every pointer is 16-byte aligned (V = 8),
// otherwise V = 1. sigmoid uses the accurate expf (not __expf) so results track the CPU twin.
#include <algorithm>
#include <cstdint>

#include "common.cuh"
#include "launch.cuh"
#include "cuda/pack.cuh"
#include "host/error.h"
#include "swiglu.cuh"

namespace rusca::cuda {
namespace {

using bf16 = __nv_bfloat16;

__device__ float sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }  // expf overflow: 1/inf = 0, fine

// Grid-stride over npacks = n / V packs. out may alias gate or up (same thread reads then writes).
template <int V>
__global__ void swiglu_forward_kernel(bf16* out, const bf16* gate, const bf16* up, size_t npacks) {
    for (size_t p = blockIdx.x * (size_t)blockDim.x + threadIdx.x; p < npacks; p += (size_t)gridDim.x * blockDim.x) {
        const size_t i = p * V;
        const Pack<V> gate_p = load<V>(gate + i), up_p = load<V>(up + i);
        Pack<V> out_p;
        for (int k = 0; k < V; k++) {
            const float g = __bfloat162float(gate_p.v[k]);
            out_p.v[k] = __float2bfloat16(g * sigmoid(g) * __bfloat162float(up_p.v[k]));
        }
        store<V>(out + i, out_p);
    }
}

template <int V>
__global__ void swiglu_backward_kernel(bf16* dgate, bf16* dup, const bf16* dout, const bf16* gate, const bf16* up,
                                       size_t npacks) {
    for (size_t p = blockIdx.x * (size_t)blockDim.x + threadIdx.x; p < npacks; p += (size_t)gridDim.x * blockDim.x) {
        const size_t i = p * V;
        const Pack<V> dout_p = load<V>(dout + i), gate_p = load<V>(gate + i), up_p = load<V>(up + i);
        Pack<V> dgate_p = load<V>(dgate + i), dup_p = load<V>(dup + i);
        for (int k = 0; k < V; k++) {
            const float d = __bfloat162float(dout_p.v[k]), g = __bfloat162float(gate_p.v[k]);
            const float u = __bfloat162float(up_p.v[k]);
            const float s = sigmoid(g);
            dup_p.v[k] = __float2bfloat16(__bfloat162float(dup_p.v[k]) + d * g * s);
            dgate_p.v[k] = __float2bfloat16(__bfloat162float(dgate_p.v[k]) + d * u * s * (1.0f + g * (1.0f - s)));
        }
        store<V>(dup + i, dup_p);
        store<V>(dgate + i, dgate_p);
    }
}

constexpr int kThreads = 256;

// Enough blocks to fill the GPU several times over; the grid-stride loop covers the rest.
int grid_for(size_t npacks) { return (int)std::min<size_t>((npacks + kThreads - 1) / kThreads, 1u << 16); }

}  // namespace

void swiglu_forward(bf16* out, const bf16* gate, const bf16* up, size_t n, cudaStream_t stream) {
    if (n == 0) return;
    check(out && gate && up, "swiglu_forward: null pointer");
    if (n % 8 == 0 && aligned(out, 16) && aligned(gate, 16) && aligned(up, 16)) {
        LAUNCH_KERNEL(swiglu_forward_kernel<8>, grid_for(n / 8), kThreads, 0, stream, out, gate, up, n / 8);
    } else {
        LAUNCH_KERNEL(swiglu_forward_kernel<1>, grid_for(n), kThreads, 0, stream, out, gate, up, n);
    }
}

void swiglu_backward(bf16* dgate, bf16* dup, const bf16* dout, const bf16* gate, const bf16* up, size_t n,
                     cudaStream_t stream) {
    if (n == 0) return;
    check(dgate && dup && dout && gate && up, "swiglu_backward: null pointer");
    if (n % 8 == 0 && aligned(dgate, 16) && aligned(dup, 16) && aligned(dout, 16) && aligned(gate, 16) &&
        aligned(up, 16)) {
        LAUNCH_KERNEL(swiglu_backward_kernel<8>, grid_for(n / 8), kThreads, 0, stream, dgate, dup, dout, gate, up,
                      n / 8);
    } else {
        LAUNCH_KERNEL(swiglu_backward_kernel<1>, grid_for(n), kThreads, 0, stream, dgate, dup, dout, gate, up, n);
    }
}

}  // namespace rusca::cuda
