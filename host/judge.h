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

struct JudgeTemplate {
    std::string prefix;  // uses {conversation} and {response}
    std::string suffix;  // uses {criterion}; ends where the answer token comes
    static JudgeTemplate load(const std::string& path);  // errors name the file
};

struct Verdict {
    bool met = false;
    float p_yes = 0;   // sigmoid(logit(yes) - logit(no)): yes vs no, the rest of the vocabulary aside
    float margin = 0;  // logit(yes) - logit(no)
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

// The conversation as the judge sees it: "role: content" paragraphs.
std::string render_conversation(const std::vector<Message>& messages);

}  // namespace rusca
