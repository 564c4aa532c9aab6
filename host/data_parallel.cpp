// data_parallel.cpp: the reductions and the sharded AdamW step of data_parallel.h.
#include "data_parallel.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "cpu/ops.h"
#include "error.h"

namespace rusca {

DataParallel::DataParallel(Comm& comm, const ParamLayout& layout, int zero_stage, Comm* device_comm)
    : comm_(comm), device_comm_(device_comm), layout_(layout), zero_(zero_stage) {
    check(zero_stage == 0 || zero_stage == 1, "--zero " + std::to_string(zero_stage) + ": only 0 and 1 are supported");
    check(!device_comm || (device_comm->rank() == comm.rank() && device_comm->size() == comm.size()),
          "the device communicator's ranks differ from the host communicator's (a rusca bug)");
    const size_t W = size_t(world());
    chunk_ = (layout.total + W - 1) / W;
    lo_ = std::min(layout.total, size_t(rank()) * chunk_);
    hi_ = std::min(layout.total, lo_ + chunk_);
}

void DataParallel::require_supported(const Model& model, const std::string& no_device_comm_why) const {
    check(zero_ == 0 || model.device() == std::string("cpu") || world() == 1 || device_comm_,
          std::string("--zero 1 on ") + model.device() + " shards over NCCL, which these ranks cannot use (" +
              (no_device_comm_why.empty() ? "no device communicator" : no_device_comm_why) +
              "): leave out --zero, or give each rank its own GPU");
}

std::string DataParallel::describe() const {
    return "rank " + std::to_string(rank()) + " of " + std::to_string(world()) + " (" + comm_.backend() +
           (device_comm_ ? std::string(", device gradients over ") + device_comm_->backend() : std::string()) +
           (zero_ ? ", ZeRO-1: optimizer state sharded)" : ", replicated AdamW)");
}

std::pair<size_t, size_t> DataParallel::share(size_t n) const {
    const size_t W = size_t(world()), r = size_t(rank());
    return {n * r / W, n * (r + 1) / W};
}

double DataParallel::sum(double x) {
    comm_.all_reduce(&x, 1, ReduceOp::Sum);
    return x;
}

void DataParallel::sum(std::vector<double>& xs) {
    if (!xs.empty()) comm_.all_reduce(xs.data(), xs.size(), ReduceOp::Sum);
}

double DataParallel::max(double x) {
    comm_.all_reduce(&x, 1, ReduceOp::Max);
    return x;
}

bool DataParallel::any(bool b) { return max(b ? 1.0 : 0.0) > 0; }

float DataParallel::global_token_mean(Model& model, float loss, long& tokens) {
    if (!active()) return loss;
    const long local = tokens;
    // A rank with nothing counted contributes 0, whatever its mean of nothing came out as.
    std::vector<double> s = {local > 0 ? double(loss) * double(local) : 0.0, double(local)};
    sum(s);
    tokens = long(s[1]);
    const double mean = s[0] / s[1];
    if (!std::isfinite(mean)) return std::numeric_limits<float>::quiet_NaN();
    // d(global mean)/dw = sum over ranks of (local tokens / global tokens) * d(local mean)/dw; step()
    // applies the factor to the gradients it reduces.
    grad_scale_ = local > 0 ? float(double(local) / s[1]) : 0.0f;
    return float(mean);
}

float DataParallel::step(Model& model, AdamW& adam, float lr) {
    if (!active()) return model.optimizer_step(adam, lr);
    if (device_shard_) {  // ZeRO-1 where the gradients live (Model::sharded_step)
        const float norm = model.sharded_step(device_comm_, comm_, grad_scale_, adam, lr);
        grad_scale_ = 1.0f;
        device_steps_++;
        return norm;
    }
    // A device backend with a device communicator: scaled and summed in place on the device, then
    // its own AdamW there, replicated: no gradients, weights or moments cross to the host.
    if (device_comm_ && !zero_ && model.all_reduce_grads(*device_comm_, grad_scale_)) {
        grad_scale_ = 1.0f;
        device_steps_++;
        return model.optimizer_step(adam, lr);
    }
    float* grads = model.grads();  // the CPU backend's own array; a device backend's host copy
    if (grad_scale_ != 1.0f) cpu::scale(grads, layout_.total, grad_scale_);
    grad_scale_ = 1.0f;
    if (zero_) return zero1_step(model, grads, adam, lr);
    comm_.all_reduce(grads, layout_.total, ReduceOp::Sum);
    // Identical inputs on every rank: every rank makes the same update.
    if (model.device() == std::string("cpu")) return model.optimizer_step(adam, lr);
    // A device backend: AdamW on the host over the reduced copy (its gradients were not replaced), then
    // the weights go back up, and the moments too, where its checkpoints read them.
    model.download_params();
    const float norm = adam.step(model.params(), grads, lr);
    if (std::isfinite(norm)) {
        model.upload_params();
        model.upload_optimizer(adam);
    }
    return norm;
}

// Reduce-scatter the gradients, global norm from the slices' sums of squares, clip, AdamW on this
// rank's slice (tensor by tensor where the slice cuts them: weight decay is per tensor), all-gather.
float DataParallel::zero1_step(Model& model, const float* grads, AdamW& adam, float lr) {
    const size_t W = size_t(world()), n = hi_ - lo_;
    float* params = model.params();
    buf_.assign(W * chunk_, 0.0f);  // padded to whole slices
    std::copy(grads, grads + layout_.total, buf_.begin());
    slice_.resize(chunk_);
    comm_.reduce_scatter(buf_.data(), slice_.data(), chunk_);
    const float norm = float(std::sqrt(sum(cpu::sum_squares(slice_.data(), n))));
    if (!std::isfinite(norm)) return norm;  // every rank sees the same norm: all skip
    if (adam.cfg.grad_clip > 0) {
        const float coef = adam.cfg.grad_clip / (norm + 1e-6f);
        if (coef < 1.0f) cpu::scale(slice_.data(), n, coef);
    }
    adam.t++;
    for (const ParamInfo& p : layout_.tensors) {
        const size_t a = std::max(lo_, p.offset), b = std::min(hi_, p.offset + p.numel);
        if (a >= b) continue;
        cpu::adamw_update(params + a, slice_.data() + (a - lo_), adam.m.data() + (a - lo_), adam.v.data() + (a - lo_),
                          b - a, lr, adam.cfg.beta1, adam.cfg.beta2, adam.cfg.eps,
                          p.decay ? adam.cfg.weight_decay : 0.0f, adam.t);
    }
    std::copy(params + lo_, params + hi_, buf_.begin() + size_t(rank()) * chunk_);
    comm_.all_gather(buf_.data() + size_t(rank()) * chunk_, buf_.data(), chunk_);
    std::copy(buf_.begin(), buf_.begin() + layout_.total, params);
    return norm;
}

void DataParallel::place_optimizer(Model& model, AdamW& adam) {
    device_shard_ = zero_ && model.shard_optimizer(shard(), adam);
    if (!device_shard_) model.upload_optimizer(adam);
    shard_moments(adam);
}

void DataParallel::shard_moments(AdamW& adam) const {
    if (!zero_) return;
    check(adam.m.size() == layout_.total && adam.v.size() == layout_.total, "ZeRO-1: moments are already sharded (a rusca bug)");
    adam.m = std::vector<float>(adam.m.begin() + lo_, adam.m.begin() + hi_);
    adam.v = std::vector<float>(adam.v.begin() + lo_, adam.v.begin() + hi_);
}

void DataParallel::gather(const float* slice, std::vector<float>& full) {
    buf_.assign(size_t(world()) * chunk_, 0.0f);
    std::copy(slice, slice + (hi_ - lo_), buf_.begin() + size_t(rank()) * chunk_);
    comm_.all_gather(buf_.data() + size_t(rank()) * chunk_, buf_.data(), chunk_);
    full.assign(buf_.begin(), buf_.begin() + layout_.total);
}

void DataParallel::full_state(Model& model, AdamW& adam, std::vector<float>& m, std::vector<float>& v) {
    model.download_params();
    model.download_optimizer(adam);
    if (!zero_) {
        m = adam.m, v = adam.v;
        return;
    }
    if (device_shard_) {  // each rank downloaded its own slice of the master weights
        std::vector<float> full;
        gather(model.params() + lo_, full);
        std::copy(full.begin(), full.end(), model.params());
    }
    gather(adam.m.data(), m);
    gather(adam.v.data(), v);
}

}  // namespace rusca
