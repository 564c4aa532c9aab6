// mfu.h: model FLOP utilization, as llm.c prints it on every step line (llmc/mfu.h): the FLOPs a
// step's matmuls must do, over its time, over the card's peak dense bf16 FLOP/s from a table.
//
// FLOPs per token of a forward pass: 2 per parameter (every weight is one multiply-add per token)
// plus causal attention, 2 * 2 * T/2 * q_dim per layer (QK^T and PV over half the sequence on
// average). A backward pass costs twice the forward. Embedding lookups are counted as matmuls, as
// llm.c counts all parameters; the difference is a few percent for the models we train.
#pragma once
#include <string>

#include "config.h"

namespace rusca {

// Peak dense bf16 tensor FLOP/s of the card named `gpu_name` (cudaDeviceProp::name), 0 when the
// table does not know it (then no MFU is printed rather than a made-up one).
double peak_bf16_flops(const std::string& gpu_name);

// Forward FLOPs of one token in a sequence of length T.
double forward_flops_per_token(const ModelConfig& c, int T);

// Peak FLOP/s of the current CUDA device (0 without one, or when unknown).
double current_gpu_peak_flops();

}  // namespace rusca
