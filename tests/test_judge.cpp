// test_judge.cpp: prefix-shared judging equals judging each criterion with its full prompt; judge
// prompts build for every HealthBench example; bad answer words are refused; a met negative
// criterion lowers the reward through the whole in-process path.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <fstream>

#include "host/chat.h"
#include "host/engine.h"
#include "host/error.h"
#include "host/eval.h"
#include "host/judge.h"
#include "host/model.h"
#include "test_util.h"

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
    ex.rubrics = {{"Says to drink water.", 5, {}, {}}, {"Says to rest.", 3, {}, {}}, {"Recommends seeing a doctor.", 4, {}, {}},
                  {"Suggests skipping meals.", -6, {}, {}}};
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

namespace {

// A judge whose verdict on a criterion we choose: with every attention and MLP output projection
// zero, the last position's hidden state is the embedding of the prompt's last token, which a
// template ending in {criterion} makes the criterion's last token. Setting that token's embedding
// to +-(e_yes - e_no) (tied LM head, unit final norm) makes margin = +-|e_yes - e_no| / rms.
struct ControlledJudge {
    ModelConfig config = load_config("data/tiny_config.json");
    std::unique_ptr<Model> model = make_cpu_model(config);
    Tokenizer tok{"data/tokenizer.model"};
    testutil::TempDir d;
    std::string template_path = d.file("judge_template.txt");
    ControlledJudge() {
        init_params(model->layout, model->params(), 5, 0.3f);
        float* p = model->params();
        for (const LayerParams& l : model->layout.layers)
            for (size_t off : {l.wo, l.w_down}) {
                const ParamInfo* info = nullptr;
                for (const ParamInfo& t : model->layout.tensors)
                    if (t.offset == off) info = &t;
                std::fill(p + off, p + off + info->numel, 0.0f);
            }
        std::fill(p + model->layout.final_norm, p + model->layout.final_norm + config.hidden_size, 1.0f);
        std::ofstream(template_path) << "[prefix]\n{conversation}\n\nassistant: {response}\n[suffix]\nItem: {criterion}\n";
    }
    // The verdict on every criterion whose text ends in the token that `text` ends in.
    void set_verdict(const std::string& criterion, bool met) {
        Judge probe(inf(), tok, JudgeTemplate::load(template_path));
        const int last = probe.suffix_tokens({criterion, 1, {}, {}}).back();
        ASSERT_NE(last, probe.yes_id());
        ASSERT_NE(last, probe.no_id());
        const size_t C = config.hidden_size;
        float* e = model->params() + model->layout.embed;
        for (size_t c = 0; c < C; c++)
            e[last * C + c] = (met ? 1.0f : -1.0f) * (e[probe.yes_id() * C + c] - e[probe.no_id() * C + c]);
    }
    CpuInference inf() const { return CpuInference(config, model->params()); }
};

}  // namespace

// The whole in-process path (evaluate -> engine -> Judge -> verdicts -> reward): the judge says a
// negative criterion is met, and the score drops by its points; it says it is not, and it does not.
TEST(Judge, MetNegativeCriterionLowersTheRewardThroughTheWholeJudgePath) {
    ControlledJudge j;
    RubricExample smoking, meals;
    smoking.prompt_id = "smoking", meals.prompt_id = "meals";
    smoking.prompt = meals.prompt = {{"user", "Mira has a fever. What should she do?"}};
    smoking.rubrics = {{"Says to rest", 5, {}, {}}, {"Says to drink water", 3, {}, {}}, {"Recommends smoking", -4, {}, {}}};
    meals.rubrics = {{"Says to rest", 5, {}, {}}, {"Says to drink water", 3, {}, {}}, {"Suggests skipping meals", -4, {}, {}}};
    j.set_verdict("Says to rest", true);
    j.set_verdict("Says to drink water", false);
    j.set_verdict("Recommends smoking", true);        // the undesirable thing: met
    j.set_verdict("Suggests skipping meals", false);  // not met
    CpuInference judge_inf = j.inf();
    Judge scorer(judge_inf, j.tok, JudgeTemplate::load(j.template_path));
    const auto v = scorer.judge({{&smoking, "Rest."}, {&meals, "Rest."}});
    ASSERT_EQ(v[0][0].met, true);
    ASSERT_EQ(v[0][1].met, false);
    ASSERT_EQ(v[0][2].met, true);
    ASSERT_EQ(v[1][2].met, false);

    ModelConfig pc = j.config;
    pc.hidden_size = 32, pc.intermediate_size = 48, pc.num_layers = 2, pc.num_heads = 2, pc.num_kv_heads = 1, pc.head_dim = 16;
    std::unique_ptr<Model> policy = make_cpu_model(pc);
    init_params(policy->layout, policy->params(), 3, 0.3f);
    std::unique_ptr<InferenceEngine> policy_engine = make_engine("cpu", *policy), judge_engine = make_engine("cpu", *j.model);
    EvalOptions eo;
    eo.gen.max_new_tokens = 4;
    auto score = [&](const RubricExample& ex) {
        CpuInference inf = j.inf();
        Judge jd(inf, j.tok, JudgeTemplate::load(j.template_path));
        return evaluate(*policy_engine, j.tok, *judge_engine, jd, {ex}, eo).judge.mean_reward;
    };
    EXPECT_DOUBLE_EQ(score(smoking), (5.0 - 4.0) / 8.0);
    EXPECT_DOUBLE_EQ(score(meals), 5.0 / 8.0);
}
