// test_rubric.cpp: HealthBench JSONL loading (the real file, and an error naming file, line and
// prompt for every kind of bad line), the rubric reward with negative points, and the score.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>

#include "host/error.h"
#include "host/fileio.h"
#include "host/rubric.h"

using namespace rusca;

namespace {

const char* kHealthBench = "../shared/data/healthbench/healthbench_500_public.jsonl";
const std::string kGoodLine =
    R"({"prompt_id": "hb-0", "prompt": [{"role": "user", "content": "hi"}], "rubrics": [{"criterion": "greets",)"
    R"( "points": 2, "tags": ["axis:x"]}]})";

// Writes `text` to a fresh temp file and removes it when the test ends.
struct TempJsonl {
    std::string path = "/tmp/rusca_rubric_" + std::to_string(getpid()) + ".jsonl";
    explicit TempJsonl(const std::string& text) { write_file_atomic(path, text); }
    ~TempJsonl() { std::remove(path.c_str()); }
};

std::string load_error(const std::string& text, std::string* path_out = nullptr) {
    TempJsonl f(text);
    if (path_out) *path_out = f.path;
    try {
        load_rubric_jsonl(f.path);
    } catch (const Error& e) {
        return e.what();
    }
    return "(no error)";
}

RubricExample example_with_points(std::vector<int> points) {
    RubricExample ex;
    ex.prompt_id = "t";
    for (int p : points) ex.rubrics.push_back({"c" + std::to_string(p), p, {}});
    return ex;
}

}  // namespace

TEST(Rubric, RewardIsEarnedOverPositivePointsAndCanBeNegative) {
    RubricExample ex = example_with_points({5, 3, -4, -2});  // 8 points available
    EXPECT_DOUBLE_EQ(rubric_reward(ex, {true, false, false, false}), 5.0 / 8);
    EXPECT_DOUBLE_EQ(rubric_reward(ex, {true, true, false, false}), 1.0);
    EXPECT_DOUBLE_EQ(rubric_reward(ex, {false, false, false, false}), 0.0);
    EXPECT_DOUBLE_EQ(rubric_reward(ex, {false, false, true, true}), -6.0 / 8);
    EXPECT_DOUBLE_EQ(rubric_reward(ex, {true, true, true, true}), 2.0 / 8);
    EXPECT_THROW(rubric_reward(ex, {true, false}), Error);
}

TEST(Rubric, ScoreClipsOnlyTheMean) {
    EXPECT_DOUBLE_EQ(clipped_mean_score({1.0, 1.2}), 1.0);
    EXPECT_DOUBLE_EQ(clipped_mean_score({-0.5, 0.1}), 0.0);
    EXPECT_DOUBLE_EQ(clipped_mean_score({-0.2, 0.8}), 0.3);  // a negative example still pulls it down
    EXPECT_THROW(clipped_mean_score({}), Error);
}

TEST(Rubric, BootstrapStdMatchesBinomialAndIsSeeded) {
    EXPECT_NEAR(bootstrap_std({0.4, 0.4, 0.4}, 100, 1), 0.0, 1e-12);
    std::vector<double> coin(400);
    for (size_t i = 0; i < coin.size(); i++) coin[i] = double(i % 2);
    double s = bootstrap_std(coin, 2000, 7);
    EXPECT_NEAR(s, std::sqrt(0.25 / 400), 0.1 * std::sqrt(0.25 / 400));
    EXPECT_EQ(s, bootstrap_std(coin, 2000, 7));
}

TEST(Rubric, HealthBenchFileLoads) {
    if (!file_exists(kHealthBench)) GTEST_SKIP() << kHealthBench << " not present";
    std::vector<RubricExample> data = load_rubric_jsonl(kHealthBench);
    ASSERT_EQ(data.size(), 400u);
    size_t criteria = 0, negative = 0;
    for (const RubricExample& ex : data) {
        EXPECT_EQ(ex.prompt.back().role, "user");
        for (const Criterion& c : ex.rubrics) criteria++, negative += c.points < 0;
    }
    EXPECT_NEAR(double(criteria) / data.size(), 12.0, 1.0);
    EXPECT_NEAR(double(negative) / criteria, 0.31, 0.04);
    EXPECT_EQ(data[0].prompt_id, "hb500-000");
    EXPECT_EQ(data[0].rubrics[0].points, 8);
    EXPECT_EQ(data[0].rubrics[0].text.rfind("Correctly notes", 0), 0u);
    EXPECT_EQ(data[0].rubrics[0].tags.size(), 2u);
}

TEST(Rubric, BlankLinesSkippedAndMissingIdUsesLineNumber) {
    std::string no_id = R"({"prompt": [{"role": "system", "content": "s"}, {"role": "user", "content": "q"}],)"
                        R"( "rubrics": [{"criterion": "a", "points": 3}, {"criterion": "b", "points": -1.0}]})";
    TempJsonl f(kGoodLine + "\n\n   \n" + no_id + "\n");
    std::vector<RubricExample> data = load_rubric_jsonl(f.path);
    ASSERT_EQ(data.size(), 2u);
    EXPECT_EQ(data[0].prompt_id, "hb-0");
    EXPECT_EQ(data[0].rubrics[0].tags, std::vector<std::string>{"axis:x"});
    EXPECT_EQ(data[1].prompt_id, "line-4");
    EXPECT_EQ(data[1].prompt.size(), 2u);
    EXPECT_EQ(data[1].rubrics[1].points, -1);  // an integral float is accepted
}

TEST(Rubric, EveryMalformedLineNamesFileLineAndField) {
    const std::string user = R"([{"role": "user", "content": "q"}])";
    const std::string rub = R"([{"criterion": "a", "points": 1}])";
    auto line = [](const std::string& prompt, const std::string& rubrics) {
        return R"({"prompt_id": "hb-1", "prompt": )" + prompt + R"(, "rubrics": )" + rubrics + "}";
    };
    struct Case {
        std::string line, want;
    } cases[] = {
        {"{\"prompt\": [", "invalid JSON"},
        {"[1, 2]", "expected a JSON object"},
        {R"({"prompt_id": 7, "prompt": [], "rubrics": []})", "\"prompt_id\" must be a string"},
        {R"({"prompt_id": "hb-1", "rubrics": )" + rub + "}", "prompt hb-1: field \"prompt\" must be a list"},
        {line("5", rub), "prompt hb-1: field \"prompt\" must be a list"},
        {line("[]", rub), "prompt hb-1: field \"prompt\" is empty"},
        {line("[\"hi\"]", rub), "prompt[0] must be an object"},
        {line(R"([{"role": "bot", "content": "q"}])", rub), "prompt[0].role \"bot\" must be system, user or assistant"},
        {line(R"([{"role": "user"}])", rub), "prompt[0].content must be a string"},
        {line(R"([{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}])", rub),
         "last prompt turn must be from the user"},
        {R"({"prompt_id": "hb-1", "prompt": )" + user + "}", "prompt hb-1: field \"rubrics\" must be a non-empty list"},
        {line(user, "[]"), "field \"rubrics\" must be a non-empty list"},
        {line(user, R"([{"criterion": 5, "points": 1}])"), "rubrics[0].criterion must be a string"},
        {line(user, R"([{"criterion": "a", "points": 1}, {"criterion": "b", "points": "3"}])"),
         "rubrics[1].points must be an integer"},
        {line(user, R"([{"criterion": "a", "points": 2.5}])"), "rubrics[0].points must be an integer"},
        {line(user, R"([{"criterion": "a"}])"), "rubrics[0].points must be an integer"},
        {line(user, R"([{"criterion": "a", "points": 1, "tags": "x"}])"), "rubrics[0].tags must be a list"},
        {line(user, R"([{"criterion": "a", "points": -3}, {"criterion": "b", "points": 0}])"),
         "prompt hb-1 has no criterion with positive points"},
    };
    for (const Case& c : cases) {
        std::string path;
        std::string err = load_error(kGoodLine + "\n" + c.line + "\n", &path);
        EXPECT_EQ(err.rfind(path + ":2: ", 0), 0u) << err;
        EXPECT_NE(err.find(c.want), std::string::npos) << "line: " << c.line << "\nerror: " << err;
    }
}

TEST(Rubric, MissingOrEmptyFileIsAnError) {
    EXPECT_THROW(load_rubric_jsonl("/nonexistent/rubrics.jsonl"), Error);
    EXPECT_NE(load_error("\n\n").find("no examples"), std::string::npos);
}
