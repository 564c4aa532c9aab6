// checker.h: the programmatic rubric checker, the ground truth of our shipped world (data/world/).
// A criterion may carry {"check": {"all_words": ["honey", ...]}} next to its text (an extra field
// other HealthBench readers ignore): it is met iff every listed word occurs in the response as a
// whole word, case-insensitively (words are runs of letters, digits and apostrophes). The judge
// model is trained to agree with this rule; eval reports both, so the judge's errors show.
#pragma once
#include <string>
#include <vector>

#include "rubric.h"

namespace rusca {

// The response's words, lower-cased, in order: runs of [a-z0-9'] after lower-casing ASCII.
std::vector<std::string> response_words(const std::string& response);

// Whether `c` is met by `response`; the criterion must have a check (has_check).
bool checker_met(const Criterion& c, const std::string& response);
bool has_check(const Criterion& c);
// True when every criterion of every example carries a check, so scores by the checker exist.
bool all_checked(const std::vector<RubricExample>& data);
// met per criterion of ex, by the checker.
std::vector<bool> checker_verdicts(const RubricExample& ex, const std::string& response);

}  // namespace rusca
