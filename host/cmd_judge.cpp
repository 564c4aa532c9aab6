// cmd_judge.cpp: `rusca judge`: responses x rubric criteria -> verdicts, p(yes) and rewards.
// Responses come inline ("response": str or "responses": [str] on each rubric line) or from a
// `rusca generate` output file joined by prompt_id.
#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "checker.h"
#include "cli.h"
#include "error.h"
#include "json_util.h"
#include "engine.h"
#include "judge_http.h"
#include "model.h"
#include "rubric.h"

namespace rusca {

namespace {

using json = nlohmann::json;

struct JudgeArgs {
    std::string judge, tokenizer, data, responses, out, templ = "data/judge_template.txt";
    std::string yes = " yes", no = " no", device = "auto";
    int limit = 0;
    HttpJudgeOptions external_judge;
};

// Examples with their responses, from the rubric file's own "response(s)" fields.
void read_inline(const std::string& path, std::vector<RubricExample>& examples,
                 std::vector<std::vector<std::string>>& responses) {
    LineReader f(path);
    std::string line;
    while (f.next(line)) {
        if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
        const std::string where = f.where();
        examples.push_back(parse_rubric_line(line, where, f.lineno(), true));
        json j = json::parse(line);
        std::vector<std::string> r;
        if (j.contains("response") && j["response"].is_string()) r.push_back(j["response"]);
        if (j.contains("responses") && j["responses"].is_array())
            for (const json& x : j["responses"]) {
                check(x.is_string(), where + "field \"responses\" must hold strings");
                r.push_back(x);
            }
        check(!r.empty(), where + "no \"response\" or \"responses\" field (or pass --responses FILE)");
        responses.push_back(r);
    }
}

// Responses from `rusca generate` output: {"prompt_id", "completion"} per line.
std::map<std::string, std::vector<std::string>> read_generated(const std::string& path) {
    LineReader f(path);
    std::map<std::string, std::vector<std::string>> by_id;
    std::string line;
    while (f.next(line)) {
        if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
        const std::string where = f.where();
        json j = json::parse(line, nullptr, false);
        check(!j.is_discarded() && j.is_object(), where + "invalid JSON");
        check(j.contains("prompt_id") && j["prompt_id"].is_string() && j.contains("completion") &&
                  j["completion"].is_string(),
              where + "expected {\"prompt_id\": str, \"completion\": str}");
        by_id[j["prompt_id"]].push_back(j["completion"]);
    }
    return by_id;
}

// Judge vs programmatic checker (criteria with a "check" field), counted apart for positive and
// negative criteria: a judge can be right about what to include and wrong about what to avoid.
struct CheckerAgreement {
    long agree[2] = {0, 0}, n[2] = {0, 0};  // [0]: negative points, [1]: positive
    void add(const Criterion& c, bool judged, bool truth, json& entry) {
        entry["checker_met"] = truth;
        n[c.points > 0]++, agree[c.points > 0] += judged == truth;
    }
    double percent(bool positive) const { return n[positive] ? 100.0 * agree[positive] / n[positive] : 100.0; }
};

void run_judge(const JudgeArgs& a) {
    std::vector<RubricExample> examples;
    std::vector<std::vector<std::string>> responses;
    if (a.responses.empty()) {
        read_inline(a.data, examples, responses);
    } else {
        examples = load_rubric_jsonl(a.data);
        auto by_id = read_generated(a.responses);
        std::vector<RubricExample> kept;
        for (const RubricExample& ex : examples)
            if (by_id.count(ex.prompt_id)) kept.push_back(ex), responses.push_back(by_id[ex.prompt_id]);
        check(!kept.empty(), a.responses + ": no completion matches a prompt_id of " + a.data);
        examples = kept;
    }
    if (a.limit > 0 && size_t(a.limit) < examples.size()) examples.resize(a.limit), responses.resize(a.limit);

    const bool external = a.external_judge.enabled();
    check(external != !a.judge.empty(), "judge needs one judge: --judge DIR (in process) or --judge-url URL (a server)");
    std::vector<JudgeItem> items;
    for (size_t e = 0; e < examples.size(); e++)
        for (const std::string& r : responses[e]) items.push_back({&examples[e], r});

    std::vector<std::vector<Verdict>> verdicts;
    auto t0 = std::chrono::steady_clock::now();
    if (external) {
        verdicts = HttpJudge(a.external_judge).judge(items);
    } else {
        std::unique_ptr<Model> model = load_cpu_model(a.judge);
        Tokenizer tok(tokenizer_path(a.tokenizer, a.judge));
        CpuInference inf(model->config, model->params());
        Judge judge(inf, tok, JudgeTemplate::load(a.templ), a.yes, a.no);
        t0 = std::chrono::steady_clock::now();
        verdicts = make_engine(resolve_device(a.device), *model)->judge(judge, items);
    }
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

    std::ofstream out(a.out);
    check(out.good(), a.out + ": cannot open for writing");
    std::vector<double> rewards;
    long criteria = 0, failed = 0;
    CheckerAgreement agreement;
    for (size_t i = 0, e = 0, k = 0; i < items.size(); i++) {
        const RubricExample& ex = *items[i].example;
        json list = json::array();
        for (size_t c = 0; c < ex.rubrics.size(); c++) {
            const Verdict& v = verdicts[i][c];
            list.push_back({{"criterion", ex.rubrics[c].text}, {"points", ex.rubrics[c].points}});
            if (v.failed) {  // no verdict: masked out of the reward, and of the agreement
                list.back()["met"] = nullptr, list.back()["judge_failed"] = true, failed++;
                continue;
            }
            list.back()["met"] = v.met;
            if (!external) list.back()["p_yes"] = v.p_yes;
            if (has_check(ex.rubrics[c])) agreement.add(ex.rubrics[c], v.met, checker_met(ex.rubrics[c], items[i].response), list.back());
        }
        criteria += long(ex.rubrics.size());
        const std::optional<double> reward = judged_reward(ex, verdicts[i]);
        if (reward) rewards.push_back(*reward);
        json row = {{"prompt_id", ex.prompt_id}, {"response_index", k}, {"reward", reward ? json(*reward) : json(nullptr)}, {"criteria", list}};
        out << row.dump(-1, ' ', false, json::error_handler_t::replace) << "\n";
        if (++k == responses[e].size()) e++, k = 0;
    }
    check(!rewards.empty(), "judge: no response could be scored (no verdict on any criterion with positive points)");
    double mean = 0;
    for (double r : rewards) mean += r / double(rewards.size());
    if (failed > 0)
        std::fprintf(stderr, "rusca judge: %ld criteria got no verdict (\"judge_failed\": true, masked); %zu of %zu responses scored\n",
                     failed, rewards.size(), items.size());
    std::fprintf(stderr,
                 "rusca judge: %zu responses, %ld criteria in %.2f s (%.1f criteria/s); mean reward %.4f, "
                 "score (mean clipped to [0,1]) %.4f -> %s\n",
                 items.size(), criteria, secs, criteria / secs, mean, clipped_mean_score(rewards), a.out.c_str());
    if (agreement.n[0] + agreement.n[1] > 0)
        std::fprintf(stderr, "rusca judge: agrees with the checker on %.2f%% of %ld positive and %.2f%% of %ld negative criteria\n",
                     agreement.percent(true), agreement.n[1], agreement.percent(false), agreement.n[0]);
}

}  // namespace

void add_judge_command(CLI::App& app) {
    auto a = std::make_shared<JudgeArgs>();
    CLI::App* cmd = app.add_subcommand("judge", "Judge responses against rubrics: a yes/no judge model in process, or a server (--judge-url)");
    cmd->add_option("--judge", a->judge, "Judge model directory (in process; or --judge-url)")->check(CLI::ExistingDirectory);
    add_judge_url_options(*cmd, a->external_judge);
    cmd->add_option("--tokenizer", a->tokenizer, "The judge's tokenizer (default: the --judge folder's own)")->check(CLI::ExistingPath);
    cmd->add_option("--data", a->data, "Rubric JSONL (HealthBench format); with \"response\"/\"responses\" unless --responses")
        ->required()
        ->check(CLI::ExistingFile);
    cmd->add_option("--responses", a->responses, "`rusca generate` output to judge, joined by prompt_id")->check(CLI::ExistingFile);
    cmd->add_option("--out", a->out, "Output JSONL: verdicts and reward per response")->required();
    cmd->add_option("--template", a->templ, "Judge prompt template")->capture_default_str()->check(CLI::ExistingFile);
    cmd->add_option("--yes", a->yes, "Answer word for met (its first token is compared)")->capture_default_str();
    cmd->add_option("--no", a->no, "Answer word for not met")->capture_default_str();
    cmd->add_option("--limit", a->limit, "Judge only the first N examples (0: all)")->check(CLI::NonNegativeNumber);
    cmd->add_option("--device", a->device, "cpu, cuda, or auto (CUDA when a GPU is present)")
        ->capture_default_str()
        ->check(CLI::IsMember({"cpu", "cuda", "auto"}));
    cmd->callback([a] { run_judge(*a); });
}

}  // namespace rusca
