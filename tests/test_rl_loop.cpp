// test_rl_loop.cpp: the wiring of `rusca rl`'s loop, checked from what a run writes (metrics.jsonl,
// the rollout dumps, checkpoints), on tiny random models on the CPU:
//  - the dumped scaffold is the one generation saw (the step's rollouts are replayed from the dump);
//  - each advantage lands on its own rollout, and Dr. GRPO divides by the generation budget (the
//    step's first loss, where old == current, recomputed from the dump for every aggregation);
//  - alarms fire (truncation, zero-variance groups, zero loss and gradient, KL);
//  - --resume refuses a changed setting, naming it; a step never draws a prompt twice; an over-long
//    prompt is filtered and counted; zero-point criteria count as neither kind.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "host/advantage.h"
#include "host/chat.h"
#include "host/cpu/infer.h"
#include "host/fileio.h"
#include "host/generate.h"
#include "host/model.h"
#include "host/rl.h"
#include "host/rl_data.h"
#include "host/rl_metrics.h"
#include "host/rollout_dump.h"
#include "rl_test_util.h"
#include "test_util.h"

using namespace rusca;
using namespace rusca::testutil;
using json = nlohmann::json;

namespace {

const char* kTok = "data/tokenizer.model";

ModelConfig tiny_config() {
    ModelConfig c = load_config("data/tiny_config.json");
    c.hidden_size = 32, c.intermediate_size = 48, c.num_layers = 2, c.num_heads = 2, c.num_kv_heads = 1, c.head_dim = 16;
    return c;
}

// A random policy whose stop tokens' embedding rows (tied: also the LM head's) are scaled up, so
// that in some contexts a stop token dominates and in others it is far off: responses end at
// different lengths, most before the budget.
std::string write_stopping_policy(const std::string& dir, uint64_t seed, float scale) {
    const ModelConfig c = tiny_config();
    ParamLayout layout(c);
    std::vector<float> params(layout.total);
    init_params(layout, params.data(), seed, 0.3f);
    for (int t : chat_stop_tokens(Tokenizer(kTok)))
        for (int j = 0; j < c.hidden_size; j++) params[layout.lm_head + size_t(t) * c.hidden_size + j] *= scale;
    save_model(dir, c, layout, params.data());
    return dir;
}

struct World {
    TempDir d;
    World(int prompts = 4, int criteria = 4) {
        write_random_model(d.path + "/policy", tiny_config(), 1, 0.3f);
        write_random_model(d.path + "/judge", tiny_config(), 2, 0.2f);
        write_rubrics(d.path + "/rubrics.jsonl", prompts, criteria);
    }
    RlOptions run(const std::string& out) const {
        RlOptions o;
        o.policy = d.path + "/policy", o.judge = d.path + "/judge", o.tokenizer = kTok;
        o.data = d.path + "/rubrics.jsonl", o.out = d.path + "/" + out;
        o.steps = 3, o.prompts_per_step = 2, o.group = 4, o.updates_per_step = 1, o.max_new_tokens = 8;
        o.lr = 1e-3f, o.loss.beta = 0, o.quiet = true, o.device = "cpu";
        o.judge_template = "tests/judge_template_short.txt";  // verdicts of this random judge vary with the reply
        return o;
    }
};

std::vector<json> read_jsonl(const std::string& path) { return read_metrics(path); }

// Step 1 of a 3-step sigmoid run shows nearly every criterion to rollout 1 and none to rollout G.
TEST(RlLoop, DumpHoldsTheScaffoldGenerationSaw) {
    World w;
    RlOptions o = w.run("dump");
    o.steps = 1, o.dump_every = 1, o.max_new_tokens = 6;
    run_rl(o);
    const std::vector<json> rows = read_jsonl(rollout_dump_path(o.out, 1));
    ASSERT_EQ(rows.size(), 8u);

    // The rollouts again, from the starting weights, the dumped scaffolds and the dumped seed.
    std::unique_ptr<Model> policy = load_cpu_model(o.policy);
    CpuInference inf(policy->config, policy->params());
    Tokenizer tok(kTok);
    std::map<std::string, RubricExample> by_id;
    for (RubricExample& ex : load_rubric_jsonl(o.data)) by_id[ex.prompt_id] = ex;
    auto replay = [&](bool with_scaffold) {
        std::vector<PromptGroup> groups(o.prompts_per_step);
        for (const json& r : rows) {
            const RubricExample& ex = by_id.at(r["prompt_id"].get<std::string>());
            PromptGroup& g = groups[r["group"].get<int>()];
            g.prompt = chat_prompt_tokens(tok, ex.prompt);
            g.prefixes.push_back(chat_prefix_tokens(tok, with_scaffold ? r["scaffold"].get<std::string>() : "", ex.prompt));
        }
        GenerateOptions gen;
        gen.sampling = o.sampling, gen.max_new_tokens = o.max_new_tokens, gen.stop_tokens = chat_stop_tokens(tok);
        gen.seed = rows[0]["sample_seed"].get<uint64_t>();
        std::vector<std::string> out;
        for (const auto& group : generate(inf, groups, gen))
            for (const Completion& c : group) out.push_back(completion_text(tok, c));
        return out;
    };
    const std::vector<std::string> same = replay(true), bare = replay(false);
    int differs_bare = 0;
    for (size_t k = 0; k < rows.size(); k++) {
        const json& r = rows[k];
        EXPECT_EQ(r["rollout"].get<size_t>(), k);
        EXPECT_EQ(r["index"].get<int>(), int(k % 4) + 1);
        EXPECT_EQ(same[k], r["response"].get<std::string>()) << "rollout " << k;
        differs_bare += bare[k] != r["response"].get<std::string>();
        const RubricExample& ex = by_id.at(r["prompt_id"].get<std::string>());
        EXPECT_EQ(r["shown"].size(), size_t(criteria_shown(r["lambda"].get<double>(), int(ex.rubrics.size()))));
        EXPECT_EQ(r["scaffold"].get<std::string>().empty(), r["shown"].empty());
        // The reward is the rubric reward of the dumped verdicts.
        std::vector<bool> met;
        for (const json& c : r["criteria"]) met.push_back(c["met"].get<bool>());
        EXPECT_DOUBLE_EQ(r["reward"].get<double>(), rubric_reward(ex, met));
    }
    EXPECT_FALSE(rows[0]["shown"].empty()) << "rollout 1 saw no scaffold: nothing to check";
    EXPECT_TRUE(rows[3]["shown"].empty()) << "rollout G must see none";
    EXPECT_GT(differs_bare, 0) << "without the scaffolds the replay is the same: the check above could not fail";
}

// At step 1's only minibatch the old policy is the current one (ratio 1), so with beta = 0 the loss
// is -sum_k A_k n_k / D, where n_k is rollout k's token count and D the aggregation's denominator.
// Advantages on the wrong rollouts, or Dr. GRPO dividing by the longest response, change it.
TEST(RlLoop, AdvantagesLandOnTheirRolloutsAndDrGrpoDividesByTheBudget) {
    World w;
    write_stopping_policy(w.d.path + "/policy", 3, 6.0f);
    write_random_model(w.d.path + "/judge", tiny_config(), 5, 0.5f);  // a judge that says yes often here
    for (const char* agg : {"token-mean", "seq-mean-token-sum", "seq-mean-token-sum-norm"}) {
        RlOptions o = w.run(std::string("adv-") + agg);
        o.steps = 1, o.dump_every = 1, o.max_new_tokens = 24, o.group = 4, o.prompts_per_step = 2;
        o.loss.agg = cpu::parse_grpo_agg(agg);
        run_rl(o);
        const std::vector<json> rows = read_jsonl(rollout_dump_path(o.out, 1));
        const json m = read_metrics(o.out + "/metrics.jsonl")[0];
        ASSERT_EQ(rows.size(), 8u);
        std::vector<double> rewards;
        double weighted = 0, tokens = 0;
        long longest = 0;
        std::set<long> lengths;
        for (const json& r : rows) {
            rewards.push_back(r["reward"].get<double>());
            const long n = r["tokens"].get<long>();
            weighted += r["advantage"].get<double>() * double(n), tokens += double(n);
            longest = std::max(longest, n), lengths.insert(n);
        }
        const std::vector<float> adv = group_advantages(rewards, o.group, o.adv_norm);
        for (size_t k = 0; k < rows.size(); k++) EXPECT_FLOAT_EQ(rows[k]["advantage"].get<float>(), adv[k]) << agg;
        ASSERT_GT(lengths.size(), 2u) << "responses of equal lengths: a misplaced advantage would not show";
        ASSERT_LT(longest, o.max_new_tokens) << "a response at the budget: Dr. GRPO's denominators would agree";
        ASSERT_GT(std::fabs(weighted), 1e-3) << "no advantage-weighted length: the loss is 0 whatever the wiring";
        const double S = double(rows.size());
        const double D = std::string(agg) == "token-mean" ? tokens : std::string(agg) == "seq-mean-token-sum" ? S : S * o.max_new_tokens;
        EXPECT_NEAR(m["loss"].get<double>(), -weighted / D, 1e-5 * std::fabs(weighted / D)) << agg;
        EXPECT_NEAR(m["pg_loss"].get<double>(), m["loss"].get<double>(), 1e-12) << agg;
        EXPECT_EQ(m["kl_loss"].get<double>(), 0.0) << agg;
        EXPECT_NEAR(m["ppo_kl"].get<double>(), 0.0, 1e-6) << "old and current log-probs differ before any update";
    }
}

TEST(RlLoop, TruncationAlarm) {
    World w;
    RlOptions o = w.run("trunc");
    o.steps = 1, o.max_new_tokens = 2;
    run_rl(o);
    const json m = read_metrics(o.out + "/metrics.jsonl")[0];
    EXPECT_GT(m["truncation_rate"].get<double>(), 0.5);
    bool alarmed = false;
    for (const json& a : m["alarms"]) alarmed |= a.get<std::string>().find("--max-new-tokens") != std::string::npos;
    EXPECT_TRUE(alarmed) << m["alarms"].dump();
}

// Criteria no response can meet (by the checker): every reward is 0, every group has zero variance,
// and with beta = 0 the loss and the gradient are exactly 0.
TEST(RlLoop, ZeroVarianceAndZeroGradientAlarms) {
    World w;
    std::string data;
    for (int i = 0; i < 2; i++)
        data += json({{"prompt_id", "z" + std::to_string(i)}, {"prompt", "Mira is sick. What helps?"},
                      {"rubrics", {{{"criterion", "Says zzzq"}, {"points", 2}, {"check", {{"all_words", {"zzzq"}}}}}}}})
                    .dump() + "\n";
    write_file_atomic(w.d.file("never.jsonl"), data);
    RlOptions o = w.run("zero");
    o.data = w.d.file("never.jsonl"), o.checker_reward = true, o.steps = 1;
    run_rl(o);
    const json m = read_metrics(o.out + "/metrics.jsonl")[0];
    EXPECT_EQ(m["zero_variance_groups"].get<double>(), 1.0);
    const std::string alarms = m["alarms"].dump();
    EXPECT_NE(alarms.find("zero reward variance"), std::string::npos) << alarms;
    EXPECT_NE(alarms.find("loss and gradient are both zero"), std::string::npos) << alarms;
}

// A huge learning rate moves the policy so far in the first minibatch that the second one's log-probs
// are far from the old ones.
TEST(RlLoop, KlAlarm) {
    World w;
    RlOptions o = w.run("kl");
    o.steps = 1, o.updates_per_step = 2, o.lr = 0.5f;
    run_rl(o);
    const json m = read_metrics(o.out + "/metrics.jsonl")[0];
    EXPECT_NE(m["alarms"].dump().find("old and the updated policy"), std::string::npos) << m.dump();

    RlOptions calm = w.run("calm");
    calm.steps = 1, calm.updates_per_step = 2, calm.lr = 1e-6f;
    run_rl(calm);
    EXPECT_EQ(read_metrics(calm.out + "/metrics.jsonl")[0]["alarms"].dump().find("KL"), std::string::npos);
}

TEST(RlLoop, AlarmRules) {
    EXPECT_TRUE(step_alarms({{"zero_variance_groups", 0.5}, {"truncation_rate", 0.5}, {"kl", 1.0}, {"ppo_kl", -0.1},
                             {"loss", 0.0}, {"grad_norm", 0.0}, {"updates", json::array()}})
                    .empty());
    EXPECT_EQ(step_alarms({{"loss", 0.0}, {"grad_norm", 0.0}, {"updates", {{}}}, {"updates_skipped", 0}}).size(), 1u);
    EXPECT_TRUE(step_alarms({{"loss", 0.0}, {"grad_norm", 0.0}, {"updates", {{}}}, {"updates_skipped", 1}}).empty())
        << "a skipped update is reported as skipped, not as a zero gradient";
    EXPECT_EQ(step_alarms({{"kl", 1.5}}).size(), 1u);
    EXPECT_EQ(step_alarms({{"ppo_kl", -0.2}}).size(), 1u);
    EXPECT_EQ(step_alarms({{"kl", std::nan("")}}).size(), 1u);
}

TEST(RlLoop, ResumeRefusesAChangedSetting) {
    World w;
    RlOptions o = w.run("resume");
    o.stop_at = 1;
    run_rl(o);
    o.stop_at = 0, o.resume = true;
    struct Change {
        const char* key;
        std::function<void(RlOptions&)> apply;
    };
    const std::vector<Change> changes = {
        {"lr", [](RlOptions& r) { r.lr = 2e-3f; }},
        {"t0", [](RlOptions& r) { r.schedule.t0 = 0.3; }},
        {"alpha", [](RlOptions& r) { r.schedule.alpha = 100; }},
        {"scaffold", [](RlOptions& r) { r.schedule.decay = StepDecay::Linear; }},
        {"beta", [](RlOptions& r) { r.loss.beta = 0.01; }},
        {"eps_high", [](RlOptions& r) { r.loss.eps_high = 0.28; }},
        {"loss_agg", [](RlOptions& r) { r.loss.agg = cpu::GrpoAgg::SeqMeanTokenMean; }},
        {"temperature", [](RlOptions& r) { r.sampling.temperature = 0.7f; }},
        {"top_k", [](RlOptions& r) { r.sampling.top_k = 20; }},
        {"max_new_tokens", [](RlOptions& r) { r.max_new_tokens = 9; }},
        {"adv_norm", [](RlOptions& r) { r.adv_norm = AdvNorm::None; }},
    };
    for (const Change& c : changes) {
        RlOptions changed = o;
        c.apply(changed);
        expect_error([&] { run_rl(changed); }, {"checkpoint-000001", std::string(c.key) + " = ", "resume with the same settings"});
    }
    RlOptions same = o;
    same.threads = 1, same.eval_every = 5;  // how a run is watched may change
    EXPECT_EQ(run_rl(same).last_step, 3);
}

TEST(RlLoop, AStepNeverDrawsAPromptTwice) {
    EpochSampler sampler(5, 7);
    for (int step = 0; step < 40; step++) {
        const std::vector<size_t> drawn = draw_step_prompts(sampler, 3, "d.jsonl");
        EXPECT_EQ(std::set<size_t>(drawn.begin(), drawn.end()).size(), 3u) << "step " << step;
    }
    expect_error([&] { draw_step_prompts(sampler, 6, "d.jsonl"); }, {"d.jsonl", "--prompts-per-step 6", "5 prompts"});

    // Through the loop: 3 prompts, 2 per step, so every second step would straddle two epochs.
    World w(3, 3);
    RlOptions o = w.run("draws");
    o.steps = 4, o.group = 2, o.max_new_tokens = 2, o.dump_every = 1;
    run_rl(o);
    for (int s = 1; s <= 4; s++) {
        std::set<std::string> ids;
        for (const json& r : read_jsonl(rollout_dump_path(o.out, s))) ids.insert(r["prompt_id"].get<std::string>());
        EXPECT_EQ(ids.size(), 2u) << "step " << s;
    }
}

TEST(RlLoop, OverLongPromptIsFilteredAndCounted) {
    World w(3, 3);
    std::string words;
    for (int i = 0; i < 200; i++) words += "Mira is sick. ";
    json ex = {{"prompt_id", "long"}, {"prompt", words}, {"rubrics", {{{"criterion", "Says a."}, {"points", 1}}}}};
    write_file_atomic(w.d.file("rubrics.jsonl"), read_file(w.d.file("rubrics.jsonl")) + ex.dump() + "\n");
    RlOptions o = w.run("long");
    o.steps = 2, o.max_new_tokens = 2, o.dump_every = 1, o.prompts_per_step = 3;
    o.eval_data = o.data, o.eval_every = 2;
    run_rl(o);
    for (const json& m : read_metrics(o.out + "/metrics.jsonl")) {
        if (m.contains("reward_mean")) {
            EXPECT_EQ(m["prompts_filtered_overlong"].get<long>(), 1);
        }
    }
    for (int s = 1; s <= 2; s++) {
        for (const json& r : read_jsonl(rollout_dump_path(o.out, s))) EXPECT_NE(r["prompt_id"], "long");
    }

    write_file_atomic(w.d.file("long.jsonl"), ex.dump() + "\n");
    o.data = w.d.file("long.jsonl"), o.eval_data = "", o.out = w.d.path + "/long2";
    expect_error([&] { run_rl(o); }, {"long.jsonl", "every prompt is too long", "max_position_embeddings 512"});
}

// Zero-point criteria move no reward: neither positive nor negative in the met rates; the per-tag
// rates follow HealthBench's axis (criterion) and theme (example) tags.
TEST(RlLoop, MetRatesByKindAndTag) {
    RubricExample ex;
    ex.example_tags = {"theme:emergency", "physician_agreed_category:x"};
    ex.rubrics = {{"a", 5, {"axis:accuracy", "level:example"}, {}},
                  {"b", -3, {"axis:accuracy"}, {}},
                  {"c", 0, {"axis:completeness"}, {}},
                  {"d", 2, {"axis:completeness"}, {}}};
    std::vector<const RubricExample*> prompts = {&ex};
    std::vector<Rollout> rs(2);
    rs[0].met = {true, true, true, false}, rs[0].reward = 2.0 / 7, rs[0].completion.stopped = true;
    rs[1].met = {false, false, true, true}, rs[1].reward = 2.0 / 7, rs[1].completion.stopped = false;
    const json m = rollout_metrics(rs, prompts, 2);
    EXPECT_DOUBLE_EQ(m["met_rate_positive"].get<double>(), 2.0 / 4);
    EXPECT_DOUBLE_EQ(m["met_rate_negative"].get<double>(), 1.0 / 2) << "the zero-point criterion counted as negative";
    EXPECT_DOUBLE_EQ(m["truncation_rate"].get<double>(), 0.5);
    EXPECT_DOUBLE_EQ(m["zero_variance_groups"].get<double>(), 1.0);
    const json& tags = m["met_rate_by_tag"];
    EXPECT_DOUBLE_EQ(tags["axis:accuracy"]["positive"].get<double>(), 0.5);
    EXPECT_DOUBLE_EQ(tags["axis:accuracy"]["negative"].get<double>(), 0.5);
    EXPECT_DOUBLE_EQ(tags["axis:completeness"]["positive"].get<double>(), 0.5);
    EXPECT_FALSE(tags["axis:completeness"].contains("negative"));
    EXPECT_DOUBLE_EQ(tags["theme:emergency"]["positive"].get<double>(), 2.0 / 4);
    EXPECT_FALSE(tags.contains("level:example"));
    EXPECT_FALSE(tags.contains("physician_agreed_category:x"));
}

}  // namespace
