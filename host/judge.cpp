// judge.cpp: prefix-shared yes/no judging over the CPU KV cache.
#include "judge.h"

#include <cmath>

#include "error.h"
#include "fileio.h"
#include "parallel.h"
#include "template_file.h"

namespace rusca {

JudgeTemplate JudgeTemplate::load(const std::string& path) {
    std::map<std::string, std::string> sec = parse_sections(read_file(path), path, {"prefix", "suffix"}, {"prefix", "suffix"});
    JudgeTemplate t{sec["prefix"], sec["suffix"]};
    check(t.suffix.find("{criterion}") != std::string::npos || t.suffix.find("{rubric_item}") != std::string::npos,
          path + ": [suffix] must contain {criterion} or {rubric_item}");
    check(t.prefix.find("{response}") != std::string::npos, path + ": [prefix] must contain {response}");
    return t;
}

std::string render_conversation(const std::vector<Message>& messages) {
    std::string out;
    for (const Message& m : messages)
        if (m.role != "system") out += (out.empty() ? "" : "\n\n") + m.role + ": " + m.content;
    return out;
}

std::string rubric_item_text(const Criterion& c) { return "[" + std::to_string(c.points) + "] " + c.text; }

std::string fill_judge_placeholders(const std::string& text, const JudgeItem& item, const Criterion* c) {
    std::vector<std::pair<std::string, std::string>> values = {
        {"{conversation}", render_conversation(item.example->prompt)}, {"{response}", item.response}};
    if (c) values.insert(values.end(), {{"{criterion}", c->text}, {"{rubric_item}", rubric_item_text(*c)}});
    return substitute(text, values);
}

Judge::Judge(const CpuInference& model, const Tokenizer& tok, JudgeTemplate tmpl, const std::string& yes,
             const std::string& no)
    : model_(model), tok_(tok), tmpl_(std::move(tmpl)) {
    std::vector<int> y = tok.encode(yes), n = tok.encode(no);
    check(!y.empty() && !n.empty(), "judge: the answer words must not be empty");
    yes_id_ = y[0], no_id_ = n[0];
    check(yes_id_ != no_id_, "judge: answer words \"" + yes + "\" and \"" + no + "\" start with the same token (" +
                                 std::to_string(yes_id_) + "); choose words whose first tokens differ");
    const int V = model.config.vocab_size, C = model.config.hidden_size;
    check(yes_id_ < V && no_id_ < V, "judge: answer token ids are outside the judge model's vocabulary");
    const float* lm = model.params_of(model.layout.lm_head);
    w_diff_.resize(C);
    for (int c = 0; c < C; c++) w_diff_[c] = lm[size_t(yes_id_) * C + c] - lm[size_t(no_id_) * C + c];
}

// BOS first, as in every sequence `rusca sft` trains on: a judge trained with our own pipeline
// (data/world_judge) saw its prompts that way.
std::vector<int> Judge::prefix_tokens(const JudgeItem& item) const {
    std::vector<int> ids;
    if (tok_.bos_id() >= 0) ids.push_back(tok_.bos_id());
    std::vector<int> text = tok_.encode(fill_judge_placeholders(tmpl_.prefix, item, nullptr) + "\n");
    ids.insert(ids.end(), text.begin(), text.end());
    return ids;
}

std::vector<int> Judge::suffix_tokens(const Criterion& c) const {
    return tok_.encode(substitute(tmpl_.suffix, {{"{criterion}", c.text}, {"{rubric_item}", rubric_item_text(c)}}));
}

// The last hidden state decides: logit(yes) - logit(no) = h . (w_yes - w_no).
Verdict Judge::verdict(const float* hidden) const {
    double margin = 0;
    for (size_t c = 0; c < w_diff_.size(); c++) margin += double(hidden[c]) * w_diff_[c];
    return {margin > 0, float(1.0 / (1.0 + std::exp(-margin))), float(margin)};
}

std::vector<std::vector<Verdict>> Judge::judge(const std::vector<JudgeItem>& items) const {
    // Tokenize and check lengths first: nothing may throw inside the parallel loop.
    const int max_len = model_.config.max_position_embeddings;
    std::vector<std::vector<int>> prefixes(items.size());
    std::vector<std::vector<std::vector<int>>> suffixes(items.size());
    for (size_t i = 0; i < items.size(); i++) {
        prefixes[i] = prefix_tokens(items[i]);
        for (const Criterion& c : items[i].example->rubrics) {
            suffixes[i].push_back(suffix_tokens(c));
            check(int(prefixes[i].size() + suffixes[i].back().size()) <= max_len,
                  "judge: prompt " + items[i].example->prompt_id + ": the judge prompt has " +
                      std::to_string(prefixes[i].size() + suffixes[i].back().size()) +
                      " tokens, more than the judge's max_position_embeddings " + std::to_string(max_len));
        }
    }
    std::vector<std::vector<Verdict>> out(items.size());
    parallel_for(items.size(), [&](size_t i) {
        std::vector<float> hidden(model_.config.hidden_size);
        KvCache shared;
        model_.extend(nullptr, shared, prefixes[i].data(), int(prefixes[i].size()), hidden.data(), nullptr);
        for (const std::vector<int>& s : suffixes[i]) {
            KvCache own;  // the criterion's rows; the response's cache is read, never copied
            model_.extend(&shared, own, s.data(), int(s.size()), hidden.data(), nullptr);
            out[i].push_back(verdict(hidden.data()));
        }
    });
    return out;
}

Verdict Judge::judge_full(const JudgeItem& item, int criterion) const {
    std::vector<int> tokens = prefix_tokens(item), s = suffix_tokens(item.example->rubrics.at(criterion));
    tokens.insert(tokens.end(), s.begin(), s.end());
    KvCache cache;
    std::vector<float> hidden(model_.config.hidden_size);
    model_.extend(nullptr, cache, tokens.data(), int(tokens.size()), hidden.data(), nullptr);
    return verdict(hidden.data());
}

}  // namespace rusca
