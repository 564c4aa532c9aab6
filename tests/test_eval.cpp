// test_eval.cpp: `rusca eval`'s scores on a tiny random policy and judge: the checker score is
// the rubric reward of the checker's verdicts on the very completions the judge scored, Best-of-N
// keeps each prompt's best completion per grader, the judge-vs-checker agreement counts every
// (completion, criterion) pair, data without checks has no checker score, and a full scaffold
// changes what the policy is shown.
#include <gtest/gtest.h>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "host/checker.h"
#include "host/checkpoint.h"
#include "host/eval.h"
#include "host/fileio.h"
#include "host/model.h"
#include "test_util.h"

using namespace rusca;
using namespace rusca::testutil;
using json = nlohmann::json;

namespace {

const char* kTok = "data/world/tokenizer.model";

std::string write_model(const std::string& dir, uint64_t seed, float std) {
    ModelConfig c = load_config("data/world_config.json");
    c.hidden_size = 32, c.intermediate_size = 48, c.num_layers = 2, c.num_heads = 2, c.num_kv_heads = 1, c.head_dim = 16;
    return write_random_model(dir, c, seed, std);
}

// Criteria whose words a random model writes now and then, so checker rewards vary.
std::vector<RubricExample> checked_examples(int n) {
    std::vector<RubricExample> out;
    for (int i = 0; i < n; i++) {
        json ex = {{"prompt_id", "e" + std::to_string(i)},
                   {"prompt", "Mira has a cough. What should they do?"},
                   {"rubrics", {{{"criterion", "Says to"}, {"points", 3}, {"check", {{"all_words", {"to"}}}}},
                                {{"criterion", "Says should"}, {"points", 2}, {"check", {{"all_words", {"should"}}}}},
                                {{"criterion", "Says a"}, {"points", -2}, {"check", {{"all_words", {"a"}}}}}}}};
        out.push_back(parse_rubric_line(ex.dump(), "t: ", i + 1, true));
    }
    return out;
}

struct Fixture {
    TempDir d;
    std::unique_ptr<Model> policy, judge_model;
    Tokenizer tok{kTok};
    std::unique_ptr<CpuInference> jinf;
    std::unique_ptr<Judge> judge;
    std::unique_ptr<InferenceEngine> peng, jeng;
    Fixture() {
        policy = load_cpu_model(write_model(d.path + "/policy", 3, 0.5f));
        judge_model = load_cpu_model(write_model(d.path + "/judge", 4, 0.3f));
        peng = make_engine("cpu", *policy), jeng = make_engine("cpu", *judge_model);
        jinf = std::make_unique<CpuInference>(judge_model->config, judge_model->params());
        judge = std::make_unique<Judge>(*jinf, tok, JudgeTemplate::load("data/world/judge_template.txt"));
    }
    EvalResult run(const std::vector<RubricExample>& data, int n, const ScaffoldTemplate* sc = nullptr) {
        EvalOptions o;
        o.gen.max_new_tokens = 12, o.seed = 5, o.best_of_n = n, o.scaffold = sc;
        return evaluate(*peng, tok, *jeng, *judge, data, o);
    }
};

}  // namespace

TEST(Eval, CheckerScoreIsTheBestCheckedRewardPerPrompt) {
    Fixture f;
    std::vector<RubricExample> data = checked_examples(6);
    EvalResult r = f.run(data, 3);
    ASSERT_TRUE(r.has_checker);
    ASSERT_EQ(r.responses.size(), data.size());
    std::vector<double> seen;
    double mean = 0;
    for (size_t i = 0; i < data.size(); i++) {
        ASSERT_EQ(r.responses[i].size(), 3u);
        double best = -1e9;
        for (const std::string& resp : r.responses[i]) {
            double v = rubric_reward(data[i], checker_verdicts(data[i], resp));
            best = std::max(best, v), seen.push_back(v);
        }
        EXPECT_DOUBLE_EQ(r.checker.rewards[i], best) << i;
        EXPECT_GE(r.judge.rewards[i], -2.0 / 5.0);
        mean += best / data.size();
    }
    EXPECT_NEAR(r.checker.mean_reward, mean, 1e-12);
    EXPECT_DOUBLE_EQ(r.checker.score, clipped_mean_score(r.checker.rewards));
    std::sort(seen.begin(), seen.end());
    EXPECT_LT(seen.front(), seen.back()) << "every completion got the same checker reward: the test checks nothing";
    EXPECT_EQ(r.n_pos, 6 * 3 * 2);
    EXPECT_EQ(r.n_neg, 6 * 3);
    EXPECT_LE(r.agree_pos, r.n_pos);
    EXPECT_LE(r.agree_neg, r.n_neg);
}

TEST(Eval, WithoutChecksThereIsNoCheckerScore) {
    Fixture f;
    std::vector<RubricExample> data = checked_examples(4);
    data[2].rubrics[1].check_words.clear();  // one unchecked criterion anywhere: no checker score at all
    EvalResult r = f.run(data, 2);
    EXPECT_FALSE(r.has_checker);
    EXPECT_EQ(r.n_pos + r.n_neg, 0);
    EXPECT_TRUE(r.checker.rewards.empty());
    EXPECT_EQ(r.judge.rewards.size(), data.size());
}

TEST(Eval, FullScaffoldIsShownToThePolicyOnly) {
    Fixture f;
    std::vector<RubricExample> data = checked_examples(4);
    ScaffoldTemplate sc = ScaffoldTemplate::load("data/scaffold_template.txt");
    EvalResult bare = f.run(data, 1), shown = f.run(data, 1, &sc);
    int differ = 0;
    for (size_t i = 0; i < data.size(); i++) differ += bare.responses[i][0] != shown.responses[i][0];
    EXPECT_GT(differ, 0) << "the scaffold did not reach the policy";
}
