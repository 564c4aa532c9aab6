// rubric.cpp: loading HealthBench JSONL (strictly: every bad field is an error naming its line)
// and the rubric reward and benchmark score.
#include "rubric.h"

#include <algorithm>
#include <cctype>
#include <climits>
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

#include "error.h"
#include "json_util.h"
#include "rng.h"

namespace rusca {

namespace {

using nlohmann::json;

// HealthBench prompts have up to ~50 criteria; 1000 leaves room and bounds the judge's work.
constexpr size_t kMaxCriteria = 1000;

std::vector<std::string> string_list(const json& j, const char* key, const std::string& where) {
    std::vector<std::string> out;
    if (!j.contains(key)) return out;  // tags are optional
    const json& v = j[key];
    check(v.is_array(), where + key + " must be a list of strings");
    for (const json& s : v) {
        check(s.is_string(), where + key + " must be a list of strings");
        out.push_back(s.get<std::string>());
    }
    return out;
}

// Points must be integers; 5.0 is accepted (float-writing converters are common), 2.5 is not.
int parse_points(const json& c, const std::string& field) {
    const char* msg = " must be an integer";
    check(c.contains("points") && c["points"].is_number(), field + msg);
    const json& p = c["points"];
    double v = p.get<double>();  // exact for every int that fits; 2^64 - 1 must not wrap to -1
    check(std::floor(v) == v && std::fabs(v) <= INT_MAX, field + msg);
    return int(v);
}

std::vector<Message> parse_prompt(const json& j, const std::string& where) {
    if (j.contains("prompt") && j["prompt"].is_string()) return {{"user", j["prompt"].get<std::string>()}};
    check(j.contains("prompt") && j["prompt"].is_array(),
          where + "field \"prompt\" must be a list of messages (or a string)");
    check(!j["prompt"].empty(), where + "field \"prompt\" is empty");
    std::vector<Message> msgs;
    for (const json& m : j["prompt"]) {
        const std::string at = where + "prompt[" + std::to_string(msgs.size()) + "]";
        check(m.is_object(), at + " must be an object with \"role\" and \"content\"");
        check(m.contains("role") && m["role"].is_string(), at + ".role must be a string");
        check(m.contains("content") && m["content"].is_string(), at + ".content must be a string");
        Message msg{m["role"].get<std::string>(), m["content"].get<std::string>()};
        check(msg.role == "system" || msg.role == "user" || msg.role == "assistant",
              at + ".role \"" + msg.role + "\" must be system, user or assistant");
        msgs.push_back(std::move(msg));
    }
    check(msgs.back().role == "user",
          where + "the last prompt turn must be from the user, not \"" + msgs.back().role + "\"");
    return msgs;
}

// "check": {"all_words": ["honey"]}: each word lower-case ASCII letters, digits or apostrophes (the
// checker lower-cases the response and splits it into such words, so anything else never matches).
std::vector<std::string> parse_check(const json& c, const std::string& at) {
    if (!c.contains("check")) return {};
    const json& k = c["check"];
    check(k.is_object() && k.contains("all_words") && k.size() == 1,
          at + ".check must be {\"all_words\": [words]} (the only check rusca knows)");
    std::vector<std::string> words = string_list(k, "all_words", at + ".check.");
    check(!words.empty(), at + ".check.all_words must not be empty");
    for (const std::string& w : words)
        for (unsigned char ch : w)
            check(std::islower(ch) || std::isdigit(ch) || ch == '\'',
                  at + ".check.all_words: \"" + w + "\" is not one lower-case word of letters, digits or apostrophes");
    return words;
}

std::vector<Criterion> parse_rubrics(const json& j, const std::string& where) {
    check(j.contains("rubrics") && j["rubrics"].is_array() && !j["rubrics"].empty(),
          where + "field \"rubrics\" must be a non-empty list");
    std::vector<Criterion> out;
    for (const json& c : j["rubrics"]) {
        const std::string at = where + "rubrics[" + std::to_string(out.size()) + "]";
        check(c.is_object(), at + " must be an object with \"criterion\" and \"points\"");
        check(c.contains("criterion") && c["criterion"].is_string(), at + ".criterion must be a string");
        Criterion crit;
        crit.text = c["criterion"].get<std::string>();
        crit.points = parse_points(c, at + ".points");
        crit.tags = string_list(c, "tags", at + ".");
        crit.check_words = parse_check(c, at);
        out.push_back(std::move(crit));
    }
    return out;
}

}  // namespace

RubricExample parse_rubric_line(const std::string& line, const std::string& where, long lineno, bool need_rubrics) {
    // The judge asks one question per criterion per rollout: more than kMaxCriteria is a broken file,
    // refused while parsing (the parser's events count the rubrics list's items), before a line of a
    // million criteria is built into a document.
    std::string key;
    size_t criteria = 0;
    auto count = [&](int depth, json::parse_event_t ev, json& parsed) {
        using E = json::parse_event_t;
        if (depth == 1 && ev == E::key) key = parsed.get<std::string>();
        else if (depth == 2 && key == "rubrics" && (ev == E::object_start || ev == E::array_start || ev == E::value) &&
                 ++criteria > kMaxCriteria)
            throw Error(where + "field \"rubrics\" has more than " + std::to_string(kMaxCriteria) +
                        " criteria, the most rusca accepts per prompt (refused at criterion " +
                        std::to_string(criteria) + ")");
        return true;
    };
    json j;
    try {
        j = json::parse(line, count);
    } catch (const json::exception& e) {  // parse_error, or out_of_range for a number like 1E999
        throw Error(where + "invalid JSON (" + e.what() + ")");
    }
    check(j.is_object(), where + "expected a JSON object");
    RubricExample ex;
    ex.prompt_id = "line-" + std::to_string(lineno);
    if (j.contains("prompt_id")) {
        check(j["prompt_id"].is_string(), where + "field \"prompt_id\" must be a string");
        ex.prompt_id = j["prompt_id"].get<std::string>();
    }
    const std::string at = where + "prompt " + ex.prompt_id + ": ";  // later errors name the example
    ex.prompt = parse_prompt(j, at);
    ex.example_tags = string_list(j, "example_tags", at + "field ");
    if (!need_rubrics && !j.contains("rubrics")) return ex;
    ex.rubrics = parse_rubrics(j, at);
    // Without positive points the reward's denominator is zero: the example cannot be scored.
    auto positive = [](const Criterion& c) { return c.points > 0; };
    bool any_positive = std::any_of(ex.rubrics.begin(), ex.rubrics.end(), positive);
    check(any_positive, where + "prompt " + ex.prompt_id + " has no criterion with positive points");
    return ex;
}

std::vector<RubricExample> load_rubric_jsonl(const std::string& path, bool need_rubrics) {
    check(std::ifstream(path).good(), path + ": cannot open rubric data file");
    LineReader f(path);
    std::vector<RubricExample> out;
    std::string line;
    while (f.next(line)) {
        if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
        out.push_back(parse_rubric_line(line, f.where(), f.lineno(), need_rubrics));
    }
    check(!out.empty(), path + ": no examples (empty file?)");
    return out;
}

double rubric_reward(const RubricExample& ex, const std::vector<bool>& met) {
    check(met.size() == ex.rubrics.size(), "rubric_reward: prompt " + ex.prompt_id + " has " +
                                               std::to_string(ex.rubrics.size()) + " criteria but " +
                                               std::to_string(met.size()) + " judgements were given");
    long earned = 0, possible = 0;
    for (size_t k = 0; k < met.size(); k++) {
        if (met[k]) earned += ex.rubrics[k].points;
        if (ex.rubrics[k].points > 0) possible += ex.rubrics[k].points;
    }
    check(possible > 0, "rubric_reward: prompt " + ex.prompt_id + " has no criterion with positive points");
    return double(earned) / double(possible);
}

double clipped_mean_score(const std::vector<double>& rewards) {
    check(!rewards.empty(), "clipped_mean_score: no rewards");
    double sum = 0;
    for (double r : rewards) sum += r;
    return std::clamp(sum / double(rewards.size()), 0.0, 1.0);
}

double bootstrap_std(const std::vector<double>& rewards, int samples, uint64_t seed) {
    check(!rewards.empty() && samples > 0, "bootstrap_std: needs rewards and a positive sample count");
    Rng rng(seed);
    std::vector<double> resample(rewards.size()), scores(samples);
    for (double& s : scores) {
        for (double& r : resample) r = rewards[rng.below(rewards.size())];
        s = clipped_mean_score(resample);
    }
    double mean = 0, var = 0;
    for (double s : scores) mean += s;
    mean /= samples;
    for (double s : scores) var += (s - mean) * (s - mean);
    return std::sqrt(var / samples);
}

}  // namespace rusca
