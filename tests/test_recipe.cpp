// test_recipe.cpp: recipe files (host/recipe.h): the format, the shipped recipes' values (the paper's
// t0 per model, the official script's sampling), and `rusca rl --recipe` with explicit flags winning.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdlib>
#include <map>
#include <nlohmann/json.hpp>

#include "host/fileio.h"
#include "host/recipe.h"
#include "rl_test_util.h"
#include "test_util.h"

using namespace rusca;
using namespace rusca::testutil;

namespace {

std::map<std::string, std::string> as_map(const std::vector<RecipeSetting>& v) {
    std::map<std::string, std::string> m;
    for (const RecipeSetting& s : v) m[s.key] = s.value;
    return m;
}

TEST(Recipe, Format) {
    const auto s = parse_recipe("# comment\n\nt0 = 0.15\nloss-agg = \"token-mean\"  # trailing\n  top-k=20\nname = \"a # b\"\n", "r.toml");
    ASSERT_EQ(s.size(), 4u);
    EXPECT_EQ(s[0].key, "t0");
    EXPECT_EQ(s[0].value, "0.15");
    EXPECT_EQ(s[0].line, 3);
    EXPECT_EQ(s[1].value, "token-mean");
    EXPECT_EQ(s[2].key, "top-k");
    EXPECT_EQ(s[2].value, "20");
    EXPECT_EQ(s[3].value, "a # b");
    expect_error([] { parse_recipe("t0 0.1\n", "r.toml"); }, {"r.toml:1:", "key = value"});
    expect_error([] { parse_recipe("t0 = 0.1\nt0 = 0.2\n", "r.toml"); }, {"r.toml:2:", "\"t0\" is set twice"});
    expect_error([] { parse_recipe("--t0 = 0.1\n", "r.toml"); }, {"r.toml:1:", "bad key"});
    expect_error([] { parse_recipe("t0 =\n", "r.toml"); }, {"r.toml:1:", "no value"});
    expect_error([] { parse_recipe("x = \"open\n", "r.toml"); }, {"r.toml:1:", "unterminated"});
}

TEST(Recipe, ShippedRecipesArePapers) {
    const std::map<std::string, std::string> t0 = {{"qwen2.5-7b-instruct", "0.2"}, {"qwen3-4b-instruct", "0.2"},
                                                   {"qwen3-30b-a3b-instruct", "0.1"}, {"llama-3.1-8b-instruct", "0.15"},
                                                   {"llama-3.2-3b-instruct", "0.3"}};
    for (const auto& [model, want] : t0) {
        const auto r = as_map(read_recipe("recipes/" + model + ".toml"));
        EXPECT_EQ(r.at("t0"), want) << model;
        EXPECT_EQ(r.at("temperature"), "0.7") << model;
        EXPECT_EQ(r.at("top-p"), "0.8") << model;
        EXPECT_EQ(r.at("top-k"), "20") << model;
        EXPECT_EQ(r.at("alpha"), "125") << model;
        EXPECT_EQ(r.at("steps"), "350") << model;
        EXPECT_EQ(r.at("group"), "8") << model;
        EXPECT_EQ(r.at("prompts-per-step"), "64") << model;
    }
}

int rusca(const std::string& args, std::string* out = nullptr) {
    const std::string log = "/tmp/rusca_recipe_test.log";
    const int rc = std::system(("build/rusca " + args + " > " + log + " 2>&1").c_str());
    if (out) *out = read_file(log);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

// The recipe's values, except those given as flags; a recipe key that is no flag is an error.
TEST(Recipe, RlLoadsItAndExplicitFlagsWin) {
    TempDir d;
    ModelConfig c = load_config("data/tiny_config.json");
    c.hidden_size = 32, c.intermediate_size = 48, c.num_layers = 2, c.num_heads = 2, c.num_kv_heads = 1, c.head_dim = 16;
    write_random_model(d.file("policy"), c, 1, 0.3f);
    write_rubrics(d.file("r.jsonl"), 3, 3);
    const std::string base = "rl --policy " + d.file("policy") + " --judge " + d.file("policy") +
                             " --tokenizer data/tokenizer.model --data " + d.file("r.jsonl") +
                             " --schedule-only --quiet --steps 3 --prompts-per-step 2 --max-new-tokens 8";
    std::string out;
    ASSERT_EQ(rusca(base + " --recipe recipes/llama-3.2-3b-instruct.toml --t0 0.25 --out " + d.file("a"), &out), 0) << out;
    const nlohmann::json s = nlohmann::json::parse(read_file(d.file("a/settings.json")));
    EXPECT_EQ(s["t0"], "0.25");         // the flag
    EXPECT_EQ(s["temperature"], "0.7");  // the recipe
    EXPECT_EQ(s["top_p"], "0.8");
    EXPECT_EQ(s["top_k"], "20");
    EXPECT_EQ(s["steps"], "3");
    EXPECT_EQ(s["max_new_tokens"], "8");
    EXPECT_EQ(s["lr"], "1e-06");

    write_file_atomic(d.file("bad.toml"), "t0 = 0.1\ntopk = 20\n");
    EXPECT_EQ(rusca(base + " --recipe " + d.file("bad.toml") + " --out " + d.file("b"), &out), 1);
    EXPECT_NE(out.find("bad.toml:2: \"topk\" is no flag of rusca rl"), std::string::npos) << out;
    write_file_atomic(d.file("range.toml"), "t0 = 5\n");
    EXPECT_NE(rusca(base + " --recipe " + d.file("range.toml") + " --out " + d.file("c"), &out), 0);
    EXPECT_NE(out.find("range.toml:1:"), std::string::npos) << out;
    EXPECT_NE(out.find("--t0"), std::string::npos) << out;
}

}  // namespace
