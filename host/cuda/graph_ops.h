// graph_ops.h: the CUDA launchers (cuda/<family>.cuh) as the op table host/graph.h runs on, on one
// stream: bf16 activations and weights, fp32 saved rstd and weight gradients. Shared by training
// (cuda_model.cpp), prefill (cuda_feed.cpp) and decode (cuda_decode.cpp); each mode adds where its
// keys and values live and which weights it reads (W). The residual add is fused with the next
// RMSNorm (one kernel).
#pragma once
#ifdef RUSCA_CUDA
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include "cuda/common.cuh"     // CUDA_CHECK
#include "cuda/embedding.cuh"  // embedding_forward / _backward
#include "cuda/matmul.cuh"     // linear_forward / _backward
#include "cuda/rmsnorm.cuh"    // rmsnorm_forward / _backward, fused_residual_rmsnorm_forward
#include "cuda/rope.cuh"       // rope_forward / _backward
#include "cuda/swiglu.cuh"     // swiglu_forward / _backward
#include "host/config.h"
#include "host/graph.h"
#include "host/params.h"

namespace rusca::cuda {

class GraphOps {
public:
    using bf16 = __nv_bfloat16;
    using Act = bf16;
    using Stat = float;
    using Wt = bf16;
    using Grad = float;
    using Bufs = graph::LayerBufs<bf16, float>;

    GraphOps(const ModelConfig& c, const ParamLayout& layout, cudaStream_t stream, const int* tokens, const int* pos)
        : c_(c), layout_(layout), stream_(stream), tokens_(tokens), pos_(pos) {}

    const ModelConfig& config() const { return c_; }
    const ParamLayout& layout() const { return layout_; }
    const int* tokens() const { return tokens_; }
    const int* pos() const { return pos_; }

    void embedding(bf16* out, const int* tokens, const bf16* wte, int N, int C) const {
        embedding_forward(out, tokens, wte, N, C, stream_);
    }
    void rmsnorm(bf16* out, float* rstd, const bf16* x, const bf16* w, int N, int C) const {
        rmsnorm_forward(out, rstd, x, w, N, C, c_.rms_norm_eps, stream_);
    }
    void residual_rmsnorm(bf16* res_out, bf16* out, float* rstd, const bf16* res_in, const bf16* delta, const bf16* w,
                          int N, int C) const {
        fused_residual_rmsnorm_forward(res_out, out, rstd, res_in, delta, w, N, C, c_.rms_norm_eps, stream_);
    }
    void linear(bf16* out, const bf16* in, const bf16* W, const bf16* b, int N, int C, int OC) const {
        linear_forward(out, in, W, b, N, C, OC, stream_);
    }
    void rope(bf16* out, const bf16* x, int N, int H) const {
        rope_forward(out, x, pos_, N, H, c_.head_dim, c_.rope_theta, stream_);
    }
    void swiglu(bf16* out, const bf16* gate, const bf16* up, size_t n) const { swiglu_forward(out, gate, up, n, stream_); }

    // training backward
    void zero(bf16* p, size_t n) const { CUDA_CHECK(cudaMemsetAsync(p, 0, n * sizeof(bf16), stream_)); }
    void embedding_backward(float* dwte, const bf16* dout, const int* tokens, int N, int C) const {
        cuda::embedding_backward(dwte, dout, tokens, N, C, stream_);
    }
    void rmsnorm_backward(bf16* dx, float* dw, const bf16* dout, const bf16* x, const bf16* w, const float* rstd, int N,
                          int C) const {
        cuda::rmsnorm_backward(dx, dw, dout, x, w, rstd, N, C, stream_);
    }
    void linear_backward(bf16* dinp, float* dW, float* dbias, const bf16* dout, const bf16* inp, const bf16* W, int N,
                         int C, int OC) const {
        cuda::linear_backward(dinp, dW, dbias, dout, inp, W, N, C, OC, stream_);
    }
    void rope_backward(bf16* dx, const bf16* dout, int N, int H) const {
        cuda::rope_backward(dx, dout, pos_, N, H, c_.head_dim, c_.rope_theta, stream_);
    }
    void swiglu_backward(bf16* dgate, bf16* dup, const bf16* dout, const bf16* gate, const bf16* up, size_t n) const {
        cuda::swiglu_backward(dgate, dup, dout, gate, up, n, stream_);
    }

protected:
    const ModelConfig& c_;
    const ParamLayout& layout_;
    cudaStream_t stream_;
    const int *tokens_, *pos_;
};

}  // namespace rusca::cuda
#endif  // RUSCA_CUDA
