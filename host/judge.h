// judge.h: rubric judging with a language model, in process, without generation.
// For one (conversation, response, criterion) the judge reads a prompt built from
// data/judge_template.txt that ends where its next token is the answer, and we compare the logits
// of the "yes" and "no" tokens: met = logit(yes) > logit(no), p(yes) = sigmoid(difference).
// Only the last position's hidden state is needed, and only one dot product with
// (w_yes - w_no), never the full LM head. The conversation + response part is prefilled once per
// response; each criterion is a short suffix over that shared KV cache.
#pragma once
#include <string>
#include <vector>

#include "cpu/infer.h"
#include "rubric.h"
#include "tokenizer/tokenizer.h"

namespace rusca {

// Placeholders: {conversation} (the prompt's turns, render_conversation), {response}, and per
// criterion {criterion} (its text) or {rubric_item} (rubric_item_text: "[points] text").
// HealthBench's grader shows the response as the conversation's last turn:
// "{conversation}\n\nassistant: {response}" (data/judge_template.txt).
struct JudgeTemplate {
    std::string prefix;  // uses {conversation} and {response}
    std::string suffix;  // uses {criterion} or {rubric_item}; ends where the answer token comes
    static JudgeTemplate load(const std::string& path);  // errors name the file
};

struct Verdict {
    bool met = false;
    float p_yes = 0;   // sigmoid(logit(yes) - logit(no)): yes vs no, the rest of the vocabulary aside
    float margin = 0;  // logit(yes) - logit(no)
    // No verdict at all (an external judge that still failed after its retries): the criterion is
    // masked out of the reward (host/judge_backend.h), never scored as not met.
    bool failed = false;
};

struct JudgeItem {
    const RubricExample* example;  // conversation and criteria
    std::string response;          // the reply being graded (never the scaffold)
};

class Judge {
public:
    // yes / no: answer words; their first token ids are compared (they must differ).
    Judge(const CpuInference& model, const Tokenizer& tok, JudgeTemplate tmpl, const std::string& yes = " yes",
          const std::string& no = " no");
    // Verdicts for every criterion of every item, [item][criterion], prefix-shared, items in parallel.
    std::vector<std::vector<Verdict>> judge(const std::vector<JudgeItem>& items) const;
    // The reference path: one full prefill of the whole prompt for one criterion.
    Verdict judge_full(const JudgeItem& item, int criterion) const;
    // Token ids of the judge prompt's two parts: BOS + conversation + response (shared), one criterion.
    std::vector<int> prefix_tokens(const JudgeItem& item) const;
    std::vector<int> suffix_tokens(const Criterion& c) const;
    int yes_id() const { return yes_id_; }
    const CpuInference& scorer() const { return model_; }
    int no_id() const { return no_id_; }

private:
    Verdict verdict(const float* hidden) const;
    const CpuInference& model_;
    const Tokenizer& tok_;
    JudgeTemplate tmpl_;
    int yes_id_, no_id_;
    std::vector<float> w_diff_;  // lm_head[yes] - lm_head[no]
};

// The conversation as HealthBench's grader renders it (simple-evals healthbench_eval.py):
// "role: content" turns joined by blank lines. System turns are dropped, as the official RuscaRL
// code drops them, so no scaffold (a system turn) can ever reach a judge.
std::string render_conversation(const std::vector<Message>& messages);

// A criterion as HealthBench's RubricItem prints it for the grader: "[points] text".
std::string rubric_item_text(const Criterion& c);

// The text of a template with every judge placeholder filled; `c` may be null (a prefix).
std::string fill_judge_placeholders(const std::string& text, const JudgeItem& item, const Criterion* c);

}  // namespace rusca
