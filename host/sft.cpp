// sft.cpp: the supervised training loop. Reads top to bottom: set up (model, data, optimizer,
// resume), then per step: batch -> forward -> backward -> clip + AdamW -> log -> checkpoint.
#include "sft.h"

#include <omp.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "checkpoint.h"
#include "comm_nccl.h"
#include "data_parallel.h"
#include "error.h"
#include "fileio.h"
#include "mfu.h"
#include "model.h"
#include "rng.h"
#include "run_log.h"
#include "sft_data.h"
#include "stop_signal.h"
#include "tokenizer/tokenizer.h"

namespace rusca {

namespace {

ModelConfig config_for(const SftOptions& opt) {
    check(opt.model.empty() != opt.init_config.empty(), "give exactly one of --model DIR or --init-config FILE");
    return load_config(opt.model.empty() ? opt.init_config : opt.model + "/config.json");
}

// "loss: first 10 steps 6.21 -> last 10 steps 2.87", the demo's one-line verdict.
void print_loss_summary(const std::vector<float>& losses) {
    const size_t k = std::min<size_t>(10, losses.size() / 2);
    if (k == 0) return;
    double first = 0, last = 0;
    for (size_t i = 0; i < k; i++) first += losses[i], last += losses[losses.size() - 1 - i];
    std::fprintf(stderr, "loss: first %zu steps %.3f -> last %zu steps %.3f\n", k, first / k, k, last / k);
}

}  // namespace

float lr_at(const SftOptions& opt, int step) {
    if (step <= opt.warmup) return opt.lr * float(step) / float(std::max(opt.warmup, 1));
    if (opt.schedule == "constant") return opt.lr;
    double progress = double(step - opt.warmup) / double(std::max(opt.steps - opt.warmup, 1));
    double cosine = 0.5 * (1.0 + std::cos(M_PI * std::min(progress, 1.0)));
    return float(opt.lr * (opt.min_lr_ratio + (1.0 - opt.min_lr_ratio) * cosine));
}

SftResult run_sft(const SftOptions& options) {
    // Data parallel (mpirun / srun): rank 0 alone prints, logs and writes checkpoints.
    SftOptions opt = options;
    const bool root = world().rank() == 0;  // brings MPI up first, so a failure below ends every rank
    opt.quiet = opt.quiet || !root;
    if (opt.threads > 0) omp_set_num_threads(opt.threads);
    check(opt.schedule == "cosine" || opt.schedule == "constant",
          "--schedule: \"" + opt.schedule + "\" (expected cosine or constant)");
    const ModelConfig config = config_for(opt);
    Tokenizer tok(tokenizer_path(opt.tokenizer, opt.model));
    check(tok.vocab_size() <= config.vocab_size,
          tok.path() + ": tokenizer has " + std::to_string(tok.vocab_size()) + " tokens but the model's vocab_size is " +
              std::to_string(config.vocab_size));
    SftDataset data(opt.data, tok, opt.seq);
    std::unique_ptr<Model> model = make_model(config, opt.device);
    const ParamLayout& layout = model->layout;
    AdamW adam(layout, opt.adam);
    // CUDA ranks sum their gradients on the device over NCCL where they can (comm_nccl.h); otherwise
    // (and on the CPU) through the host communicator.
    std::string host_grads_why;
    std::unique_ptr<Comm> device_comm = world().size() > 1 && model->device() == std::string("cuda")
                                            ? make_device_comm(world(), &host_grads_why)
                                            : nullptr;
    if (!device_comm && !host_grads_why.empty() && opt.zero == 0 && !opt.quiet)
        std::fprintf(stderr, "rusca: CUDA gradients reduced through the host (%s)\n", host_grads_why.c_str());
    DataParallel dp(world(), layout, opt.zero, device_comm.get());
    dp.require_supported(*model, host_grads_why);
    EpochSampler sampler(data.size(), opt.seed);
    if (opt.model.empty()) init_params(layout, model->params(), opt.seed);
    else load_params(opt.model, layout, model->params());
    if (!opt.quiet)
        std::fprintf(stderr, "rusca sft: %s backend, %zu parameters, %zu training rows%s\n", model->device(), layout.total,
                     data.size(), dp.active() ? ("; data parallel, " + dp.describe()).c_str() : "");

    // Resume: weights, AdamW moments and step, data position, from out/latest.
    int start = 0;
    const std::string metrics_path = opt.out + "/metrics.jsonl";
    std::string ckpt = opt.resume ? latest_checkpoint(opt.out) : "";
    if (opt.resume && ckpt.empty() && !opt.quiet)
        std::fprintf(stderr, "rusca sft: no checkpoint in %s, starting from step 0\n", opt.out.c_str());
    if (!ckpt.empty()) {
        TrainState st = load_train_state(ckpt, layout);
        meta_expect(st, "batch", std::to_string(opt.batch), ckpt);
        meta_expect(st, "seq", std::to_string(opt.seq), ckpt);
        start = restore_training(ckpt, st, layout, model->params(), adam, sampler, dp.root() ? metrics_path : "");
        if (!opt.quiet) std::fprintf(stderr, "rusca sft: resumed from %s (step %d)\n", ckpt.c_str(), start);
    }
    dp.place_optimizer(*model, adam);
    model->upload_params();
    make_dirs(opt.out);
    // Other ranks log nowhere: their metrics are rank 0's (reduced before logging).
    std::ofstream metrics(dp.root() ? metrics_path : "/dev/null", std::ios::app);
    check(metrics.good(), metrics_path + ": cannot open for writing");

    auto save = [&](int step, float loss) {
        TrainState st = training_state(step, adam, sampler);
        dp.full_state(*model, adam, st.m, st.v);  // a collective under ZeRO-1: every rank takes part
        if (!dp.root()) return std::string();
        st.meta.insert({{"batch", std::to_string(opt.batch)}, {"seq", std::to_string(opt.seq)},
                        {"seed", std::to_string(opt.seed)}, {"data", opt.data}, {"loss", std::to_string(loss)}});
        return save_checkpoint(opt.out, step, config, layout, model->params(), st, tok.path());
    };

    // MFU on the step line, only on a GPU the peak table knows.
    const double peak_flops = model->device() == std::string("cuda") ? current_gpu_peak_flops() : 0;
    StopSignals stop;
    SftResult result;
    const int B = opt.batch, T = opt.seq;
    std::vector<int> tokens(size_t(B) * T), targets(size_t(B) * T);
    float loss = 0;
    int step = start;
    const int last = opt.stop_at > 0 ? std::min(opt.stop_at, opt.steps) : opt.steps;
    // Every rank draws the whole batch in the same order and keeps rows [b0, b1).
    const auto [b0, b1] = dp.share(size_t(B));
    const int local_rows = int(b1 - b0);
    while (step < last && !dp.any(stop.requested())) {
        step++;
        auto t0 = std::chrono::steady_clock::now();
        for (int b = 0; b < B; b++) {
            const size_t row = sampler.next();
            if (size_t(b) >= b0 && size_t(b) < b1)
                data.get(row, &tokens[size_t(b - b0) * T], &targets[size_t(b - b0) * T]);
        }
        model->zero_grad();
        loss = local_rows > 0 ? model->forward_backward(tokens.data(), targets.data(), local_rows, T) : 0.0f;
        long counted = local_rows > 0 ? model->counted_tokens() : 0;
        loss = dp.global_token_mean(*model, loss, counted);
        nlohmann::json m = {{"step", step}, {"loss", loss}, {"tokens", counted}};
        const float lr = lr_at(opt, step);
        if (std::isfinite(loss)) {
            const float norm = dp.step(*model, adam, lr);
            if (std::isfinite(norm)) m["grad_norm"] = norm;
            else m["skipped"] = "non-finite gradient norm; update skipped";
        } else {
            m["skipped"] = "non-finite loss; update skipped";
        }
        double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        m["lr"] = lr, m["ms"] = secs * 1e3, m["tokens_per_s"] = double(B) * T / secs;
        char mfu[32] = "";
        if (peak_flops > 0) {  // forward + backward = 3 forwards
            m["mfu"] = 3 * forward_flops_per_token(config, T) * B * T / secs / peak_flops;
            std::snprintf(mfu, sizeof mfu, " | MFU %.1f%%", 100 * m["mfu"].get<double>());
        }
        metrics << m.dump() << "\n" << std::flush;
        result.losses.push_back(loss);
        if (!opt.quiet)
            std::fprintf(stderr, "step %5d/%d | loss %.4f | grad %.3f | lr %.2e | %.0f ms | %.0f tok/s%s%s\n", step,
                         opt.steps, loss, m.value("grad_norm", 0.0f), lr, secs * 1e3, double(B) * T / secs, mfu,
                         m.contains("skipped") ? " | SKIPPED" : "");
        if (opt.save_every > 0 && step % opt.save_every == 0 && step < last)
            result.last_checkpoint = save(step, loss);
    }
    if (step > start) result.last_checkpoint = save(step, loss);
    else result.last_checkpoint = ckpt;
    result.interrupted = dp.any(stop.requested());
    if (!opt.quiet) {
        std::fprintf(stderr, "rusca sft: %s at step %d; checkpoint %s\n",
                     result.interrupted ? "interrupted" : "done", step, result.last_checkpoint.c_str());
        print_loss_summary(result.losses);
    }
    return result;
}

}  // namespace rusca
