// checker.cpp: whole-word matching for criteria with a "check" (see checker.h).
#include "checker.h"

#include <algorithm>
#include <cctype>

#include "error.h"

namespace rusca {

namespace {
bool word_char(unsigned char c) { return std::isalnum(c) || c == '\''; }
}  // namespace

std::vector<std::string> response_words(const std::string& response) {
    std::vector<std::string> words;
    std::string cur;
    for (unsigned char c : response) {
        if (c < 128 && word_char(c)) {
            cur += char(std::tolower(c));
        } else if (!cur.empty()) {
            words.push_back(cur);
            cur.clear();
        }
    }
    if (!cur.empty()) words.push_back(cur);
    return words;
}

bool has_check(const Criterion& c) { return !c.check_words.empty(); }

bool checker_met(const Criterion& c, const std::string& response) {
    check(has_check(c), "checker: criterion \"" + c.text + "\" has no \"check\" field");
    const std::vector<std::string> words = response_words(response);
    for (const std::string& w : c.check_words)
        if (std::find(words.begin(), words.end(), w) == words.end()) return false;
    return true;
}

bool all_checked(const std::vector<RubricExample>& data) {
    for (const RubricExample& ex : data)
        for (const Criterion& c : ex.rubrics)
            if (!has_check(c)) return false;
    return !data.empty();
}

std::vector<bool> checker_verdicts(const RubricExample& ex, const std::string& response) {
    std::vector<bool> met;
    for (const Criterion& c : ex.rubrics) met.push_back(checker_met(c, response));
    return met;
}

}  // namespace rusca
