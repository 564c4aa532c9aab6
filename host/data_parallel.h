// data_parallel.h: what sft and rl do differently on several ranks, kept out of their loops.
//  - the data: every rank draws the whole step (same seed, same order) and keeps its share;
//  - the loss: each rank weights its local mean by its share of the GLOBAL count (tokens, sequences)
//    so that the sum over ranks is the mean over the global minibatch; counts are summed first;
//  - the update: gradients summed over ranks, then clip + AdamW, either replicated (every rank
//    updates everything) or ZeRO-1 (--zero 1): gradients reduce-scattered, each rank keeps the AdamW
//    moments of its 1/N of the parameters, updates that slice, and the slices are all-gathered
//    (a device backend with a device communicator keeps its fp32 master weights sharded too, and
//    all-gathers its bf16 weights: Model::shard_optimizer);
//  - checkpoints hold the FULL state (moments gathered), written by rank 0, so a run resumes on any
//    number of ranks.
// One rank without ZeRO takes exactly the single-process path (model->optimizer_step).
#pragma once
#include <cstddef>
#include <string>
#include <utility>
#include <vector>

#include "comm.h"
#include "model.h"
#include "optimizer.h"

namespace rusca {

class DataParallel {
public:
    // `device_comm` (optional, e.g. NCCL, same ranks as `comm`): reduces a device backend's gradients
    // where they live; without it a device backend's gradients go through the host and `comm`.
    DataParallel(Comm& comm, const ParamLayout& layout, int zero_stage, Comm* device_comm = nullptr);

    int rank() const { return comm_.rank(); }
    int world() const { return comm_.size(); }
    bool root() const { return rank() == 0; }
    int zero() const { return zero_; }
    // Whether the loops must reduce anything (several ranks, or ZeRO asked on one).
    bool active() const { return world() > 1 || zero_ > 0; }
    // Error unless this layer can train `model` as asked: ZeRO-1 on a device backend needs the device
    // communicator (NCCL) when there are several ranks. A device backend trains data parallel with its
    // gradients summed on the device and its own AdamW when there is a device communicator, else with
    // them reduced and AdamW run on the host.
    void require_supported(const Model& model, const std::string& no_device_comm_why = "") const;
    // "rank 1 of 4 (mpi, ZeRO-1: ...)", for the start-up line; names the device communicator if any.
    std::string describe() const;
    // Steps whose gradients were summed by the device communicator (a test's proof of the path).
    long device_reduced_steps() const { return device_steps_; }

    // Items [first, last) of n that this rank takes: contiguous, sizes differ by at most one.
    std::pair<size_t, size_t> share(size_t n) const;
    // Item i (a prompt group) belongs to rank i mod world: every contiguous run of items, so every
    // minibatch of a step, is spread evenly over the ranks.
    bool owns(size_t item) const { return item % size_t(world()) == size_t(rank()); }

    double sum(double x);
    void sum(std::vector<double>& xs);
    double max(double x);
    bool any(bool b);

    // SFT: weights the local gradients of a token-mean loss over `tokens` counted positions (in the
    // next step()) so that their sum over ranks is the gradient of the mean over all ranks' tokens;
    // returns that global mean loss and sets `tokens` to the global count. A non-finite loss on any
    // rank returns NaN on all.
    float global_token_mean(Model& model, float loss, long& tokens);

    // Sums the (already weighted) local gradients over ranks, then clip + AdamW, replicated or
    // sharded; returns the global gradient norm before clipping (non-finite: nothing updated).
    float step(Model& model, AdamW& adam, float lr);

    // This rank's ZeRO-1 slice of the flat parameters.
    ParamShard shard() const { return {rank(), world(), chunk_, lo_, hi_}; }
    // Puts the optimizer state where the steps read it, after a restore or for a fresh run (model's
    // params() and adam's moments full on the host): the device's moments on a device backend; under
    // ZeRO-1 only this rank's slice of them (and of a device backend's master weights).
    void place_optimizer(Model& model, AdamW& adam);
    // What a checkpoint holds, FULL, on the host: the fp32 weights in model.params() and the moments
    // in m, v, gathered from every rank's slice under ZeRO-1 (a collective: every rank calls it).
    void full_state(Model& model, AdamW& adam, std::vector<float>& m, std::vector<float>& v);

private:
    float zero1_step(Model& model, const float* grads, AdamW& adam, float lr);
    void shard_moments(AdamW& adam) const;
    void gather(const float* slice, std::vector<float>& full);

    Comm& comm_;
    Comm* device_comm_;
    long device_steps_ = 0;
    const ParamLayout& layout_;
    int zero_;
    bool device_shard_ = false;           // ZeRO-1 kept by the device backend (place_optimizer)
    float grad_scale_ = 1.0f;             // this rank's weight in the global mean, applied by step()
    size_t chunk_ = 0, lo_ = 0, hi_ = 0;  // ZeRO-1: each rank's padded slice size; this rank's [lo, hi)
    std::vector<float> buf_, slice_;     // ZeRO-1 scratch: padded full array, this rank's gradient slice
};

}  // namespace rusca
