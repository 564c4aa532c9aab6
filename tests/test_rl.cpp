// test_rl.cpp: `rusca rl` end to end on the CPU with tiny random policy and judge: metrics present
// and finite, a checkpoint written, a resumed run identical to an uninterrupted one; and the
// scaffold schedule the trainer logs, recomputed from the formula for a 350-step, G = 8 run.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <cmath>
#include <nlohmann/json.hpp>
#include <sstream>

#include "host/checkpoint.h"
#include "host/fileio.h"
#include "host/model.h"
#include "host/rl.h"
#include "rl_test_util.h"
#include "test_util.h"

using namespace rusca;
using namespace rusca::testutil;
using json = nlohmann::json;

namespace {


std::string write_model(const std::string& dir, uint64_t seed, float std, int vocab_size = 0) {
    ModelConfig c = load_config("data/tiny_config.json");
    if (vocab_size > 0) c.vocab_size = vocab_size;
    c.hidden_size = 32, c.intermediate_size = 48, c.num_layers = 2, c.num_heads = 2, c.num_kv_heads = 1, c.head_dim = 16;
    return write_random_model(dir, c, seed, std);
}

RlOptions tiny_run(const TempDir& d, const std::string& out) {
    RlOptions o;
    o.policy = d.path + "/policy", o.judge = d.path + "/judge", o.tokenizer = "data/tokenizer.model";
    o.data = d.path + "/rubrics.jsonl", o.eval_data = o.data, o.eval_every = 3, o.eval_limit = 2;
    o.out = d.path + "/" + out;
    o.steps = 3, o.prompts_per_step = 2, o.group = 4, o.updates_per_step = 2, o.max_new_tokens = 8;
    o.lr = 1e-3f, o.loss.beta = 0.01, o.quiet = true;
    o.judge_template = "tests/judge_template_short.txt";  // verdicts of this random judge vary with the reply
    return o;
}

TEST(Rl, EndToEndOnCpuResumesExactly) {
    TempDir d;
    write_model(d.path + "/policy", 1, 0.3f);
    write_model(d.path + "/judge", 2, 0.2f);  // weights at which verdicts follow the response, so rewards vary
    write_rubrics(d.path + "/rubrics.jsonl", 5, 4);

    RlOptions full = tiny_run(d, "full");
    RlResult r = run_rl(full);
    EXPECT_EQ(r.last_step, 3);
    EXPECT_TRUE(file_exists(full.out + "/checkpoint-000003/model.safetensors"));
    std::vector<json> a = read_metrics(full.out + "/metrics.jsonl");
    ASSERT_EQ(a.size(), 4u);  // the starting policy's held-out score (step 0), then 3 steps
    EXPECT_EQ(a[0]["step"], 0);
    EXPECT_TRUE(a[0].contains("eval_score"));
    EXPECT_FALSE(a[0].contains("eval_checker_score"));  // these rubrics carry no "check"
    bool some_signal = false;
    for (const json& m : std::vector<json>(a.begin() + 1, a.end())) {
        for (const char* key : {"lambda_step", "reward_mean", "reward_std", "loss", "kl", "clip_frac", "entropy",
                                "grad_norm", "lr", "rollout_s", "judge_s", "update_s", "response_len_mean",
                                "met_rate_positive", "met_rate_negative"}) {
            ASSERT_TRUE(m.contains(key)) << key;
            EXPECT_TRUE(std::isfinite(m[key].get<double>())) << key;
        }
        EXPECT_EQ(m["shown_by_rollout"].size(), 4u);
        some_signal |= m["reward_std"].get<double>() > 0 && m["grad_norm"].get<double>() > 0;
    }
    EXPECT_TRUE(some_signal) << "no step had a reward spread: the test would not exercise the update";
    EXPECT_TRUE(a.back().contains("eval_score"));

    RlOptions part = tiny_run(d, "part");
    part.stop_at = 2;
    run_rl(part);
    part.stop_at = 0, part.resume = true;
    run_rl(part);
    std::vector<json> b = read_metrics(part.out + "/metrics.jsonl");
    ASSERT_EQ(b.size(), 4u);  // the resumed half does not score step 0 again
    for (int i = 0; i < 4; i++) EXPECT_EQ(without_timings(a[i]), without_timings(b[i])) << "step " << i;
    EXPECT_EQ(read_file(full.out + "/checkpoint-000003/model.safetensors"),
              read_file(part.out + "/checkpoint-000003/model.safetensors"));
}

// A Hugging Face style folder: tokenizer.json + tokenizer_config.json (Qwen2.5's ChatML template)
// beside the weights, no --tokenizer; the checkpoint carries the tokenizer files on.
TEST(Rl, ModelFoldersWithTheirOwnBpeTokenizer) {
    TempDir d;
    for (const char* role : {"policy", "judge"}) {
        write_model(d.path + "/" + role, role[0] == 'p' ? 1 : 2, 0.3f, 1024);
        copy_tokenizer_files("tests/golden/tokenizers/qwen2", d.path + "/" + role);
    }
    write_rubrics(d.path + "/rubrics.jsonl", 3, 3);
    RlOptions o = tiny_run(d, "bpe");
    o.tokenizer = "", o.steps = 1, o.eval_every = 0, o.loss.beta = 0;
    RlResult r = run_rl(o);
    EXPECT_EQ(r.last_step, 1);
    EXPECT_EQ(read_file(o.out + "/checkpoint-000001/tokenizer.json"), read_file("tests/golden/tokenizers/qwen2/tokenizer.json"));
    EXPECT_TRUE(file_exists(o.out + "/checkpoint-000001/tokenizer_config.json"));
    EXPECT_EQ(read_metrics(o.out + "/metrics.jsonl").size(), 1u);
}

// Gradients accumulated over micro-batches of a minibatch are the minibatch's: the same loss and
// gradient norm (to rounding) for every aggregation, with uneven micro-batches (3 + 3 + 2 rollouts).
TEST(Rl, MicroBatchesAddUpToTheMinibatch) {
    TempDir d;
    write_model(d.path + "/policy", 1, 0.3f);
    write_model(d.path + "/judge", 2, 0.2f);
    write_rubrics(d.path + "/rubrics.jsonl", 2, 4);
    for (const char* agg : {"token-mean", "seq-mean-token-mean", "seq-mean-token-sum", "seq-mean-token-sum-norm"}) {
        std::vector<json> runs[2];
        for (int micro : {0, 3}) {
            RlOptions o = tiny_run(d, std::string(agg) + std::to_string(micro));
            o.steps = 1, o.updates_per_step = 1, o.eval_data = "", o.micro_batch = micro;
            o.loss.agg = cpu::parse_grpo_agg(agg);
            run_rl(o);
            runs[micro ? 1 : 0] = read_metrics(o.out + "/metrics.jsonl");
        }
        const json &whole = runs[0][0]["updates"], &micro = runs[1][0]["updates"];
        ASSERT_EQ(whole.size(), 1u);
        const double loss = whole[0]["loss"].get<double>(), norm = whole[0]["grad_norm"].get<double>();
        EXPECT_GT(norm, 0) << agg;
        EXPECT_NEAR(micro[0]["loss"].get<double>(), loss, 1e-5 * std::fabs(loss) + 1e-7) << agg;
        EXPECT_NEAR(micro[0]["grad_norm"].get<double>(), norm, 1e-4 * norm) << agg;
    }
}

TEST(Rl, OldAndReferenceLogprobsOnTheBarePrompt) {
    TempDir d;
    write_model(d.path + "/policy", 1, 0.3f);
    write_model(d.path + "/judge", 2, 0.2f);
    write_rubrics(d.path + "/rubrics.jsonl", 2, 4);
    RlOptions o = tiny_run(d, "bare");
    o.device = "cpu";
    expect_logprobs_on_bare_prompt(o);
}

TEST(Rl, LoggedScheduleMatchesTheFormula) {
    TempDir d;
    write_model(d.path + "/policy", 1, 0.02f);
    write_rubrics(d.path + "/rubrics.jsonl", 3, 12);
    RlOptions o = tiny_run(d, "sched");
    o.eval_data = "", o.steps = 350, o.group = 8, o.prompts_per_step = 1, o.schedule_only = true;
    run_rl(o);
    std::vector<json> rows = read_metrics(o.out + "/metrics.jsonl");
    ASSERT_EQ(rows.size(), 350u);
    for (int s = 1; s <= 350; s++) {
        const json& m = rows[s - 1];
        const double t = double(s - 1) / 349.0, lambda_step = 1.0 / (1.0 + std::exp(125.0 * (t - 0.2)));
        EXPECT_NEAR(m["lambda_step"].get<double>(), lambda_step, 1e-12) << "step " << s;
        for (int i = 1; i <= 8; i++) {
            const double lambda = lambda_step * double(8 - i) / 7.0;
            EXPECT_NEAR(m["lambda_by_rollout"][i - 1].get<double>(), lambda, 1e-12) << "step " << s << " rollout " << i;
            EXPECT_EQ(m["shown_by_rollout"][i - 1].get<double>(), std::nearbyint(lambda * 12)) << "step " << s << " rollout " << i;
        }
    }
}

}  // namespace

namespace {

// --reward checker: rollouts are rewarded by the programmatic checker; data without checks is refused.
TEST(Rl, CheckerRewardNeedsChecksAndFollowsThem) {
    TempDir d;
    write_model(d.path + "/policy", 1, 0.3f);
    write_model(d.path + "/judge", 2, 0.2f);
    write_rubrics(d.path + "/rubrics.jsonl", 5, 4);
    RlOptions o = tiny_run(d, "unchecked");
    o.checker_reward = true;
    expect_error([&] { run_rl(o); }, {"rubrics.jsonl", "--reward checker", "\"check\""});

    // A positive criterion no reply can meet ("zzzq" is no word of the tokenizer's) and a negative
    // one on words a random policy writes now and then: by the checker, nothing positive is ever
    // met; the judge of these tests says yes to some of everything, so it would show here.
    std::string out;
    for (int i = 0; i < 3; i++) {
        json ex = {{"prompt_id", "c" + std::to_string(i)}, {"prompt", "Mira is sick. What helps?"},
                   {"rubrics", {{{"criterion", "Says zzzq"}, {"points", 2}, {"check", {{"all_words", {"zzzq"}}}}},
                                {{"criterion", "Says a"}, {"points", -1}, {"check", {{"all_words", {"a"}}}}}}}};
        out += ex.dump() + "\n";
    }
    write_file_atomic(d.path + "/checked.jsonl", out);
    o = tiny_run(d, "checked");
    o.data = o.eval_data = d.path + "/checked.jsonl";
    o.checker_reward = true, o.steps = 2;
    run_rl(o);
    std::vector<json> rows = read_metrics(o.out + "/metrics.jsonl");
    ASSERT_EQ(rows.size(), 3u);
    EXPECT_EQ(rows[0]["eval_checker_score"].get<double>(), 0.0);
    for (size_t s = 1; s < rows.size(); s++) {
        EXPECT_EQ(rows[s]["met_rate_positive"].get<double>(), 0.0) << "step " << s;
        EXPECT_NEAR(rows[s]["reward_mean"].get<double>(), -rows[s]["met_rate_negative"].get<double>() / 2, 1e-12);
    }
    write_model(d.path + "/judge", 5, 0.5f);  // a judge whose verdicts vary here
    o.checker_reward = false, o.out = d.path + "/judged";
    run_rl(o);
    double judged_pos = 0;
    for (const json& m : read_metrics(o.out + "/metrics.jsonl"))
        if (m.contains("met_rate_positive")) judged_pos += m["met_rate_positive"].get<double>();
    EXPECT_GT(judged_pos, 0.0) << "the test judge never says yes: the checker's zeros above prove nothing";
}

}  // namespace
