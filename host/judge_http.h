// judge_http.h: an external judge behind an OpenAI-compatible chat-completions server (vLLM,
// SGLang, ...), for graders too big to share the policy's GPU (the paper grades with Qwen3-32B on
// a separate node). One request per (response, criterion) with HealthBench's grader prompt
// (host/grader.h), at most `concurrency` in flight (libcurl's multi interface, one thread), each
// with a timeout; a failed attempt (transport error, timeout, HTTP 408/429/5xx, a reply without
// "criteria_met") is retried after backoff_s, 2 backoff_s, 4 backoff_s, ...; a criterion that still
// has no verdict is returned with failed = true (masked out of the reward, host/judge_backend.h).
// When every request of a call fails the judge is unusable (wrong URL, model or key; server down)
// and judge() throws, naming the URL and the last error.
#pragma once
#include <string>

#include "grader.h"
#include "judge_backend.h"

namespace rusca {

struct HttpJudgeOptions {
    std::string url;          // ".../v1" (we POST to <url>/chat/completions) or the full ".../chat/completions"
    std::string model;        // the request's "model" (vLLM: --served-model-name)
    std::string api_key_env;  // environment variable holding the API key, sent as a Bearer token ("" = none)
    std::string grader_template = "data/grader_template.txt";
    int concurrency = 64;     // requests in flight
    double timeout_s = 300;   // per attempt, connect to last byte
    int retries = 3;          // further attempts after the first
    double backoff_s = 1;     // before the first retry; doubles each time, at most 60 s
    int max_tokens = 2048;    // the grader's reply (simple-evals: 2048)
    double temperature = 0;
    bool quiet = false;       // no line on stderr about masked criteria
    bool enabled() const { return !url.empty(); }
    void validate() const;    // Errors name the flag (--judge-url, --judge-model, ...)
};

class HttpJudge final : public JudgeBackend {
public:
    explicit HttpJudge(HttpJudgeOptions opt);
    std::vector<std::vector<Verdict>> judge(const std::vector<JudgeItem>& items) override;
    nlohmann::json last_stats() const override { return stats_; }
    std::string describe() const override { return "external judge " + opt_.model + " at " + endpoint_; }
    const std::string& endpoint() const { return endpoint_; }

private:
    HttpJudgeOptions opt_;
    GraderTemplate tmpl_;
    std::string endpoint_, auth_header_;
    nlohmann::json stats_ = nlohmann::json::object();
};

}  // namespace rusca

namespace CLI { class App; }

namespace rusca {

// The --judge-url flags (and --judge-model, --judge-api-key-env, --judge-concurrency,
// --judge-timeout, --judge-retries, --judge-backoff, --judge-max-tokens, --grader-template) on a
// subcommand, shared by rl, eval and judge (host/judge_http_cli.cpp).
void add_judge_url_options(CLI::App& cmd, HttpJudgeOptions& o);

}  // namespace rusca
