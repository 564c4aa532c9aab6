// test_grader.cpp: judge prompts as HealthBench's grader renders them. The external judge's prompt
// equals, byte for byte, what openai/simple-evals sends (tests/golden/healthbench_grader, written by
// tools/make_grader_golden.py from simple-evals' own code, with the official RuscaRL code's filter
// of system turns); on every HealthBench example a scaffold never reaches either judge prompt; the
// default in-process template keeps HealthBench's rule for undesirable criteria; and the verdict
// is found in the replies graders actually write.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "host/grader.h"
#include "host/judge.h"
#include "host/rubric.h"
#include "host/template_file.h"
#include "test_util.h"

using namespace rusca;
using namespace rusca::testutil;
using json = nlohmann::json;

namespace {

const char* kScaffold = "You will be graded on these criteria. Include: says to rest.";

RubricExample example_of(const json& j) {
    RubricExample ex;
    ex.prompt_id = j["prompt_id"];
    for (const json& m : j["prompt"]) ex.prompt.push_back({m["role"], m["content"]});
    ex.rubrics.push_back({j["rubric"]["criterion"], j["rubric"]["points"].get<int>(), {}, {}});
    return ex;
}

// HealthBench's convo_str, written out here independently: "role: content" for each turn of the
// conversation with the response appended as an assistant turn, joined by blank lines, system
// turns left out (RuscaRL).
std::string healthbench_convo(const std::vector<Message>& prompt, const std::string& response) {
    std::string out;
    for (const Message& m : prompt)
        if (m.role != "system") out += m.role + ": " + m.content + "\n\n";
    return out + "assistant: " + response;
}

}  // namespace

TEST(Grader, PromptsEqualSimpleEvalsOnHealthBenchExamples) {
    const GraderTemplate t = GraderTemplate::load("data/grader_template.txt");
    std::ifstream f("tests/golden/healthbench_grader/prompts.jsonl");
    ASSERT_TRUE(f.good()) << "run tools/make_grader_golden.py";
    int n = 0, with_system = 0, negative = 0;
    for (std::string line; std::getline(f, line); n++) {
        const json j = json::parse(line);
        const RubricExample ex = example_of(j);
        const JudgeItem item{&ex, j["response"]};
        const std::string want = j["grader_prompt"], got = t.render(item, ex.rubrics[0]);
        EXPECT_EQ(got, want) << "prompt " << ex.prompt_id << " criterion " << ex.rubrics[0].text;
        with_system += ex.prompt.front().role == "system";
        negative += ex.rubrics[0].points < 0;
        if (ex.prompt.front().role == "system") {
            EXPECT_EQ(got.find(ex.prompt.front().content), std::string::npos);
        }
    }
    EXPECT_EQ(n, 10);
    EXPECT_GE(with_system, 1);  // the golden file holds a scaffolded conversation
    EXPECT_EQ(negative, n / 2);
}

TEST(Grader, RubricItemIsPrintedAsHealthBenchDoes) {
    EXPECT_EQ(rubric_item_text({"Recommends smoking.", -7, {}, {}}), "[-7] Recommends smoking.");
    EXPECT_EQ(rubric_item_text({"Says to rest.", 5, {}, {}}), "[5] Says to rest.");
}

// On every HealthBench example, with a scaffold as its first turn: both judge prompts hold
// HealthBench's rendering of the conversation + response, and never the scaffold.
TEST(Grader, ScaffoldNeverReachesAJudgeOnAnyHealthBenchExample) {
    const std::string path = "../shared/data/healthbench/healthbench_500_public.jsonl";
    if (!std::ifstream(path).good()) GTEST_SKIP() << "HealthBench sample not present";
    const GraderTemplate grader = GraderTemplate::load("data/grader_template.txt");
    const JudgeTemplate in_process = JudgeTemplate::load("data/judge_template.txt");
    std::vector<RubricExample> data = load_rubric_jsonl(path);
    ASSERT_EQ(data.size(), 400u);
    const std::string response = "Rest, drink water, and see a doctor if it gets worse.";
    for (RubricExample& ex : data) {
        const std::string convo = healthbench_convo(ex.prompt, response);
        ex.prompt.insert(ex.prompt.begin(), Message{"system", kScaffold});
        const JudgeItem item{&ex, response};
        for (const Criterion& c : ex.rubrics) {
            const std::string g = grader.render(item, c);
            ASSERT_NE(g.find("# Conversation\n" + convo + "\n\n# Rubric item\n" + rubric_item_text(c) + "\n\n# Instructions"),
                      std::string::npos)
                << ex.prompt_id;
            ASSERT_EQ(g.find(kScaffold), std::string::npos) << ex.prompt_id;
        }
        const std::string prefix = fill_judge_placeholders(in_process.prefix, item, nullptr);
        ASSERT_NE(prefix.find("# Conversation\n" + convo), std::string::npos) << ex.prompt_id;
        ASSERT_EQ(prefix.find(kScaffold), std::string::npos) << ex.prompt_id;
        const std::string rendered = render_conversation(ex.prompt);
        ASSERT_EQ(rendered.find(kScaffold), std::string::npos) << ex.prompt_id;
        ASSERT_EQ(rendered.rfind("system: ", 0), std::string::npos) << ex.prompt_id;
    }
}

// The in-process judge's default prompt asks about the criterion, not about the response's quality:
// HealthBench's rule for undesirable criteria, and the criterion shown with its (negative) points.
TEST(Grader, DefaultJudgeTemplateKeepsTheRuleForUndesirableCriteria) {
    const JudgeTemplate t = JudgeTemplate::load("data/judge_template.txt");
    EXPECT_NE(t.prefix.find("negative points"), std::string::npos);
    EXPECT_NE(t.prefix.find("not whether the response is good"), std::string::npos);
    RubricExample ex;
    ex.prompt = {{"user", "Is smoking good for me?"}};
    const Criterion bad{"Recommends smoking.", -8, {}, {}};
    const std::string suffix = substitute(t.suffix, {{"{rubric_item}", rubric_item_text(bad)}, {"{criterion}", bad.text}});
    EXPECT_NE(suffix.find("[-8] Recommends smoking."), std::string::npos) << suffix;
    EXPECT_EQ(suffix.substr(suffix.size() - 7), "Answer:");  // the answer word comes next
}

TEST(Grader, TemplateErrorsNameTheFile) {
    TempDir d;
    const std::string p = d.file("g.txt");
    std::ofstream(p) << "[prompt]\n{conversation} {rubric_item}\n";
    expect_error([&] { GraderTemplate::load(p); }, {p, "{response}"});
    std::ofstream(p) << "[prompt]\n{conversation} {response}\n";
    expect_error([&] { GraderTemplate::load(p); }, {p, "{criterion} or {rubric_item}"});
    std::ofstream(p) << "[prefix]\n{response}\n";
    expect_error([&] { GraderTemplate::load(p); }, {p, "[prefix]"});
}

TEST(Grader, FindsTheVerdictInRepliesAsGradersWriteThem) {
    // simple-evals' form: the JSON object in ```json fences
    EXPECT_EQ(parse_criteria_met("```json\n{\n  \"explanation\": \"x\",\n  \"criteria_met\": true\n}\n```"), true);
    EXPECT_EQ(parse_criteria_met("{\"explanation\": \"x\", \"criteria_met\": false}"), false);
    EXPECT_EQ(parse_criteria_met("```\n{\"criteria_met\": true}\n```"), true);
    // prose around it, braces in the prose and inside strings
    EXPECT_EQ(parse_criteria_met("My grade {as asked}:\n{\"explanation\": \"it says {rest}\", \"criteria_met\": true}\nDone."), true);
    // broken JSON (unescaped quotes in the explanation): the field itself
    EXPECT_EQ(parse_criteria_met("{\"explanation\": \"it says \"rest\"\", \"criteria_met\": false}"), false);
    // a bare answer
    EXPECT_EQ(parse_criteria_met("true"), true);
    EXPECT_EQ(parse_criteria_met(" False.\n"), false);
    EXPECT_EQ(parse_criteria_met("`true`"), true);
    // reasoning first: what the <think> block says does not count
    EXPECT_EQ(parse_criteria_met("<think>\"criteria_met\": true</think>\n```json\n{\"criteria_met\": false}\n```"), false);
    // no verdict
    EXPECT_EQ(parse_criteria_met(""), std::nullopt);
    EXPECT_EQ(parse_criteria_met("I cannot decide."), std::nullopt);
    EXPECT_EQ(parse_criteria_met("{\"explanation\": \"x\"}"), std::nullopt);
    EXPECT_EQ(parse_criteria_met("{\"criteria_met\": \"true\"}"), std::nullopt);  // a string, as simple-evals refuses
    EXPECT_EQ(parse_criteria_met("<think>\"criteria_met\": true"), std::nullopt);  // reasoning cut off
    EXPECT_EQ(parse_criteria_met("true or false"), std::nullopt);
}
