// grader.h: HealthBench's grader protocol, for judges that write text (an external judge behind
// --judge-url, host/judge_http.h): the prompt for one (response, criterion), from
// data/grader_template.txt (simple-evals' GRADER_TEMPLATE), and the verdict read back from the
// reply's JSON {"explanation": ..., "criteria_met": true|false}.
#pragma once
#include <optional>
#include <string>

#include "judge.h"

namespace rusca {

struct GraderTemplate {
    std::string prompt;  // {conversation}, {response}, {criterion} / {rubric_item} (judge.h)
    static GraderTemplate load(const std::string& path);  // errors name the file
    // The grader prompt for one criterion of `item`; the scaffold never appears (no system turns).
    std::string render(const JudgeItem& item, const Criterion& c) const;
};

// "criteria_met" of a grader's reply, or nullopt when the reply holds no verdict. Tried in order,
// after dropping a <think>...</think> block (reasoning models; reasoning that never ends holds no verdict):
//   1. the whole reply as JSON, ```json fences removed (simple-evals' parse_json_to_dict);
//   2. each balanced {...} block in turn (a JSON object with prose around it);
//   3. the text "criteria_met": true|false anywhere (JSON broken elsewhere, e.g. bad quoting);
//   4. a bare reply of true or false.
// Only a JSON boolean counts, as in simple-evals ("true" as a string is no verdict).
std::optional<bool> parse_criteria_met(const std::string& reply);

// The message content of an OpenAI chat-completions response body (choices[0].message.content), or
// nullopt with `why` set when the body is not one.
std::optional<std::string> chat_completion_content(const std::string& body, std::string& why);

}  // namespace rusca
