// rl.cpp: the RuscaRL training loop. run_rl() reads as the algorithm of SPEC.md, one step at a time:
//
//   1. draw prompts                        5. old (and reference) log-probs on the BARE prompt
//   2. build each rollout's scaffold       6. minibatch updates: fused GRPO loss -> backward -> AdamW
//   3. generate with the scaffold          7. metrics, checkpoint
//   4. judge without it -> rewards -> group advantages
//
// Everything clever lives in the named functions above run_rl().
#include "rl.h"

#include <omp.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "chat.h"
#include "checker.h"
#include "checkpoint.h"
#include "comm_nccl.h"
#include "data_parallel.h"
#include "error.h"
#include "engine.h"
#include "eval.h"
#include "eval_report.h"
#include "fileio.h"
#include "generate.h"
#include "gpu.h"
#include "judge.h"
#include "judge_backend.h"
#include "memory_plan.h"
#include "mfu.h"
#include "model.h"
#include "rl_data.h"
#include "rl_metrics.h"
#include "rl_settings.h"
#include "rng.h"
#include "rollout_dump.h"
#include "rubric.h"
#include "run_log.h"
#include "sft_data.h"
#include "stop_signal.h"

namespace rusca {

namespace {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// The policy's view of a set of rollouts for the loss: bare prompt + completion, right-padded to T.
// Response token j of row b is predicted by the hidden state at flat position b*T + start_b + j - 1;
// every other position has target -1 and mask 0.
GrpoBatch make_batch(const std::vector<Rollout*>& rs, const std::vector<std::vector<int>>& bare_prompts, int pad) {
    GrpoBatch b;
    b.B = b.S = int(rs.size());
    for (const Rollout* r : rs) {
        b.T = std::max(b.T, int(bare_prompts[r->prompt].size() + r->completion.tokens.size()));
        b.max_len = std::max(b.max_len, int(r->completion.tokens.size()));
    }
    const size_t N = size_t(b.B) * b.T;
    b.tokens.assign(N, pad), b.target.assign(N, -1), b.seq.assign(N, 0);
    b.adv.assign(N, 0.0f), b.mask.assign(N, 0.0f);
    for (int i = 0; i < b.B; i++) {
        const std::vector<int>& prompt = bare_prompts[rs[i]->prompt];
        const std::vector<int>& done = rs[i]->completion.tokens;
        std::copy(prompt.begin(), prompt.end(), b.tokens.begin() + size_t(i) * b.T);
        std::copy(done.begin(), done.end(), b.tokens.begin() + size_t(i) * b.T + prompt.size());
        for (size_t j = 0; j < done.size(); j++) {
            const size_t n = size_t(i) * b.T + prompt.size() + j - 1;
            b.target[n] = done[j], b.seq[n] = i, b.adv[n] = rs[i]->advantage, b.mask[n] = 1;
        }
    }
    return b;
}

// One optimizer step's rollouts, in micro-batches whose gradients add up to the minibatch's: each
// micro-batch's loss is scaled by its share of the minibatch's aggregate.
struct Minibatch {
    std::vector<GrpoBatch> micro;
    std::vector<double> share;
    long tokens = 0;  // counted response tokens of all micro-batches
};

// Data parallel: each rank generated and judged its own groups (`own`). Their outcomes (reward,
// length, whether the response stopped, every criterion's verdict and mask) are summed into every
// rank's copy of the step, so advantages (batch std too), metrics and alarms are the single-rank
// ones. All ranks drew the same prompts, so the flat layout below is the same on all. Returns the
// response lengths of the whole step.
std::vector<double> share_outcomes(DataParallel& dp, std::vector<Rollout>& rollouts,
                                   const std::vector<const RubricExample*>& prompts, const std::vector<size_t>& own) {
    std::vector<double> lengths(rollouts.size());
    for (size_t k : own) lengths[k] = double(rollouts[k].completion.tokens.size());
    if (!dp.active()) return lengths;
    std::vector<size_t> at(rollouts.size() + 1, 0);  // rollout k's values start at at[k]
    for (size_t k = 0; k < rollouts.size(); k++) at[k + 1] = at[k] + 3 + 2 * prompts[rollouts[k].prompt]->rubrics.size();
    std::vector<double> v(at.back(), 0.0);
    for (size_t k : own) {
        const Rollout& r = rollouts[k];
        v[at[k]] = r.reward, v[at[k] + 1] = lengths[k], v[at[k] + 2] = r.completion.stopped;
        for (size_t c = 0; c < r.met.size(); c++) v[at[k] + 3 + 2 * c] = r.met[c], v[at[k] + 4 + 2 * c] = r.failed[c];
    }
    dp.sum(v);
    for (size_t k = 0; k < rollouts.size(); k++) {
        Rollout& r = rollouts[k];
        const size_t n = prompts[r.prompt]->rubrics.size();
        r.reward = v[at[k]], lengths[k] = v[at[k] + 1], r.completion.stopped = v[at[k] + 2] != 0;
        r.met.assign(n, false), r.failed.assign(n, false);
        for (size_t c = 0; c < n; c++) r.met[c] = v[at[k] + 3 + 2 * c] != 0, r.failed[c] = v[at[k] + 4 + 2 * c] != 0;
    }
    return lengths;
}

// share = what fraction of the minibatch's aggregate a micro-batch's own aggregate is: its counted
// tokens (token-mean) or its sequences (seq-mean-*); Dr. GRPO divides by S * budget (the minibatch's
// sequences times the CONSTANT generation budget, --max-new-tokens, not the longest response: that
// would up-weight batches of short answers), which the micro-batches are given instead (share 1).
void set_shares(Minibatch& mb, cpu::GrpoAgg agg, int budget, DataParallel& dp) {
    long seqs = 0, S = 0;
    std::vector<long> tokens, nonempty;
    for (const GrpoBatch& b : mb.micro) {
        long t = 0;
        for (float w : b.mask) t += w != 0;
        tokens.push_back(t), mb.tokens += t;
        nonempty.push_back(0);
        std::vector<bool> has(b.B, false);
        for (size_t n = 0; n < b.mask.size(); n++) has[b.seq[n]] = has[b.seq[n]] || b.mask[n] != 0;
        for (bool h : has) nonempty.back() += h;
        seqs += nonempty.back(), S += b.S;
    }
    if (dp.active()) {  // the minibatch's aggregate is over every rank's part of it
        std::vector<double> totals = {double(mb.tokens), double(seqs), double(S)};
        dp.sum(totals);
        mb.tokens = long(totals[0]), seqs = long(totals[1]), S = long(totals[2]);
    }
    for (size_t i = 0; i < mb.micro.size(); i++) {
        if (agg == cpu::GrpoAgg::SeqMeanTokenSumNorm) {
            mb.micro[i].S = int(S), mb.micro[i].max_len = budget;
            mb.share.push_back(1.0);
        } else if (agg == cpu::GrpoAgg::TokenMean) {
            mb.share.push_back(mb.tokens ? double(tokens[i]) / double(mb.tokens) : 0.0);
        } else {
            mb.share.push_back(seqs ? double(nonempty[i]) / double(seqs) : 0.0);
        }
    }
}

struct UpdateStats {
    cpu::GrpoLossStats loss;
    float grad_norm = 0;
    bool skipped = false;
};

// One optimizer step on one minibatch: fused GRPO loss on the response positions, backward through
// the trunk (micro-batch by micro-batch, gradients accumulating), AdamW with clipping. Only a
// non-finite loss or gradient norm skips the update (and says so); any other error stops the run.
UpdateStats update(Model& m, AdamW& adam, const Minibatch& mb, const RlOptions& opt, DataParallel& dp) {
    UpdateStats st;
    m.zero_grad();
    for (size_t i = 0; i < mb.micro.size(); i++) {
        cpu::GrpoLossConfig cfg = opt.loss;
        cfg.loss_scale = mb.share[i];
        const cpu::GrpoLossStats s = m.grpo_loss_backward(mb.micro[i], cfg);
        const double w = mb.tokens ? double(s.tokens) / double(mb.tokens) : 0.0;  // the means are per token
        st.loss.loss += s.loss, st.loss.tokens += s.tokens;
        st.loss.pg_loss += s.pg_loss, st.loss.kl_loss += s.kl_loss, st.loss.ppo_kl += w * s.ppo_kl;
        st.loss.kl_mean += w * s.kl_mean, st.loss.clip_frac += w * s.clip_frac;
        st.loss.dual_clip_frac += w * s.dual_clip_frac, st.loss.entropy_mean += w * s.entropy_mean;
        if (!std::isfinite(s.loss)) {
            st.skipped = true;
            break;
        }
    }
    if (dp.active()) {  // shares and weights are global: the sums over ranks are the minibatch's
        std::vector<double> v = {st.loss.loss,       double(st.loss.tokens), st.loss.kl_mean,      st.loss.clip_frac,
                                 st.loss.dual_clip_frac, st.loss.entropy_mean, st.loss.pg_loss, st.loss.kl_loss,
                                 st.loss.ppo_kl};
        dp.sum(v);
        st.loss.loss = v[0], st.loss.tokens = long(v[1]), st.loss.kl_mean = v[2], st.loss.clip_frac = v[3];
        st.loss.dual_clip_frac = v[4], st.loss.entropy_mean = v[5], st.loss.pg_loss = v[6], st.loss.kl_loss = v[7];
        st.loss.ppo_kl = v[8];
        st.skipped = dp.any(st.skipped);
    }
    if (st.skipped) return st;
    st.grad_norm = dp.step(m, adam, opt.lr);
    st.skipped = !std::isfinite(st.grad_norm);
    return st;
}

// Step s's randomness comes from (seed, s) alone, so a resumed run draws what an uninterrupted one
// would without saving any generator state.
uint64_t step_seed(uint64_t seed, int step, uint64_t stream) { return seed * 0x9e3779b97f4a7c15ull + uint64_t(step) * 1000003ull + stream; }

json mean_by_rollout(const std::vector<Rollout>& rs, int G, double (*get)(const Rollout&)) {
    std::vector<double> sum(G, 0.0);
    for (size_t i = 0; i < rs.size(); i++) sum[i % G] += get(rs[i]);
    json out = json::array();
    for (double s : sum) out.push_back(s / double(rs.size() / G));
    return out;
}

// --reward checker: the programmatic checker's verdicts in the judge's shape (an exact reward, to
// tell the judge's errors apart from the algorithm's on the shipped world).
std::vector<std::vector<Verdict>> checker_judgements(const std::vector<JudgeItem>& items) {
    std::vector<std::vector<Verdict>> out;
    for (const JudgeItem& it : items) {
        out.emplace_back();
        for (bool met : checker_verdicts(*it.example, it.response)) out.back().push_back({met, met ? 1.0f : 0.0f, 0.0f});
    }
    return out;
}

// The held-out score of the current policy without scaffold, by the judge and (when the data has
// checks) by the programmatic checker, as metrics fields.
json eval_metrics(Model& policy, InferenceEngine& policy_engine, const Tokenizer& tok, JudgeBackend& judge,
                  const std::vector<RubricExample>& held, const GenerateOptions& gen, uint64_t seed) {
    policy.synchronize();  // the last update is in the weights the engine reads
    EvalOptions eo;
    eo.gen = gen, eo.seed = seed;
    EvalResult e = evaluate(policy_engine, tok, judge, held, eo);
    json m = {{"eval_score", e.judge.score}, {"eval_score_std", e.judge.score_std}, {"eval_s", e.seconds},
              {"eval_judge_failed", e.judge_failed}};
    json by_tag = json::object();  // HealthBench's axis / theme breakdown, the score of each
    for (const auto& [tag, t] : tag_scores(held, e, seed).items()) by_tag[tag] = t["score"];
    m["eval_score_by_tag"] = by_tag;
    if (e.has_checker) {
        m["eval_checker_score"] = e.checker.score, m["eval_checker_score_std"] = e.checker.score_std;
        m["eval_judge_agree_pos"] = e.n_pos ? double(e.agree_pos) / e.n_pos : 1.0;
        m["eval_judge_agree_neg"] = e.n_neg ? double(e.agree_neg) / e.n_neg : 1.0;
    }
    return m;
}

std::string eval_summary(const json& m) {
    char buf[160];
    std::snprintf(buf, sizeof buf, "held-out score %.3f by the judge", m["eval_score"].get<double>());
    std::string out = buf;
    if (m.contains("eval_checker_score")) {
        std::snprintf(buf, sizeof buf, ", %.3f by the checker", m["eval_checker_score"].get<double>());
        out += buf;
    }
    return out;
}

// The device memory plan of a CUDA run (host/memory_plan.h): printed, refused when it does not fit;
// the plan says what it leaves for the rollout engine's KV pool and what one step's rollouts need.
// judge_tok is null with an external judge (no judge on the device).
MemoryPlan plan_device_memory(const RlOptions& o, const std::vector<RubricExample>& data, const Tokenizer& tok,
                              const Tokenizer* judge_tok, const ScaffoldTemplate& scaffold_tmpl) {
    RlShape s;
    s.rollouts = o.prompts_per_step * o.group;
    s.minibatch = (s.rollouts + o.updates_per_step - 1) / o.updates_per_step;
    if (o.micro_batch > 0) s.minibatch = std::min(s.minibatch, o.micro_batch);
    s.max_new_tokens = o.max_new_tokens, s.reference = o.loss.beta > 0, s.judge_on_device = judge_tok != nullptr;
    s.optimizer_shards = o.zero ? world().size() : 1;
    const JudgeTemplate jt = judge_tok ? JudgeTemplate::load(o.judge_template) : JudgeTemplate{};
    for (const RubricExample& ex : data) {  // the longest prompts: bare, with every criterion shown, judged
        std::vector<const Criterion*> all;
        std::string longest_criterion;
        for (const Criterion& c : ex.rubrics) {
            all.push_back(&c);
            if (c.text.size() > longest_criterion.size()) longest_criterion = c.text;
        }
        const int prompt = int(chat_prompt_tokens(tok, ex.prompt).size());
        s.max_bare_tokens = std::max(s.max_bare_tokens, prompt + int(chat_prefix_tokens(tok, "", ex.prompt).size()));
        s.max_prefix_tokens = std::max(s.max_prefix_tokens,
                                       prompt + int(chat_prefix_tokens(tok, scaffold_tmpl.render(all), ex.prompt).size()));
        // The judge prompt around a response of up to max_new_tokens policy tokens, counted as two
        // judge tokens each (the judge's tokenizer may split finer).
        const std::string judged = jt.prefix + render_conversation(ex.prompt) + jt.suffix + longest_criterion;
        if (judge_tok) s.max_judge_tokens = std::max(s.max_judge_tokens, int(judge_tok->encode(judged).size()) + 2 * o.max_new_tokens);
    }
    const std::vector<GpuInfo> gpus = list_gpus(nullptr, GpuFree::kCurrent);
    size_t budget = gpus.empty() ? 0 : gpus[size_t(current_gpu())].free_bytes;
    if (o.memory_budget_gb > 0) budget = std::min(budget, size_t(o.memory_budget_gb * double(1ull << 30)));
    const ModelConfig policy = load_config(o.policy + "/config.json");
    const MemoryPlan plan = plan_rl_memory(policy, judge_tok ? load_config(o.judge + "/config.json") : policy, s, budget);
    require_fits(plan);
    if (!o.quiet) std::fprintf(stderr, "%s", plan.table().c_str());
    return plan;
}

void validate(const RlOptions& o) {
    check(o.steps > 0, "--steps must be positive");
    check(o.group >= 1 && o.prompts_per_step >= 1, "--group and --prompts-per-step must be positive");
    check(o.updates_per_step >= 1 && o.updates_per_step <= o.prompts_per_step * o.group,
          "--updates-per-step must be between 1 and prompts x group");
    check(o.max_new_tokens > 0, "--max-new-tokens must be positive");
    check(o.micro_batch >= 0, "--micro-batch must be >= 0");
    check(!o.judge.empty() || o.external_judge.enabled(), "rl needs a judge: --judge DIR (in process) or --judge-url URL (a server)");
    check(o.judge.empty() || !o.external_judge.enabled(), "--judge and --judge-url both given: choose one judge");
    if (o.external_judge.enabled()) o.external_judge.validate();
    o.sampling.validate();
    check(o.loss.temperature > 0, "--temperature 0 (greedy) cannot train: the loss needs the sampling distribution");
}

}  // namespace

RlResult run_rl(const RlOptions& opt) {
    if (opt.threads > 0) omp_set_num_threads(opt.threads);
    RlOptions o = opt;
    const bool root = world().rank() == 0;  // brings MPI up first, so a failure below ends every rank
    o.quiet = o.quiet || !root;             // data parallel: rank 0 prints, logs and saves
    o.loss.temperature = o.sampling.temperature;  // log-probs are taken at the sampling temperature
    validate(o);

    // ---- set up: data, models, templates, optimizer, resume -------------------------------------
    std::vector<RubricExample> data = load_rubric_jsonl(o.data);
    std::vector<RubricExample> held = o.eval_data.empty() ? std::vector<RubricExample>{} : load_rubric_jsonl(o.eval_data);
    if (o.eval_limit > 0 && size_t(o.eval_limit) < held.size()) held.resize(o.eval_limit);
    const ScaffoldTemplate scaffold_tmpl = ScaffoldTemplate::load(o.scaffold_template);
    check(!o.checker_reward || all_checked(data), o.data + ": --reward checker needs a \"check\" on every criterion");
    const std::string device = resolve_device(o.device);
    const std::string tok_path = tokenizer_path(o.tokenizer, o.policy);
    Tokenizer tok(tok_path);
    check(tok.vocab_size() <= load_config(o.policy + "/config.json").vocab_size,
          tok.path() + ": tokenizer is larger than the policy's vocab_size");
    const bool external_judge = o.external_judge.enabled();
    std::unique_ptr<Tokenizer> judge_tok =
        external_judge ? nullptr : std::make_unique<Tokenizer>(judge_tokenizer_path(o.judge_tokenizer, o.judge, tok_path));
    // Prompts that cannot fit the policy's context with a full scaffold and a full-length answer are
    // dropped now (and counted in every step's metrics), not found fatal at the step that draws them.
    long overlong = 0, overlong_held = 0;
    {
        const int context = load_config(o.policy + "/config.json").max_position_embeddings;
        data = drop_overlong(std::move(data), tok, o.scaffold ? &scaffold_tmpl : nullptr, o.max_new_tokens, context,
                             o.data, overlong);
        if (!held.empty())
            held = drop_overlong(std::move(held), tok, nullptr, o.max_new_tokens, context, o.eval_data, overlong_held);
        if (!o.quiet && overlong + overlong_held > 0)
            std::fprintf(stderr, "rusca rl: left out %ld training and %ld held-out prompts too long for the policy's context\n",
                         overlong, overlong_held);
    }
    // On CUDA: everything the run will hold, against the free memory, before allocating any of it.
    const MemoryPlan plan = device == "cuda" && !o.schedule_only
                                ? plan_device_memory(o, data, tok, judge_tok.get(), scaffold_tmpl)
                                : MemoryPlan{};
    std::unique_ptr<Model> policy = load_model(o.policy, device);
    // The judge (not needed to preview the schedule): a server (--judge-url), or its own model and
    // tokenizer in this process. On the CPU the Judge scores with its host weights; on CUDA they are
    // read once into the judge engine's own bf16 copy, on the same device.
    std::unique_ptr<Model> judge_model;
    std::unique_ptr<CpuInference> judge_inf;
    std::unique_ptr<Judge> judge;
    std::unique_ptr<InferenceEngine> judge_engine, policy_engine;
    std::unique_ptr<JudgeBackend> judge_backend;
    if (!o.schedule_only && external_judge) {
        judge_backend = std::make_unique<HttpJudge>(o.external_judge);
    } else if (!o.schedule_only) {
        judge_model = load_model(o.judge, "cpu", /*frozen=*/true);  // host fp32: tokenization, CPU scoring, upload
        judge_inf = std::make_unique<CpuInference>(judge_model->config, judge_model->params());
        judge = std::make_unique<Judge>(*judge_inf, *judge_tok, JudgeTemplate::load(o.judge_template), o.yes, o.no);
        judge_engine = make_engine(device, *judge_model);
        judge_backend = std::make_unique<EngineJudge>(*judge_engine, *judge);
    }
    if (!o.schedule_only) {
        // Shares the policy's weights; its KV pool is allocated now, as planned (one step's rollouts
        // plus a slot's alignment), so no step reallocates it.
        const size_t kv_reserve =
            std::min(plan.kv_pool, plan.kv_pool_need + size_t(o.max_new_tokens) * kv_row_bytes(policy->config));
        policy_engine = make_engine(device, *policy, plan.kv_pool, kv_reserve);
    }
    // The frozen reference is the starting policy, needed only when the KL term is on.
    std::unique_ptr<Model> reference =
        o.loss.beta > 0 && !o.schedule_only ? load_model(o.policy, device, /*frozen=*/true) : nullptr;
    const ParamLayout& layout = policy->layout;
    AdamW adam(layout, o.adam);
    // CUDA ranks sum their gradients on the device over NCCL where they can (comm_nccl.h); otherwise
    // (and on the CPU) through the host communicator.
    std::string host_grads_why;
    std::unique_ptr<Comm> device_comm = world().size() > 1 && policy->device() == std::string("cuda")
                                            ? make_device_comm(world(), &host_grads_why)
                                            : nullptr;
    if (!device_comm && !host_grads_why.empty() && o.zero == 0 && !o.quiet)
        std::fprintf(stderr, "rusca: CUDA gradients reduced through the host (%s)\n", host_grads_why.c_str());
    DataParallel dp(world(), layout, o.zero, device_comm.get());
    dp.require_supported(*policy, host_grads_why);
    if (dp.active() && !o.quiet) std::fprintf(stderr, "rusca rl: data parallel, %s\n", dp.describe().c_str());
    EpochSampler sampler(data.size(), o.seed);
    const std::string metrics_path = o.out + "/metrics.jsonl";
    // Settings a resumed run must share with the saved one (host/rl_settings.h).
    const std::map<std::string, std::string> settings = rl_run_settings(o);
    int start = 0;
    std::string ckpt = o.resume ? latest_checkpoint(o.out) : "";
    if (!ckpt.empty()) {
        TrainState st = load_train_state(ckpt, layout);
        expect_same_settings(st, settings, ckpt);
        start = restore_training(ckpt, st, layout, policy->params(), adam, sampler, dp.root() ? metrics_path : "");
        policy->upload_params();
        if (!o.quiet) std::fprintf(stderr, "rusca rl: resumed from %s (step %d)\n", ckpt.c_str(), start);
    }
    dp.place_optimizer(*policy, adam);
    make_dirs(o.out);
    if (dp.root()) write_file_atomic(o.out + "/settings.json", json(settings).dump(2) + "\n");
    std::ofstream metrics(dp.root() ? metrics_path : "/dev/null", std::ios::app);  // metrics are reduced: rank 0's
    check(metrics.good(), metrics_path + ": cannot open for writing");
    auto save = [&](int step) {
        TrainState st = training_state(step, adam, sampler);
        dp.full_state(*policy, adam, st.m, st.v);  // a collective under ZeRO-1: every rank takes part
        if (!dp.root()) return std::string();
        st.meta.insert(settings.begin(), settings.end());
        return save_checkpoint(o.out, step, policy->config, layout, policy->params(), st, tok.path());
    };

    const int G = o.group, P = o.prompts_per_step;
    GenerateOptions gen;
    gen.sampling = o.sampling, gen.max_new_tokens = o.max_new_tokens, gen.stop_tokens = chat_stop_tokens(tok);
    const int pad = std::max(tok.pad_id(), 0);
    // MFU of the update phase on the step line, only on a GPU the peak table knows.
    const double peak_flops = device == "cuda" ? current_gpu_peak_flops() : 0;
    StopSignals stop;
    RlResult result;
    int step = start;
    const int last = o.stop_at > 0 ? std::min(o.stop_at, o.steps) : o.steps;
    if (start == 0 && !held.empty() && o.eval_every > 0 && !o.schedule_only && dp.root()) {  // the starting point of the curve
        json m0 = {{"step", 0}};
        m0.update(eval_metrics(*policy, *policy_engine, tok, *judge_backend, held, gen, o.seed));
        metrics << m0.dump() << "\n" << std::flush;
        if (!o.quiet) std::fprintf(stderr, "step    0 | %s\n", eval_summary(m0).c_str());
    }
    while (step < last && !dp.any(stop.requested())) {
        step++;
        json m = {{"step", step}, {"lambda_step", o.scaffold ? o.schedule.lambda_step(step, o.steps) : 0.0}};

        // 1-2. prompts and their scaffolds: rollout i of G sees round(lambda_i * |R|) criteria
        Rng rng(step_seed(o.seed, step, 1));
        std::vector<const RubricExample*> prompts;
        std::vector<Rollout> rollouts;
        const std::vector<size_t> drawn = draw_step_prompts(sampler, P, o.data);  // P different prompts
        for (int p = 0; p < P; p++) {
            prompts.push_back(&data[drawn[p]]);
            std::vector<RolloutScaffold> sc = o.scaffold
                                                  ? build_group_scaffolds(*prompts[p], o.schedule, step, o.steps, G, scaffold_tmpl, rng)
                                                  : std::vector<RolloutScaffold>(G);
            for (int i = 0; i < G; i++) rollouts.push_back({p, sc[i], {}, {}, {}, 0, 0});
        }
        m["lambda_by_rollout"] = mean_by_rollout(rollouts, G, [](const Rollout& r) { return r.scaffold.lambda; });
        m["shown_by_rollout"] = mean_by_rollout(rollouts, G, [](const Rollout& r) { return double(r.scaffold.shown.size()); });
        if (o.schedule_only) {
            metrics << m.dump() << "\n" << std::flush;
            continue;
        }

        // 3. generate: scaffold (a system turn) + the prompt's own chat tokens; identical prefixes share a prefill
        //    Data parallel: this rank's groups only (dp.owns), sampled as on one rank (rollout_base).
        auto t0 = Clock::now();
        std::vector<int> mine;
        for (int p = 0; p < P; p++)
            if (dp.owns(p)) mine.push_back(p);
        std::vector<std::vector<int>> bare(P);
        std::vector<PromptGroup> groups(mine.size());
        GenerateOptions step_gen = gen;
        step_gen.seed = step_seed(o.seed, step, 2);
        for (size_t j = 0; j < mine.size(); j++) {
            const int p = mine[j];
            bare[p] = chat_prefix_tokens(tok, "", prompts[p]->prompt);
            std::vector<int> prompt = chat_prompt_tokens(tok, prompts[p]->prompt);
            bare[p].insert(bare[p].end(), prompt.begin(), prompt.end());
            groups[j].prompt = prompt;
            for (int i = 0; i < G; i++) groups[j].prefixes.push_back(chat_prefix_tokens(tok, rollouts[p * G + i].scaffold.text, prompts[p]->prompt));
            step_gen.rollout_base.push_back(uint64_t(p) * G);
        }
        policy->synchronize();  // the last update is in the weights the engine reads
        auto completions = groups.empty() ? std::vector<std::vector<Completion>>{} : policy_engine->generate(groups, step_gen);
        std::vector<size_t> own;  // this rank's rollouts, by index in the step
        long gen_tokens = 0;
        for (size_t j = 0; j < mine.size(); j++)
            for (int i = 0; i < G; i++) {
                own.push_back(size_t(mine[j]) * G + i);
                rollouts[own.back()].completion = completions[j][i];
                gen_tokens += long(completions[j][i].tokens.size());
            }
        if (dp.active()) gen_tokens = long(dp.sum(double(gen_tokens)));
        m["rollout_s"] = seconds_since(t0), m["rollout_tokens_per_s"] = gen_tokens / seconds_since(t0);

        // 4. judge the bare conversation + response (never the scaffold); reward; group advantages
        t0 = Clock::now();
        std::vector<JudgeItem> items;
        for (size_t k : own) items.push_back({prompts[rollouts[k].prompt], completion_text(tok, rollouts[k].completion)});
        auto verdicts = o.checker_reward || items.empty() ? checker_judgements(items) : judge_backend->judge(items);
        // Criteria the judge could not answer are masked out of the reward (host/judge_backend.h).
        long unscored = 0;
        const std::vector<double> own_rewards = group_rewards(items, verdicts, G, &unscored);
        for (size_t j = 0; j < own.size(); j++) {
            Rollout& r = rollouts[own[j]];
            for (const Verdict& v : verdicts[j]) r.met.push_back(v.met), r.failed.push_back(v.failed);
            r.reward = own_rewards[j];
        }
        //    every rank's outcomes, summed into the step: the advantages (batch std too) and the
        //    metrics are then the single-rank ones
        const std::vector<double> lengths = share_outcomes(dp, rollouts, prompts, own);
        std::vector<double> counts = {double(count_failed(verdicts)), double(unscored)};
        if (dp.active()) dp.sum(counts);
        std::vector<double> rewards;
        long criteria = 0;
        for (const Rollout& r : rollouts) rewards.push_back(r.reward), criteria += long(r.met.size());
        m["judge_failed"] = counts[0], m["judge_unscored"] = counts[1];
        if (!o.checker_reward) m.update(judge_backend->last_stats());  // this rank's requests
        std::vector<float> adv = group_advantages(rewards, G, o.adv_norm);
        for (size_t k = 0; k < rollouts.size(); k++) rollouts[k].advantage = adv[k];
        m["judge_s"] = seconds_since(t0), m["judge_criteria_per_s"] = criteria / seconds_since(t0);
        double mean = 0, var = 0, len = 0;
        for (double r : rewards) mean += r / rewards.size();
        for (double r : rewards) var += (r - mean) * (r - mean) / rewards.size();
        for (double l : lengths) len += l / rollouts.size();
        m["reward_mean"] = mean, m["reward_std"] = std::sqrt(var), m["response_len_mean"] = len;
        m["reward_by_rollout"] = mean_by_rollout(rollouts, G, [](const Rollout& r) { return r.reward; });
        m.update(rollout_metrics(rollouts, prompts, G));  // zero-variance groups, truncation, met rates
        m["prompts_filtered_overlong"] = overlong;
        if (o.dump_every > 0 && step % o.dump_every == 0)
            write_rollout_dump(o.out, step, rollouts, prompts, G, tok, step_gen.seed, &own, dp.world() > 1 ? dp.rank() : -1);

        // 5. old and reference log-probs on the bare prompt, before any update of this step
        t0 = Clock::now();
        std::vector<Minibatch> minibatches;
        double update_flops = 0;  // old (+ reference) forwards and the updates' forward + backward
        const int per = int(rollouts.size() + o.updates_per_step - 1) / o.updates_per_step;
        const int micro = o.micro_batch > 0 ? std::min(o.micro_batch, per) : per;
        for (size_t first = 0; first < rollouts.size(); first += per) {
            Minibatch mb;
            const size_t end = std::min(rollouts.size(), first + per);
            std::vector<Rollout*> mb_own;  // this rank's part of the minibatch
            for (size_t k = first; k < end; k++)
                if (dp.owns(rollouts[k].prompt)) mb_own.push_back(&rollouts[k]);
            for (size_t from = 0; from < mb_own.size(); from += micro) {
                std::vector<Rollout*> part(mb_own.begin() + from, mb_own.begin() + std::min(mb_own.size(), from + micro));
                GrpoBatch b = make_batch(part, bare, pad);
                policy->keep_logprobs(b, o.loss.temperature, LogpKind::kOld);  // on the device on CUDA
                if (reference) reference->keep_logprobs(b, o.loss.temperature, LogpKind::kReference);
                update_flops += (reference ? 5 : 4) * forward_flops_per_token(policy->config, b.T) * b.B * b.T;
                mb.micro.push_back(std::move(b));
            }
            set_shares(mb, o.loss.agg, o.max_new_tokens, dp);
            minibatches.push_back(std::move(mb));
        }

        // 6. minibatch updates
        json upd = json::array();
        double loss = 0, pg_loss = 0, kl_loss = 0, ppo_kl = 0, kl = 0, clip = 0, dual = 0, entropy = 0, gnorm = 0;
        int applied = 0;
        for (const Minibatch& mb : minibatches) {
            UpdateStats st = update(*policy, adam, mb, o, dp);
            upd.push_back({{"loss", st.loss.loss}, {"grad_norm", st.grad_norm}, {"skipped", st.skipped}});
            if (st.skipped) continue;
            applied++;
            loss += st.loss.loss, pg_loss += st.loss.pg_loss, kl_loss += st.loss.kl_loss, ppo_kl += st.loss.ppo_kl;
            kl += st.loss.kl_mean, clip += st.loss.clip_frac, dual += st.loss.dual_clip_frac;
            entropy += st.loss.entropy_mean, gnorm += st.grad_norm;
        }
        const double n = std::max(applied, 1);
        m["loss"] = loss / n, m["pg_loss"] = pg_loss / n, m["kl_loss"] = kl_loss / n, m["ppo_kl"] = ppo_kl / n;
        m["kl"] = kl / n, m["clip_frac"] = clip / n, m["dual_clip_frac"] = dual / n;
        m["entropy"] = entropy / n, m["grad_norm"] = gnorm / n, m["lr"] = o.lr, m["updates"] = upd;
        m["updates_skipped"] = int(minibatches.size()) - applied;
        m["update_s"] = seconds_since(t0), m["update_tokens_per_s"] = gen_tokens / seconds_since(t0);
        char mfu[32] = "";
        if (peak_flops > 0) {
            m["update_mfu"] = update_flops / m["update_s"].get<double>() / peak_flops;
            std::snprintf(mfu, sizeof mfu, " | MFU %.1f%%", 100 * m["update_mfu"].get<double>());
        }

        // 7. eval, metrics, checkpoint
        if (device == "cuda") m["device_memory_used_bytes"] = gpu_memory_used();
        if (!held.empty() && o.eval_every > 0 && (step % o.eval_every == 0 || step == o.steps) && dp.root()) {
            m.update(eval_metrics(*policy, *policy_engine, tok, *judge_backend, held, gen, o.seed));
        }
        const std::vector<std::string> alarms = step_alarms(m);
        m["alarms"] = alarms;
        metrics << m.dump(-1, ' ', false, json::error_handler_t::replace) << "\n" << std::flush;
        if (!o.quiet)
            std::fprintf(stderr,
                         "step %4d/%d | lambda %.3f | reward %.3f +- %.3f | len %.0f | trunc %.2f | 0-var %.2f | loss %.4f | "
                         "kl %.2e | clip %.3f | grad %.3f | rollout %.1fs judge %.1fs update %.1fs%s%s%s\n",
                         step, o.steps, m["lambda_step"].get<double>(), mean, std::sqrt(var), len,
                         m["truncation_rate"].get<double>(), m["zero_variance_groups"].get<double>(), loss / n, kl / n,
                         clip / n, gnorm / n, m["rollout_s"].get<double>(), m["judge_s"].get<double>(),
                         m["update_s"].get<double>(), mfu, applied < int(minibatches.size()) ? " | SKIPPED UPDATE" : "",
                         alarms.empty() ? "" : " | ALARM");
        if (!o.quiet)
            for (const std::string& a : alarms) std::fprintf(stderr, "rusca rl: alarm at step %d: %s\n", step, a.c_str());
        if (!o.quiet && m.contains("eval_score")) std::fprintf(stderr, "step %4d | %s\n", step, eval_summary(m).c_str());
        if (o.save_every > 0 && step % o.save_every == 0 && step < last) result.last_checkpoint = save(step);
    }
    if (step > start && !o.schedule_only) result.last_checkpoint = save(step);
    else if (result.last_checkpoint.empty()) result.last_checkpoint = ckpt;
    result.last_step = step;
    result.interrupted = dp.any(stop.requested());
    if (!o.quiet)
        std::fprintf(stderr, "rusca rl: %s at step %d; checkpoint %s\n", result.interrupted ? "interrupted" : "done", step,
                     result.last_checkpoint.empty() ? "(none)" : result.last_checkpoint.c_str());
    return result;
}

}  // namespace rusca
