// test_scaffold.cpp: the scaffold schedule against the paper's formula at every step of a run,
// round-half-to-even, uniform criteria selection, and the template's rendered text and errors.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <set>

#include "host/error.h"
#include "host/scaffold.h"

using namespace rusca;

namespace {

const char* kSmallTemplate = R"(# a comment
[header]
Notes:

[include]
Do:
[avoid]
Don't:
[item]
* {criterion} [{points}]
[footer]
Keep these notes to yourself.
)";

std::string error_of_template(const std::string& text) {
    try {
        ScaffoldTemplate::parse(text, "t.txt");
    } catch (const Error& e) {
        return e.what();
    }
    return "(no error)";
}

RubricExample twelve_criteria() {
    RubricExample ex;
    ex.prompt_id = "x";
    ex.prompt = {{"user", "q"}};
    for (int k = 0; k < 12; k++) ex.rubrics.push_back({"criterion " + std::to_string(k), k % 3 == 2 ? -5 : 4, {}});
    return ex;
}

}  // namespace

TEST(Scaffold, SigmoidScheduleMatchesPaperAtEveryStep) {
    ScaffoldSchedule s;  // defaults: sigmoid, alpha 125, t0 0.2
    const int T = 350, G = 8;
    for (int step = 1; step <= T; step++) {
        const double ls = 1.0 / (1.0 + std::exp(125.0 * ((step - 1) / 349.0 - 0.2)));
        EXPECT_NEAR(s.lambda_step(step, T), ls, 1e-12) << "step " << step;
        for (int i = 1; i <= G; i++) EXPECT_NEAR(s.lambda(step, T, i, G), ls * (G - i) / 7.0, 1e-12);
    }
    EXPECT_GT(s.lambda(1, T, 1, G), 1 - 1e-9);  // rollout 1 sees the whole rubric at the start
    EXPECT_EQ(s.lambda(1, T, G, G), 0.0);       // rollout G never sees any
    EXPECT_GT(s.lambda_step(70, T), 0.5);
    EXPECT_LT(s.lambda_step(80, T), 0.05);  // ~23% into training...
    EXPECT_LT(s.lambda_step(90, T), 0.002);
    // ...after which a 12-criterion rubric shows nothing to anyone.
    for (int step = 80; step <= T; step++) EXPECT_EQ(criteria_shown(s.lambda(step, T, 1, G), 12), 0);
}

TEST(Scaffold, OtherStepDecays) {
    ScaffoldSchedule s;
    s.decay = StepDecay::Constant;
    for (int step = 1; step <= 5; step++) EXPECT_EQ(s.lambda_step(step, 5), 1.0);
    s.decay = StepDecay::Linear;
    const double linear[] = {1, 0.75, 0.5, 0.25, 0};
    for (int step = 1; step <= 5; step++) EXPECT_NEAR(s.lambda_step(step, 5), linear[step - 1], 1e-15);
    s.decay = StepDecay::Power;
    s.power = 2;
    const double squared[] = {1, 0.5625, 0.25, 0.0625, 0};
    for (int step = 1; step <= 5; step++) EXPECT_NEAR(s.lambda_step(step, 5), squared[step - 1], 1e-15);
    s.decay = StepDecay::Sigmoid;
    EXPECT_NEAR(s.lambda_step(1, 1), 1.0 / (1.0 + std::exp(-25.0)), 1e-15);  // T == 1: t = 0
    EXPECT_THROW(s.lambda_step(0, 5), Error);
    EXPECT_THROW(s.lambda_step(6, 5), Error);
    EXPECT_THROW(s.lambda(1, 5, 9, 8), Error);
    for (const char* name : {"sigmoid", "constant", "linear", "power"})
        EXPECT_STREQ(step_decay_name(parse_step_decay(name)), name);
    try {
        parse_step_decay("cosine");
        FAIL() << "expected an error";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("\"cosine\""), std::string::npos);
    }
}

TEST(Scaffold, BinaryGroupRuleAndSingleRollout) {
    ScaffoldSchedule s;
    s.decay = StepDecay::Constant;
    s.binary_n = 3;
    for (int i = 1; i <= 8; i++) EXPECT_EQ(s.lambda(7, 10, i, 8), i <= 3 ? 1.0 : 0.0) << "rollout " << i;
    s.binary_n = 0;
    for (int i = 1; i <= 8; i++) EXPECT_EQ(s.lambda(1, 10, i, 8), 0.0);
    s.decay = StepDecay::Linear, s.binary_n = 2;  // the group rule still fades with the step decay
    EXPECT_EQ(s.lambda(3, 5, 2, 8), 0.5);
    EXPECT_EQ(s.lambda(3, 5, 3, 8), 0.0);
    s.binary_n = -1;
    EXPECT_EQ(s.lambda(3, 5, 1, 1), 0.5);  // G == 1: the step's ratio
}

TEST(Scaffold, CriteriaShownRoundsHalfToEven) {
    EXPECT_EQ(criteria_shown(0.5, 1), 0);   // 0.5 -> 0
    EXPECT_EQ(criteria_shown(0.5, 3), 2);   // 1.5 -> 2
    EXPECT_EQ(criteria_shown(0.5, 5), 2);   // 2.5 -> 2
    EXPECT_EQ(criteria_shown(0.5, 7), 4);   // 3.5 -> 4
    EXPECT_EQ(criteria_shown(0.3, 10), 3);
    EXPECT_EQ(criteria_shown(0.56, 10), 6);
    EXPECT_EQ(criteria_shown(1.2, 10), 10);  // clamped
    EXPECT_EQ(criteria_shown(-0.1, 10), 0);
    EXPECT_EQ(criteria_shown(1.0, 0), 0);
}

TEST(Scaffold, SelectCriteriaIsUniformAndDistinct) {
    Rng rng(42);
    const int n = 10, k = 3, draws = 20000;
    std::vector<int> chosen(n, 0), first(n, 0);
    for (int d = 0; d < draws; d++) {
        std::vector<int> pick = select_criteria(n, k, rng);
        ASSERT_EQ(pick.size(), size_t(k));
        EXPECT_EQ(std::set<int>(pick.begin(), pick.end()).size(), size_t(k));
        for (int j : pick) {
            ASSERT_TRUE(j >= 0 && j < n);
            chosen[j]++;
        }
        first[pick[0]]++;
    }
    // 5 binomial standard deviations: each index is in the subset 3/10 of the time, first 1/10.
    for (int j = 0; j < n; j++) {
        EXPECT_NEAR(chosen[j], draws * 0.3, 5 * std::sqrt(draws * 0.3 * 0.7)) << "index " << j;
        EXPECT_NEAR(first[j], draws * 0.1, 5 * std::sqrt(draws * 0.1 * 0.9)) << "index " << j;
    }
    EXPECT_TRUE(select_criteria(5, 0, rng).empty());
    std::vector<int> all = select_criteria(5, 5, rng);
    EXPECT_EQ(std::set<int>(all.begin(), all.end()), (std::set<int>{0, 1, 2, 3, 4}));
    EXPECT_THROW(select_criteria(3, 4, rng), Error);
}

TEST(Scaffold, RenderExactTextAndOmittedHeadings) {
    ScaffoldTemplate t = ScaffoldTemplate::parse(kSmallTemplate, "small");
    Criterion a{"Cites a source", 5, {}}, b{"Is rude", -3, {}}, c{"Says {points}", 2, {}}, z{"Neutral", 0, {}};
    EXPECT_EQ(t.render({&b, &a, &c, &z}),
              "Notes:\n\nDo:\n* Cites a source [5]\n* Says {points} [2]\n\nDon't:\n* Is rude [3]\n\n"
              "Keep these notes to yourself.");
    EXPECT_EQ(t.render({&c, &a}),
              "Notes:\n\nDo:\n* Says {points} [2]\n* Cites a source [5]\n\nKeep these notes to yourself.");
    EXPECT_EQ(t.render({&b}), "Notes:\n\nDon't:\n* Is rude [3]\n\nKeep these notes to yourself.");
    EXPECT_EQ(t.render({}), "");
    EXPECT_EQ(t.render({&z}), "");
}

TEST(Scaffold, ShippedTemplateLoadsAndRenders) {
    ScaffoldTemplate t = ScaffoldTemplate::load("data/scaffold_template.txt");
    Criterion a{"Cites a source", 5, {}}, b{"Is rude", -3, {}};
    std::string text = t.render({&a, &b});
    EXPECT_NE(text.find(t.include + "\n"), std::string::npos);
    EXPECT_NE(text.find(t.avoid + "\n"), std::string::npos);
    EXPECT_NE(text.find("Cites a source"), std::string::npos);
    EXPECT_LT(text.find("Cites a source"), text.find("Is rude"));
    EXPECT_NE(t.footer.find("Do not mention"), std::string::npos);  // the model must not reveal the scaffold
    EXPECT_EQ(t.render({&a}).find(t.avoid), std::string::npos);
    EXPECT_THROW(ScaffoldTemplate::load("data/no_such_template.txt"), Error);
}

TEST(Scaffold, MalformedTemplatesNameFileAndLine) {
    const std::string body = "[include]\nDo:\n[avoid]\nDon't:\n";
    EXPECT_NE(error_of_template("hello\n" + body + "[item]\n- {criterion}\n").find("t.txt:1: text before"),
              std::string::npos);
    EXPECT_NE(error_of_template(body + "[items]\n").find("t.txt:5: unknown section [items]"), std::string::npos);
    EXPECT_NE(error_of_template(body + "[avoid]\n").find("t.txt:5: section [avoid] appears twice"), std::string::npos);
    EXPECT_NE(error_of_template(body).find("t.txt: template has no [item]"), std::string::npos);
    EXPECT_NE(error_of_template(body + "[item]\n- {text}\n").find("t.txt: [item] must be one line"), std::string::npos);
    EXPECT_NE(error_of_template(body + "[item]\n- {criterion}\nmore\n").find("[item] must be one line"),
              std::string::npos);
    EXPECT_EQ(error_of_template("\r\n" + body + "[item]\r\n- {criterion}\r\n"), "(no error)");
}

TEST(Scaffold, GroupScaffoldsFollowTheSchedule) {
    ScaffoldTemplate t = ScaffoldTemplate::parse(kSmallTemplate, "small");
    RubricExample ex = twelve_criteria();
    Rng rng(3);
    std::vector<RolloutScaffold> g = build_group_scaffolds(ex, ScaffoldSchedule{}, 1, 350, 8, t, rng);
    ASSERT_EQ(g.size(), 8u);
    const size_t sizes[] = {12, 10, 9, 7, 5, 3, 2, 0};  // round(12 * (8 - i) / 7), half to even
    for (int i = 0; i < 8; i++) {
        EXPECT_EQ(g[i].shown.size(), sizes[i]) << "rollout " << i + 1;
        for (int k = 0; k < 12; k++) {
            bool shown = std::find(g[i].shown.begin(), g[i].shown.end(), k) != g[i].shown.end();
            EXPECT_EQ(g[i].text.find("* criterion " + std::to_string(k) + " ") != std::string::npos, shown);
        }
    }
    EXPECT_EQ(g[7].text, "");
    Rng again(3);
    EXPECT_EQ(build_group_scaffolds(ex, ScaffoldSchedule{}, 1, 350, 8, t, again)[3].shown, g[3].shown);
    for (const RolloutScaffold& r : build_group_scaffolds(ex, ScaffoldSchedule{}, 100, 350, 8, t, rng))
        EXPECT_TRUE(r.shown.empty() && r.text.empty());
}
