// test_eval_report.cpp: `rusca eval`'s HealthBench breakdown (per axis from criterion tags, per
// theme from example tags, on each prompt's best completion, the score formula of simple-evals) and
// its per-example lines, on hand-made verdicts; then `rusca eval` writing both from the command line.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdlib>
#include <nlohmann/json.hpp>
#include <sstream>

#include "host/eval_report.h"
#include "host/fileio.h"
#include "host/model.h"
#include "test_util.h"

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

namespace {

// `rusca eval` end to end: --top-k accepted, the breakdown printed and in --json, one
// --examples-out line per prompt with Best-of-N's completions.
TEST(EvalReport, EvalCommandWritesBreakdownAndExamples) {
    using namespace rusca::testutil;
    TempDir d;
    ModelConfig c = load_config("data/tiny_config.json");
    c.hidden_size = 32, c.intermediate_size = 48, c.num_layers = 2, c.num_heads = 2, c.num_kv_heads = 1, c.head_dim = 16;
    write_random_model(d.file("policy"), c, 1, 0.3f);
    write_random_model(d.file("judge"), c, 5, 0.5f);
    std::string data;
    for (int i = 0; i < 3; i++)
        data += json({{"prompt_id", "h" + std::to_string(i)}, {"prompt", "Mira is sick. What helps?"},
                      {"example_tags", {i % 2 ? "theme:hedging" : "theme:emergency"}},
                      {"rubrics", {{{"criterion", "Says rest."}, {"points", 3}, {"tags", {"axis:accuracy"}}},
                                   {{"criterion", "Says tea."}, {"points", -2}, {"tags", {"axis:completeness"}}}}}})
                    .dump() + "\n";
    write_file_atomic(d.file("h.jsonl"), data);
    const std::string cmd = "build/rusca eval --policy " + d.file("policy") + " --judge " + d.file("judge") +
                            " --tokenizer data/tokenizer.model --data " + d.file("h.jsonl") +
                            " --max-new-tokens 4 --best-of-n 2 --top-k 50 --device cpu --json " + d.file("e.json") +
                            " --examples-out " + d.file("ex.jsonl") + " > " + d.file("out.txt") + " 2>&1";
    const int rc = std::system(cmd.c_str());
    const std::string out = read_file(d.file("out.txt"));
    ASSERT_TRUE(WIFEXITED(rc) && WEXITSTATUS(rc) == 0) << out;
    EXPECT_NE(out.find("axis:accuracy"), std::string::npos) << out;
    EXPECT_NE(out.find("theme:hedging"), std::string::npos) << out;
    const json e = json::parse(read_file(d.file("e.json")));
    EXPECT_EQ(e["by_tag"]["theme:emergency"]["n"], 2);
    EXPECT_EQ(e["by_tag"]["axis:accuracy"]["n"], 3);
    EXPECT_FALSE(e["by_tag"].contains("axis:completeness")) << "no positive points: no score, as HealthBench";
    std::istringstream in(read_file(d.file("ex.jsonl")));
    int lines = 0;
    for (std::string line; std::getline(in, line); lines++) {
        const json j = json::parse(line);
        EXPECT_EQ(j["prompt_id"], "h" + std::to_string(lines));
        EXPECT_EQ(j["completions"].size(), 2u);
        EXPECT_EQ(j["completions"][0]["criteria"].size(), 2u);
    }
    EXPECT_EQ(lines, 3);
}

}  // namespace
