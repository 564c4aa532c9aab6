// test_judge.cpp: prefix-shared judging equals judging each criterion with its full prompt; judge
// prompts build for every HealthBench example; bad answer words are refused.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>

#include "host/chat.h"
#include "host/error.h"
#include "host/judge.h"
#include "host/model.h"

using namespace rusca;

namespace {

struct TinyJudge {
    ModelConfig config = load_config("data/tiny_config.json");
    std::unique_ptr<Model> model = make_cpu_model(config);
    Tokenizer tok{"data/tokenizer.model"};
    TinyJudge() { init_params(model->layout, model->params(), 11, 0.3f); }
};

RubricExample example() {
    RubricExample ex;
    ex.prompt_id = "t-1";
    ex.prompt = {{"user", "Mira has a fever. What should she do?"}};
    ex.rubrics = {{"Says to drink water.", 5, {}}, {"Says to rest.", 3, {}}, {"Recommends seeing a doctor.", 4, {}},
                  {"Suggests skipping meals.", -6, {}}};
    return ex;
}

TEST(Judge, SharedPrefixEqualsFullPrompt) {
    TinyJudge j;
    CpuInference inf(j.config, j.model->params());
    Judge judge(inf, j.tok, JudgeTemplate::load("data/judge_template.txt"));
    RubricExample ex = example();
    std::vector<JudgeItem> items = {{&ex, "She should drink water and rest."}, {&ex, "Skip meals."}};
    auto verdicts = judge.judge(items);
    ASSERT_EQ(verdicts.size(), 2u);
    for (size_t i = 0; i < items.size(); i++) {
        ASSERT_EQ(verdicts[i].size(), ex.rubrics.size());
        for (size_t c = 0; c < ex.rubrics.size(); c++) {
            Verdict full = judge.judge_full(items[i], int(c));
            EXPECT_NEAR(verdicts[i][c].margin, full.margin, 1e-4 * (1 + std::fabs(full.margin))) << i << "," << c;
            EXPECT_EQ(verdicts[i][c].met, full.met);
            EXPECT_NEAR(verdicts[i][c].p_yes, 1 / (1 + std::exp(-full.margin)), 1e-5);
        }
    }
}

TEST(Judge, MarginIsTheDifferenceOfTheTwoLogits) {
    TinyJudge j;
    CpuInference inf(j.config, j.model->params());
    Judge judge(inf, j.tok, JudgeTemplate::load("data/judge_template.txt"));
    RubricExample ex = example();
    JudgeItem item{&ex, "Drink water."};
    std::vector<int> tokens = judge.prefix_tokens(item), s = judge.suffix_tokens(ex.rubrics[0]);
    tokens.insert(tokens.end(), s.begin(), s.end());
    j.model->forward(tokens.data(), nullptr, 1, int(tokens.size()));
    std::vector<float> logits = j.model->logits();
    const float* last = &logits[(tokens.size() - 1) * j.config.vocab_size];
    EXPECT_NEAR(judge.judge_full(item, 0).margin, last[judge.yes_id()] - last[judge.no_id()], 1e-4);
}

TEST(Judge, RefusesAnswerWordsThatShareAToken) {
    TinyJudge j;
    CpuInference inf(j.config, j.model->params());
    EXPECT_THROW(Judge(inf, j.tok, JudgeTemplate::load("data/judge_template.txt"), " yes", " yes"), Error);
}

TEST(Judge, PromptsBuildForEveryHealthBenchExample) {
    const std::string path = "../shared/data/healthbench/healthbench_500_public.jsonl";
    if (!std::ifstream(path).good()) GTEST_SKIP() << "HealthBench sample not present";
    TinyJudge j;
    CpuInference inf(j.config, j.model->params());
    Judge judge(inf, j.tok, JudgeTemplate::load("data/judge_template.txt"));
    std::vector<RubricExample> data = load_rubric_jsonl(path);
    ASSERT_EQ(data.size(), 400u);
    size_t prefix_total = 0, suffix_total = 0, criteria = 0, longest = 0;
    for (const RubricExample& ex : data) {
        JudgeItem item{&ex, ex.prompt.back().content};  // stand-in response: the last user turn
        size_t p = judge.prefix_tokens(item).size();
        prefix_total += p;
        for (const Criterion& c : ex.rubrics) {
            size_t s = judge.suffix_tokens(c).size();
            suffix_total += s, criteria++, longest = std::max(longest, p + s);
        }
    }
    std::printf("[ judge prompts ] 400 examples, %zu criteria: mean prefix %.0f tokens, mean criterion suffix "
                "%.0f tokens, longest prompt %zu tokens (tiny tokenizer)\n",
                criteria, double(prefix_total) / data.size(), double(suffix_total) / criteria, longest);
    EXPECT_GT(criteria, 4000u);
}

}  // namespace
