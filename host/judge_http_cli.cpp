// judge_http_cli.cpp: the external judge's flags, one definition for `rusca rl`, `eval` and `judge`.
#include <CLI/CLI.hpp>

#include "judge_http.h"

namespace rusca {

void add_judge_url_options(CLI::App& cmd, HttpJudgeOptions& o) {
    const char* group = "External judge (an OpenAI-compatible server instead of --judge)";
    cmd.add_option("--judge-url", o.url, "Chat-completions server of the judge, e.g. http://host:8000/v1 (vLLM, SGLang)")
        ->group(group);
    cmd.add_option("--judge-model", o.model, "Model name the server serves the judge under")->group(group);
    cmd.add_option("--judge-api-key-env", o.api_key_env, "Environment variable holding the server's API key (Bearer)")
        ->group(group);
    cmd.add_option("--judge-concurrency", o.concurrency, "Requests in flight")->capture_default_str()->check(CLI::Range(1, 1 << 16))->group(group);
    cmd.add_option("--judge-timeout", o.timeout_s, "Seconds per attempt")->capture_default_str()->check(CLI::PositiveNumber)->group(group);
    cmd.add_option("--judge-retries", o.retries, "Further attempts after a failed one (timeouts, 5xx, dropped connections, replies without a verdict)")
        ->capture_default_str()
        ->check(CLI::Range(0, 100))
        ->group(group);
    cmd.add_option("--judge-backoff", o.backoff_s, "Seconds before the first retry; doubles each retry (at most 60)")
        ->capture_default_str()
        ->check(CLI::NonNegativeNumber)
        ->group(group);
    cmd.add_option("--judge-max-tokens", o.max_tokens, "Longest grader reply")->capture_default_str()->check(CLI::Range(1, 1 << 20))->group(group);
    cmd.add_option("--grader-template", o.grader_template, "The external judge's prompt (HealthBench's grader)")
        ->capture_default_str()
        ->check(CLI::ExistingFile)
        ->group(group);
}

}  // namespace rusca
