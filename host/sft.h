// sft.h: supervised fine-tuning (next-token prediction) with checkpoints and exact resume.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "optimizer.h"

namespace rusca {

struct SftOptions {
    std::string model;        // model directory (config.json + safetensors) to start from, or
    std::string init_config;  // a config.json to start from random weights
    std::string data;         // .txt or .jsonl
    std::string tokenizer;    // sentencepiece .model
    std::string out = "runs/sft";
    int batch = 8, seq = 128, steps = 100;
    float lr = 3e-4f, min_lr_ratio = 0.1f;
    int warmup = 10;
    std::string schedule = "cosine";  // cosine | constant (both after linear warm-up)
    AdamWConfig adam;
    uint64_t seed = 1337;
    int save_every = 0;  // 0: only at the end (and on SIGINT / SIGTERM)
    int stop_at = 0;     // save and stop after this step, keeping the --steps schedule (time-limited jobs)
    bool resume = false;
    std::string device = "auto";  // cpu | cuda | auto (CUDA when a GPU is present)
    int threads = 0;     // OpenMP threads; 0 keeps the default
    bool quiet = false;  // no progress lines
    int zero = 0;        // data parallel: 1 = ZeRO-1 (AdamW moments sharded over the ranks)
};

struct SftResult {
    std::vector<float> losses;   // one per step run in this call
    std::string last_checkpoint;
    bool interrupted = false;    // stopped by SIGINT / SIGTERM after saving
};

SftResult run_sft(const SftOptions& opt);

// Learning rate at `step` (1-based): linear warm-up, then constant or cosine down to min_lr_ratio.
float lr_at(const SftOptions& opt, int step);

}  // namespace rusca
