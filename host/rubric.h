// rubric.h: HealthBench-style rubric data and the rubric reward.
// One example is a conversation ending in a user turn plus a checklist of criteria with integer
// points (negative points mark things to avoid). A judge says met / not met per criterion; the
// reward is the points earned over the points available, the formula HealthBench and RuscaRL use.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace rusca {

struct Message {
    std::string role;  // "system", "user" or "assistant"
    std::string content;
};

struct Criterion {
    std::string text;
    int points = 0;  // HealthBench uses -10..10
    std::vector<std::string> tags;
    // Optional "check": {"all_words": [...]}: the programmatic checker's rule (host/checker.h),
    // lower-cased words that must all occur in the response. Empty: no checker for this criterion.
    std::vector<std::string> check_words;
};

struct RubricExample {
    std::string prompt_id;
    std::vector<Message> prompt;  // ends with a user turn
    std::vector<Criterion> rubrics;
    std::vector<std::string> example_tags;
};

// Reads JSONL, one {"prompt_id", "prompt": [{"role", "content"}], "rubrics": [{"criterion",
// "points", "tags"}], "example_tags"} per line; blank lines are skipped. Any malformed line is an
// Error starting "path:line:" and naming the field. A missing prompt_id becomes "line-<n>".
// A "prompt" may also be a plain string (one user turn). With need_rubrics = false, lines without
// "rubrics" are accepted (prompts to generate from).
std::vector<RubricExample> load_rubric_jsonl(const std::string& path, bool need_rubrics = true);
// One line of such a file; `where` ("path:line: ") prefixes every error.
RubricExample parse_rubric_line(const std::string& line, const std::string& where, long lineno, bool need_rubrics);

// sum(points of met criteria) / sum(positive points). Not clipped: missing everything good and
// hitting something bad gives a negative reward, which is the signal GRPO needs.
double rubric_reward(const RubricExample& ex, const std::vector<bool>& met);

// The HealthBench score: the mean reward over examples, clipped to [0, 1] (only the mean is clipped).
double clipped_mean_score(const std::vector<double>& rewards);

// Standard deviation (population, as numpy's np.std) of clipped_mean_score over `samples`
// bootstrap resamples of `rewards`, drawn with a seeded Rng so reports are reproducible.
double bootstrap_std(const std::vector<double>& rewards, int samples, uint64_t seed);

}  // namespace rusca
