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
#include "error.h"
#include "eval.h"
#include "fileio.h"
#include "generate.h"
#include "judge.h"
#include "model.h"
#include "rng.h"
#include "rubric.h"
#include "run_log.h"
#include "sft_data.h"
#include "stop_signal.h"

namespace rusca {

namespace {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

struct Rollout {
    int prompt = 0;            // index into the step's prompts
    RolloutScaffold scaffold;  // lambda, the criteria shown, the scaffold text ("" = none)
    Completion completion;
    std::vector<bool> met;     // judge verdict per criterion
    double reward = 0;
    float advantage = 0;
};

// The policy's view of a set of rollouts for the loss: bare prompt + completion, right-padded to T.
// Response token j of row b is predicted by the hidden state at flat position b*T + start_b + j.
struct LossBatch {
    int B = 0, T = 0, S = 0, max_len = 0;
    std::vector<int> tokens;                      // [B*T]
    std::vector<int> pos, target, seq;            // per response token
    std::vector<float> adv, mask, old_logp, ref_logp;
};

LossBatch make_batch(const std::vector<Rollout*>& rs, const std::vector<std::vector<int>>& bare_prompts, int pad) {
    LossBatch b;
    b.B = b.S = int(rs.size());
    for (const Rollout* r : rs) {
        b.T = std::max(b.T, int(bare_prompts[r->prompt].size() + r->completion.tokens.size()));
        b.max_len = std::max(b.max_len, int(r->completion.tokens.size()));
    }
    b.tokens.assign(size_t(b.B) * b.T, pad);
    for (int i = 0; i < b.B; i++) {
        const std::vector<int>& prompt = bare_prompts[rs[i]->prompt];
        const std::vector<int>& done = rs[i]->completion.tokens;
        std::copy(prompt.begin(), prompt.end(), b.tokens.begin() + size_t(i) * b.T);
        std::copy(done.begin(), done.end(), b.tokens.begin() + size_t(i) * b.T + prompt.size());
        for (size_t j = 0; j < done.size(); j++) {
            b.pos.push_back(i * b.T + int(prompt.size() + j) - 1);
            b.target.push_back(done[j]), b.seq.push_back(i), b.adv.push_back(rs[i]->advantage), b.mask.push_back(1);
        }
    }
    return b;
}

std::vector<float> gather_rows(const float* x, const std::vector<int>& rows, int C) {
    std::vector<float> out(rows.size() * size_t(C));
    for (size_t i = 0; i < rows.size(); i++) std::copy(x + size_t(rows[i]) * C, x + size_t(rows[i] + 1) * C, &out[i * C]);
    return out;
}

// log pi(response token | bare prompt, earlier response tokens) under `m`, fused (no logits).
std::vector<float> response_logprobs(Model& m, const LossBatch& b, double temperature) {
    const int C = m.config.hidden_size, N = int(b.pos.size());
    std::vector<float> h = gather_rows(m.forward_hidden(b.tokens.data(), b.B, b.T), b.pos, C), logp(N);
    cpu::grpo_logprobs(logp.data(), (float*)nullptr, h.data(), m.params() + m.layout.lm_head, b.target.data(), N, C,
                       m.config.vocab_size, temperature, 4096, 32);
    return logp;
}

struct UpdateStats {
    cpu::GrpoLossStats loss;
    float grad_norm = 0;
    bool skipped = false;
};

// One optimizer step on one minibatch: fused GRPO loss on the response positions, backward through
// the trunk, AdamW with clipping. A non-finite loss or gradient skips the update (and says so).
UpdateStats update(Model& m, AdamW& adam, const LossBatch& b, const RlOptions& opt) {
    const int C = m.config.hidden_size, V = m.config.vocab_size, N = int(b.pos.size());
    UpdateStats st;
    m.zero_grad();
    std::vector<float> h = gather_rows(m.forward_hidden(b.tokens.data(), b.B, b.T), b.pos, C);
    std::vector<float> logp(N), dh(h.size(), 0.0f);
    st.loss = cpu::grpo_loss(logp.data(), dh.data(), m.grads() + m.layout.lm_head, h.data(), m.params() + m.layout.lm_head,
                             b.target.data(), b.adv.data(), b.old_logp.data(),
                             opt.loss.beta > 0 ? b.ref_logp.data() : nullptr, b.mask.data(), b.seq.data(), N, C, V, b.S,
                             b.max_len, opt.loss);
    if (!std::isfinite(st.loss.loss)) return st.skipped = true, st;
    std::vector<float> dhidden(size_t(b.B) * b.T * C, 0.0f);  // scatter back to [B*T, C]
    for (int i = 0; i < N; i++) std::copy(&dh[size_t(i) * C], &dh[size_t(i + 1) * C], &dhidden[size_t(b.pos[i]) * C]);
    m.backward_hidden(dhidden.data());
    try {
        st.grad_norm = adam.step(m.params(), m.grads(), opt.lr);
    } catch (const Error&) {
        st.skipped = true;
    }
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
json eval_metrics(Model& policy, const Tokenizer& tok, const Judge& judge, const std::vector<RubricExample>& held,
                  const GenerateOptions& gen, uint64_t seed) {
    CpuInference now(policy.config, policy.params());
    EvalOptions eo;
    eo.gen = gen, eo.seed = seed;
    EvalResult e = evaluate(now, tok, judge, held, eo);
    json m = {{"eval_score", e.judge.score}, {"eval_score_std", e.judge.score_std}, {"eval_s", e.seconds}};
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

void validate(const RlOptions& o) {
    check(o.steps > 0, "--steps must be positive");
    check(o.group >= 1 && o.prompts_per_step >= 1, "--group and --prompts-per-step must be positive");
    check(o.updates_per_step >= 1 && o.updates_per_step <= o.prompts_per_step * o.group,
          "--updates-per-step must be between 1 and prompts x group");
    check(o.max_new_tokens > 0, "--max-new-tokens must be positive");
    o.sampling.validate();
    check(o.loss.temperature > 0, "--temperature 0 (greedy) cannot train: the loss needs the sampling distribution");
}

}  // namespace

RlResult run_rl(const RlOptions& opt) {
    if (opt.threads > 0) omp_set_num_threads(opt.threads);
    RlOptions o = opt;
    o.loss.temperature = o.sampling.temperature;  // log-probs are taken at the sampling temperature
    validate(o);

    // ---- set up: data, models, templates, optimizer, resume -------------------------------------
    const std::vector<RubricExample> data = load_rubric_jsonl(o.data);
    std::vector<RubricExample> held = o.eval_data.empty() ? std::vector<RubricExample>{} : load_rubric_jsonl(o.eval_data);
    if (o.eval_limit > 0 && size_t(o.eval_limit) < held.size()) held.resize(o.eval_limit);
    const ScaffoldTemplate scaffold_tmpl = ScaffoldTemplate::load(o.scaffold_template);
    check(!o.checker_reward || all_checked(data), o.data + ": --reward checker needs a \"check\" on every criterion");
    std::unique_ptr<Model> policy = load_cpu_model(o.policy);
    const std::string tok_path = tokenizer_path(o.tokenizer, o.policy);
    Tokenizer tok(tok_path);
    check(tok.vocab_size() <= policy->config.vocab_size, tok.path() + ": tokenizer is larger than the policy's vocab_size");
    // The judge: its own model and tokenizer, in this process (not needed to preview the schedule).
    std::unique_ptr<Model> judge_model;
    std::unique_ptr<CpuInference> judge_inf;
    std::unique_ptr<Judge> judge;
    Tokenizer judge_tok(judge_tokenizer_path(o.judge_tokenizer, o.judge, tok_path));
    if (!o.schedule_only) {
        judge_model = load_cpu_model(o.judge);
        judge_inf = std::make_unique<CpuInference>(judge_model->config, judge_model->params());
        judge = std::make_unique<Judge>(*judge_inf, judge_tok, JudgeTemplate::load(o.judge_template), o.yes, o.no);
    }
    // The frozen reference is the starting policy, needed only when the KL term is on.
    std::unique_ptr<Model> reference = o.loss.beta > 0 && !o.schedule_only ? load_cpu_model(o.policy) : nullptr;
    const ParamLayout& layout = policy->layout;
    AdamW adam(layout, o.adam);
    EpochSampler sampler(data.size(), o.seed);
    const std::string metrics_path = o.out + "/metrics.jsonl";
    // Settings a resumed run must share with the saved one (the schedule depends on steps, ...).
    const std::map<std::string, std::string> settings = {
        {"policy", o.policy}, {"seed", std::to_string(o.seed)}, {"steps", std::to_string(o.steps)},
        {"group", std::to_string(o.group)}, {"prompts_per_step", std::to_string(o.prompts_per_step)}};
    int start = 0;
    std::string ckpt = o.resume ? latest_checkpoint(o.out) : "";
    if (!ckpt.empty()) {
        TrainState st = load_train_state(ckpt, layout);
        for (const auto& [key, want] : settings) meta_expect(st, key, want, ckpt);
        start = restore_training(ckpt, st, layout, policy->params(), adam, sampler, metrics_path);
        if (!o.quiet) std::fprintf(stderr, "rusca rl: resumed from %s (step %d)\n", ckpt.c_str(), start);
    }
    make_dirs(o.out);
    std::ofstream metrics(metrics_path, std::ios::app);
    check(metrics.good(), metrics_path + ": cannot open for writing");
    auto save = [&](int step) {
        TrainState st = training_state(step, adam, sampler);
        st.meta.insert(settings.begin(), settings.end());
        return save_checkpoint(o.out, step, policy->config, layout, policy->params(), st, tok.path());
    };

    const int G = o.group, P = o.prompts_per_step;
    GenerateOptions gen;
    gen.sampling = o.sampling, gen.max_new_tokens = o.max_new_tokens, gen.stop_tokens = chat_stop_tokens(tok);
    const int pad = std::max(tok.pad_id(), 0);
    StopSignals stop;
    RlResult result;
    int step = start;
    const int last = o.stop_at > 0 ? std::min(o.stop_at, o.steps) : o.steps;
    if (start == 0 && !held.empty() && o.eval_every > 0 && !o.schedule_only) {  // the starting point of the curve
        json m0 = {{"step", 0}};
        m0.update(eval_metrics(*policy, tok, *judge, held, gen, o.seed));
        metrics << m0.dump() << "\n" << std::flush;
        if (!o.quiet) std::fprintf(stderr, "step    0 | %s\n", eval_summary(m0).c_str());
    }
    while (step < last && !stop.requested()) {
        step++;
        json m = {{"step", step}, {"lambda_step", o.scaffold ? o.schedule.lambda_step(step, o.steps) : 0.0}};

        // 1-2. prompts and their scaffolds: rollout i of G sees round(lambda_i * |R|) criteria
        Rng rng(step_seed(o.seed, step, 1));
        std::vector<const RubricExample*> prompts;
        std::vector<Rollout> rollouts;
        for (int p = 0; p < P; p++) {
            prompts.push_back(&data[sampler.next()]);
            std::vector<RolloutScaffold> sc = o.scaffold
                                                  ? build_group_scaffolds(*prompts[p], o.schedule, step, o.steps, G, scaffold_tmpl, rng)
                                                  : std::vector<RolloutScaffold>(G);
            for (int i = 0; i < G; i++) rollouts.push_back({p, sc[i], {}, {}, 0, 0});
        }
        m["lambda_by_rollout"] = mean_by_rollout(rollouts, G, [](const Rollout& r) { return r.scaffold.lambda; });
        m["shown_by_rollout"] = mean_by_rollout(rollouts, G, [](const Rollout& r) { return double(r.scaffold.shown.size()); });
        if (o.schedule_only) {
            metrics << m.dump() << "\n" << std::flush;
            continue;
        }

        // 3. generate: scaffold (a system turn) + the prompt's own chat tokens; identical prefixes share a prefill
        auto t0 = Clock::now();
        std::vector<std::vector<int>> bare(P);
        std::vector<PromptGroup> groups(P);
        for (int p = 0; p < P; p++) {
            bare[p] = chat_prefix_tokens(tok, "", prompts[p]->prompt);
            std::vector<int> prompt = chat_prompt_tokens(tok, prompts[p]->prompt);
            bare[p].insert(bare[p].end(), prompt.begin(), prompt.end());
            groups[p].prompt = prompt;
            for (int i = 0; i < G; i++) groups[p].prefixes.push_back(chat_prefix_tokens(tok, rollouts[p * G + i].scaffold.text, prompts[p]->prompt));
        }
        gen.seed = step_seed(o.seed, step, 2);
        CpuInference policy_inf(policy->config, policy->params());
        auto completions = generate(policy_inf, groups, gen);
        long gen_tokens = 0;
        for (size_t k = 0; k < rollouts.size(); k++) {
            rollouts[k].completion = completions[k / G][k % G];
            gen_tokens += long(rollouts[k].completion.tokens.size());
        }
        m["rollout_s"] = seconds_since(t0), m["rollout_tokens_per_s"] = gen_tokens / seconds_since(t0);

        // 4. judge the bare conversation + response (never the scaffold); reward; group advantages
        t0 = Clock::now();
        std::vector<JudgeItem> items;
        for (const Rollout& r : rollouts) items.push_back({prompts[r.prompt], completion_text(tok, r.completion)});
        auto verdicts = o.checker_reward ? checker_judgements(items) : judge->judge(items);
        std::vector<double> rewards;
        long criteria = 0, met_pos = 0, n_pos = 0, met_neg = 0, n_neg = 0;
        for (size_t k = 0; k < rollouts.size(); k++) {
            Rollout& r = rollouts[k];
            const RubricExample& ex = *prompts[r.prompt];
            for (size_t c = 0; c < ex.rubrics.size(); c++) {
                r.met.push_back(verdicts[k][c].met);
                (ex.rubrics[c].points > 0 ? n_pos : n_neg)++;
                (ex.rubrics[c].points > 0 ? met_pos : met_neg) += verdicts[k][c].met;
            }
            criteria += long(ex.rubrics.size());
            rewards.push_back(r.reward = rubric_reward(ex, r.met));
        }
        std::vector<float> adv = group_advantages(rewards, G, o.adv_norm);
        for (size_t k = 0; k < rollouts.size(); k++) rollouts[k].advantage = adv[k];
        m["judge_s"] = seconds_since(t0), m["judge_criteria_per_s"] = criteria / seconds_since(t0);
        double mean = 0, var = 0, len = 0;
        for (double r : rewards) mean += r / rewards.size();
        for (double r : rewards) var += (r - mean) * (r - mean) / rewards.size();
        for (const Rollout& r : rollouts) len += double(r.completion.tokens.size()) / rollouts.size();
        m["reward_mean"] = mean, m["reward_std"] = std::sqrt(var), m["response_len_mean"] = len;
        m["reward_by_rollout"] = mean_by_rollout(rollouts, G, [](const Rollout& r) { return r.reward; });
        m["met_rate_positive"] = n_pos ? double(met_pos) / n_pos : 0.0;
        m["met_rate_negative"] = n_neg ? double(met_neg) / n_neg : 0.0;

        // 5. old and reference log-probs on the bare prompt, before any update of this step
        t0 = Clock::now();
        std::vector<LossBatch> minibatches;
        const int per = int(rollouts.size() + o.updates_per_step - 1) / o.updates_per_step;
        for (size_t first = 0; first < rollouts.size(); first += per) {
            std::vector<Rollout*> part;
            for (size_t k = first; k < std::min(rollouts.size(), first + per); k++) part.push_back(&rollouts[k]);
            LossBatch b = make_batch(part, bare, pad);
            b.old_logp = response_logprobs(*policy, b, o.loss.temperature);
            if (reference) b.ref_logp = response_logprobs(*reference, b, o.loss.temperature);
            minibatches.push_back(std::move(b));
        }

        // 6. minibatch updates
        json upd = json::array();
        double loss = 0, kl = 0, clip = 0, dual = 0, entropy = 0, gnorm = 0;
        int applied = 0;
        for (const LossBatch& b : minibatches) {
            UpdateStats st = update(*policy, adam, b, o);
            upd.push_back({{"loss", st.loss.loss}, {"grad_norm", st.grad_norm}, {"skipped", st.skipped}});
            if (st.skipped) continue;
            applied++;
            loss += st.loss.loss, kl += st.loss.kl_mean, clip += st.loss.clip_frac, dual += st.loss.dual_clip_frac;
            entropy += st.loss.entropy_mean, gnorm += st.grad_norm;
        }
        const double n = std::max(applied, 1);
        m["loss"] = loss / n, m["kl"] = kl / n, m["clip_frac"] = clip / n, m["dual_clip_frac"] = dual / n;
        m["entropy"] = entropy / n, m["grad_norm"] = gnorm / n, m["lr"] = o.lr, m["updates"] = upd;
        m["updates_skipped"] = int(minibatches.size()) - applied;
        m["update_s"] = seconds_since(t0), m["update_tokens_per_s"] = gen_tokens / seconds_since(t0);

        // 7. eval, metrics, checkpoint
        if (!held.empty() && o.eval_every > 0 && (step % o.eval_every == 0 || step == o.steps)) {
            m.update(eval_metrics(*policy, tok, *judge, held, gen, o.seed));
        }
        metrics << m.dump(-1, ' ', false, json::error_handler_t::replace) << "\n" << std::flush;
        if (!o.quiet)
            std::fprintf(stderr,
                         "step %4d/%d | lambda %.3f | reward %.3f +- %.3f | len %.0f | loss %.4f | kl %.2e | clip %.3f | "
                         "grad %.3f | rollout %.1fs judge %.1fs update %.1fs%s\n",
                         step, o.steps, m["lambda_step"].get<double>(), mean, std::sqrt(var), len, loss / n, kl / n,
                         clip / n, gnorm / n, m["rollout_s"].get<double>(), m["judge_s"].get<double>(),
                         m["update_s"].get<double>(), applied < int(minibatches.size()) ? " | SKIPPED UPDATE" : "");
        if (!o.quiet && m.contains("eval_score")) std::fprintf(stderr, "step %4d | %s\n", step, eval_summary(m).c_str());
        if (o.save_every > 0 && step % o.save_every == 0 && step < last) result.last_checkpoint = save(step);
    }
    if (step > start && !o.schedule_only) result.last_checkpoint = save(step);
    else if (result.last_checkpoint.empty()) result.last_checkpoint = ckpt;
    result.last_step = step;
    result.interrupted = stop.requested();
    if (!o.quiet)
        std::fprintf(stderr, "rusca rl: %s at step %d; checkpoint %s\n", result.interrupted ? "interrupted" : "done", step,
                     result.last_checkpoint.empty() ? "(none)" : result.last_checkpoint.c_str());
    return result;
}

}  // namespace rusca
