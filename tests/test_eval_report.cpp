// test_eval_report.cpp: `rusca eval`'s HealthBench breakdown (per axis from criterion tags, per
// theme from example tags, on each prompt's best completion, the score formula of simple-evals) and
// its per-example lines, on hand-made verdicts.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <sstream>

#include "host/eval_report.h"

using namespace rusca;
using json = nlohmann::json;

namespace {

RubricExample example(const std::string& id, std::vector<std::string> themes) {
    RubricExample ex;
    ex.prompt_id = id, ex.example_tags = std::move(themes);
    ex.rubrics = {{"acc+", 4, {"axis:accuracy", "level:example"}, {}},
                  {"acc-", -2, {"axis:accuracy"}, {}},
                  {"comp+", 2, {"axis:completeness", "cluster:x"}, {}},
                  {"comm-", -5, {"axis:communication_quality"}, {}}};
    return ex;
}

TEST(EvalReport, TagScoresFollowHealthBench) {
    const std::vector<RubricExample> data = {example("a", {"theme:emergency"}), example("b", {"theme:hedging"})};
    EvalResult r;
    // a: two completions, the second is the best (reward 4/6 vs 2/6 - 2/6); b: one completion.
    r.met = {{{false, true, true, false}, {true, false, false, false}}, {{true, true, true, true}}};
    r.responses = {{"a0", "a1"}, {"b0"}};
    r.truncated = {{false, true}, {false}};
    EXPECT_EQ(best_completion(data[0], r.met[0]), 1);
    const json t = tag_scores(data, r, 1);
    // accuracy: a 4/4 = 1, b (4 - 2)/4 = 0.5 -> 0.75
    EXPECT_DOUBLE_EQ(t["axis:accuracy"]["score"].get<double>(), 0.75);
    EXPECT_EQ(t["axis:accuracy"]["n"].get<int>(), 2);
    // completeness: a 0/2, b 2/2 -> 0.5
    EXPECT_DOUBLE_EQ(t["axis:completeness"]["score"].get<double>(), 0.5);
    // communication_quality has no positive points: no score for any prompt, so no entry
    EXPECT_FALSE(t.contains("axis:communication_quality"));
    // themes: the prompt's whole score, clipped as a mean: a 4/6; b (4-2+2-5)/6 < 0 -> clipped to 0
    EXPECT_DOUBLE_EQ(t["theme:emergency"]["score"].get<double>(), 4.0 / 6);
    EXPECT_DOUBLE_EQ(t["theme:hedging"]["score"].get<double>(), 0.0);
    EXPECT_FALSE(t.contains("level:example"));
    EXPECT_FALSE(t.contains("cluster:x"));
}

TEST(EvalReport, ExampleLinesHoldEveryCompletionAndVerdict) {
    const std::vector<RubricExample> data = {example("a", {})};
    EvalResult r;
    r.met = {{{false, true, true, false}, {true, false, false, false}}};
    r.responses = {{"first", "second"}};
    r.truncated = {{false, true}};
    r.has_checker = true;
    r.checker_met = {{{false, false, true, false}, {true, false, false, true}}};
    std::istringstream in(eval_examples_jsonl(data, r));
    std::string line;
    ASSERT_TRUE(std::getline(in, line));
    const json j = json::parse(line);
    EXPECT_EQ(j["prompt_id"], "a");
    EXPECT_EQ(j["best"], 1);
    EXPECT_DOUBLE_EQ(j["score"].get<double>(), 4.0 / 6);
    ASSERT_EQ(j["completions"].size(), 2u);
    const json& c = j["completions"][1];
    EXPECT_EQ(c["response"], "second");
    EXPECT_EQ(c["truncated"], true);
    EXPECT_DOUBLE_EQ(c["checker_reward"].get<double>(), (4.0 - 5) / 6);
    ASSERT_EQ(c["criteria"].size(), 4u);
    EXPECT_EQ(c["criteria"][3]["criterion"], "comm-");
    EXPECT_EQ(c["criteria"][3]["points"], -5);
    EXPECT_EQ(c["criteria"][3]["met"], false);
    EXPECT_EQ(c["criteria"][3]["checker_met"], true);
    EXPECT_FALSE(std::getline(in, line));
}

}  // namespace
