// test_checker.cpp: the programmatic rubric checker (host/checker.h) on hand-written cases, the
// "check" field's parsing and errors, and the shipped world's data (data/world/): it loads with
// the rubric loader, every criterion is checkable, the splits share no prompt, and the checker
// gives the rewards the rubric's points say it should.
#include <gtest/gtest.h>

#include <set>

#include "host/checker.h"
#include "host/fileio.h"
#include "host/rubric.h"
#include "test_util.h"

using namespace rusca;
using namespace rusca::testutil;

namespace {

Criterion checked(std::vector<std::string> words, int points = 3) {
    Criterion c;
    c.text = "Says to do something", c.points = points, c.check_words = std::move(words);
    return c;
}

std::string line_with_check(const std::string& check) {
    return R"({"prompt_id": "w", "prompt": "hi", "rubrics": [{"criterion": "c", "points": 2, "check": )" + check + "}]}";
}

}  // namespace

TEST(Checker, WholeWordsCaseInsensitive) {
    EXPECT_TRUE(checker_met(checked({"honey"}), "Mira should take honey."));
    EXPECT_TRUE(checker_met(checked({"honey"}), "HONEY, then rest"));
    EXPECT_FALSE(checker_met(checked({"honey"}), "Mira should take honeydew."));  // part of a word is not the word
    EXPECT_FALSE(checker_met(checked({"tea"}), "Mira should sip steam."));        // nor is a word inside another
    EXPECT_FALSE(checker_met(checked({"honey"}), ""));
    EXPECT_TRUE(checker_met(checked({"don't"}), "You don't need it"));           // apostrophes belong to words
    EXPECT_FALSE(checker_met(checked({"don"}), "You don't need it"));
    EXPECT_TRUE(checker_met(checked({"2"}), "take 2 pills"));
}

TEST(Checker, AllWordsMustOccurInAnyOrder) {
    Criterion c = checked({"warm", "tea"});
    EXPECT_TRUE(checker_met(c, "tea, warm"));
    EXPECT_TRUE(checker_met(c, "Sip warm tea."));
    EXPECT_FALSE(checker_met(c, "Sip warm milk."));
}

TEST(Checker, ResponseWordsSplitOnEverythingElse) {
    EXPECT_EQ(response_words("Rest, drink-water; SEE a doctor!\n"),
              (std::vector<std::string>{"rest", "drink", "water", "see", "a", "doctor"}));
    EXPECT_EQ(response_words("caf\xc3\xa9 ok"), (std::vector<std::string>{"caf", "ok"}));  // non-ASCII splits
}

TEST(Checker, CriterionWithoutCheckIsAnError) {
    Criterion c;
    c.text = "greets";
    EXPECT_FALSE(has_check(c));
    expect_error([&] { checker_met(c, "hello"); }, {"greets", "no \"check\""});
}

TEST(Checker, VerdictsGiveTheRubricReward) {
    RubricExample ex;
    ex.rubrics = {checked({"tea"}, 4), checked({"honey"}, 2), checked({"pipe"}, -3)};
    ex.prompt_id = "x";
    EXPECT_EQ(checker_verdicts(ex, "Sip tea and smoke a pipe."), (std::vector<bool>{true, false, true}));
    EXPECT_DOUBLE_EQ(rubric_reward(ex, checker_verdicts(ex, "Sip tea and smoke a pipe.")), (4.0 - 3.0) / 6.0);
    EXPECT_TRUE(all_checked({ex}));
    ex.rubrics.push_back(Criterion{"no check", 1, {}, {}});
    EXPECT_FALSE(all_checked({ex}));
}

TEST(Checker, CheckFieldIsParsedAndBadOnesAreNamed) {
    RubricExample ex = parse_rubric_line(line_with_check(R"({"all_words": ["honey", "tea"]})"), "f.jsonl:3: ", 3, true);
    EXPECT_EQ(ex.rubrics[0].check_words, (std::vector<std::string>{"honey", "tea"}));
    auto err = [](const std::string& check) {
        return error_of([&] { parse_rubric_line(line_with_check(check), "f.jsonl:7: ", 7, true); });
    };
    for (const char* bad : {R"("honey")", R"({"any_words": ["x"]})", R"({"all_words": []})", R"({"all_words": ["Honey"]})",
                            R"({"all_words": ["two words"]})", R"({"all_words": [3]})"})
        EXPECT_NE(err(bad).find("f.jsonl:7: prompt w: rubrics[0].check"), std::string::npos) << bad << ": " << err(bad);
}

// The shipped world (tools/make_world.py): loads, is fully checkable, and its splits are disjoint.
TEST(World, SplitsLoadAreCheckableAndShareNoPrompt) {
    std::vector<RubricExample> train = load_rubric_jsonl("data/world/train.jsonl");
    std::vector<RubricExample> held = load_rubric_jsonl("data/world/heldout.jsonl");
    EXPECT_GE(train.size(), 500u);
    EXPECT_GE(held.size(), 48u);
    EXPECT_TRUE(all_checked(train));
    EXPECT_TRUE(all_checked(held));
    std::set<std::string> ids, texts;
    for (const RubricExample& ex : train) ids.insert(ex.prompt_id), texts.insert(ex.prompt.back().content);
    EXPECT_EQ(ids.size(), train.size());
    for (const RubricExample& ex : held) {
        EXPECT_FALSE(ids.count(ex.prompt_id)) << ex.prompt_id;
        EXPECT_FALSE(texts.count(ex.prompt.back().content)) << ex.prompt.back().content;
    }
}

// Every prompt rewards content and penalizes something; a reply holding each criterion's own text
// meets exactly that criterion (the key words are unique), so rewards follow the points.
TEST(World, CriteriaAreMetByTheirOwnWordsOnly) {
    for (const char* path : {"data/world/train.jsonl", "data/world/heldout.jsonl"})
        for (const RubricExample& ex : load_rubric_jsonl(path)) {
            int pos = 0, neg = 0;
            std::string all_good;
            for (size_t c = 0; c < ex.rubrics.size(); c++) {
                const Criterion& k = ex.rubrics[c];
                (k.points > 0 ? pos : neg)++;
                if (k.points > 0) all_good += k.text + ". ";
                std::vector<bool> met = checker_verdicts(ex, k.text);
                for (size_t o = 0; o < met.size(); o++) ASSERT_EQ(met[o], o == c) << ex.prompt_id << ": " << k.text;
            }
            EXPECT_GT(pos, 0) << ex.prompt_id;
            EXPECT_GT(neg, 0) << ex.prompt_id;
            EXPECT_DOUBLE_EQ(rubric_reward(ex, checker_verdicts(ex, all_good)), 1.0) << ex.prompt_id;
            EXPECT_DOUBLE_EQ(rubric_reward(ex, checker_verdicts(ex, "Take it easy.")), 0.0) << ex.prompt_id;
        }
}
