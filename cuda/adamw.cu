// adamw.cu: the AdamW step on fp32 master weights, and the gradient-norm helpers of clipping.
//
// adamw_update follows torch.optim.AdamW (decoupled weight decay, bias-corrected moments), in the
// CPU twin's operation order:
//   p *= 1 - lr * wd
//   m  = m + (1 - b1) * (g - m)
//   v  = b2 * v + (1 - b2) * g^2
//   p -= (lr / (1 - b1^step)) * m / (sqrt(v) / sqrt(1 - b2^step) + eps)
// The scalar coefficients are computed once on the host in double, exactly as the twin, then rounded
// to fp32. Elementwise, one thread per element in a grid-stride loop; it also writes the bf16 copy of
// the new weights so the forward pass needs no separate conversion.
//
// sum_squares: CUB DeviceReduce::TransformReduce, float -> double square (exact) summed in double.
// CUB documents run-to-run determinism for this on the same device and size. scale: g *= s.
#include <cub/device/device_reduce.cuh>
#include <cuda/std/functional>

#include <algorithm>
#include <cmath>
#include <string>

#include "adamw.cuh"
#include "common.cuh"
#include "launch.cuh"
#include "host/error.h"

namespace rusca::cuda {
namespace {

using bf16 = __nv_bfloat16;

struct AdamCoeffs {
    float decay;         // 1 - lr * wd
    float one_minus_b1;  // 1 - b1
    float b2, one_minus_b2;
    float step_size;  // lr / (1 - b1^step)
    float bc2_sqrt;   // sqrt(1 - b2^step)
    float eps;
};

__global__ void adamw_kernel(float* params, const float* grads, float* m, float* v, bf16* params_bf16, size_t n,
                             AdamCoeffs k) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        const float g = grads[i];
        const float mi = m[i] + k.one_minus_b1 * (g - m[i]);
        const float vi = k.b2 * v[i] + k.one_minus_b2 * g * g;
        const float p = params[i] * k.decay - k.step_size * (mi / (sqrtf(vi) / k.bc2_sqrt + k.eps));
        m[i] = mi;
        v[i] = vi;
        params[i] = p;
        if (params_bf16) params_bf16[i] = __float2bfloat16(p);
    }
}

__global__ void scale_kernel(float* g, size_t n, float s) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        g[i] *= s;
}

// x -> (double)x * x: exact, as in the twin.
struct SquareInDouble {
    __host__ __device__ double operator()(float x) const { return (double)x * (double)x; }
};

constexpr int kThreads = 256;

// Enough blocks to fill the GPU several times over; the grid-stride loop covers the rest.
int grid_for(size_t n) { return (int)std::min<size_t>((n + kThreads - 1) / kThreads, 1u << 16); }

}  // namespace

void adamw_update(float* params, const float* grads, float* m, float* v, size_t n, float lr, float beta1,
                  float beta2, float eps, float weight_decay, int step, bf16* params_bf16, cudaStream_t stream) {
    check(step >= 1, "adamw_update: step counts from 1, got " + std::to_string(step));
    if (n == 0) return;
    check(params && grads && m && v, "adamw_update: null pointer");
    AdamCoeffs k;  // as in the twin: double, then fp32
    k.decay = (float)(1.0 - (double)lr * weight_decay);
    k.one_minus_b1 = (float)(1.0 - beta1);
    k.b2 = beta2;
    k.one_minus_b2 = (float)(1.0 - beta2);
    k.step_size = (float)(lr / (1.0 - std::pow((double)beta1, step)));
    k.bc2_sqrt = (float)std::sqrt(1.0 - std::pow((double)beta2, step));
    k.eps = eps;
    LAUNCH_KERNEL(adamw_kernel, grid_for(n), kThreads, 0, stream, params, grads, m, v, params_bf16, n, k);
}

void sum_squares_to_device(double* out, const float* g, size_t n, cudaStream_t stream) {
    check(out && (g || n == 0), "sum_squares: null pointer");
    if (n == 0) {
        CUDA_CHECK(cudaMemsetAsync(out, 0, sizeof(double), stream));
        return;
    }
    size_t temp_bytes = 0;
    CUDA_CHECK(cub::DeviceReduce::TransformReduce(nullptr, temp_bytes, g, out, n, ::cuda::std::plus<double>{},
                                                  SquareInDouble{}, 0.0, stream));
    void* temp = nullptr;
    CUDA_CHECK(cudaMallocAsync(&temp, temp_bytes, stream));
    CUDA_CHECK(cub::DeviceReduce::TransformReduce(temp, temp_bytes, g, out, n, ::cuda::std::plus<double>{},
                                                  SquareInDouble{}, 0.0, stream));
    CUDA_CHECK(cudaFreeAsync(temp, stream));
}

double sum_squares(const float* g, size_t n, cudaStream_t stream) {
    if (n == 0) return 0.0;
    double* d_out = nullptr;
    CUDA_CHECK(cudaMallocAsync(&d_out, sizeof(double), stream));
    sum_squares_to_device(d_out, g, n, stream);
    double result = 0.0;
    CUDA_CHECK(cudaMemcpyAsync(&result, d_out, sizeof(double), cudaMemcpyDeviceToHost, stream));
    CUDA_CHECK(cudaFreeAsync(d_out, stream));
    CUDA_CHECK(cudaStreamSynchronize(stream));
    return result;
}

void scale(float* g, size_t n, float s, cudaStream_t stream) {
    if (n == 0) return;
    check(g != nullptr, "scale: null pointer");
    LAUNCH_KERNEL(scale_kernel, grid_for(n), kThreads, 0, stream, g, n, s);
}

}  // namespace rusca::cuda
