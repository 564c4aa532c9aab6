// test_judge_http.cpp: the external judge (--judge-url) against tests/fake_judge_server.py, a local
// OpenAI-compatible server that grades like an exact checker and misbehaves on command (slow
// replies, HTTP 500 / 404, dropped connections, malformed bodies, replies without a verdict):
// verdicts, retries and their counts, masking of what still fails, the bound on requests in
// flight, a clear error when nothing works, an RL step and an eval that count masked criteria, and
// `rusca judge --judge-url` from the command line.
// Skipped, saying so, where python3 is absent.
#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <sstream>

#include "host/curl_api.h"
#include "host/eval.h"
#include "host/fileio.h"
#include "host/judge_backend.h"
#include "host/judge_http.h"
#include "host/rl.h"
#include "rl_test_util.h"
#include "test_util.h"

using namespace rusca;
using namespace rusca::testutil;
using json = nlohmann::json;

namespace {

bool have_python() { return std::system("command -v python3 > /dev/null 2>&1") == 0; }

// The fake server on a free port, for the life of a test.
struct FakeJudgeServer {
    pid_t pid = -1;
    int port = 0;
    FakeJudgeServer() {
        int fds[2];
        if (pipe(fds) != 0) return;
        pid = fork();
        if (pid == 0) {
            dup2(fds[1], STDOUT_FILENO);
            close(fds[0]), close(fds[1]);
            execlp("python3", "python3", "tests/fake_judge_server.py", "0", (char*)nullptr);
            _exit(127);
        }
        close(fds[1]);
        FILE* f = fdopen(fds[0], "r");
        char line[64] = "";
        if (f && std::fgets(line, sizeof line, f)) std::sscanf(line, "port %d", &port);
        if (f) std::fclose(f);
    }
    ~FakeJudgeServer() {
        if (pid > 0) kill(pid, SIGTERM), waitpid(pid, nullptr, 0);
    }
    std::string url() const { return "http://127.0.0.1:" + std::to_string(port) + "/v1"; }
    // GET /stats: what the server saw.
    json stats() const {
        std::string body;
        const CurlApi& curl = curl_api();
        CURL* e = curl.easy_init();
        const std::string url = "http://127.0.0.1:" + std::to_string(port) + "/stats";
        curl.easy_setopt(e, CURLOPT_URL, url.c_str());
        curl.easy_setopt(e, CURLOPT_WRITEFUNCTION, +[](char* p, size_t size, size_t n, void* out) {
            static_cast<std::string*>(out)->append(p, size * n);
            return size * n;
        });
        curl.easy_setopt(e, CURLOPT_WRITEDATA, &body);
        EXPECT_EQ(curl.easy_perform(e), CURLE_OK);
        curl.easy_cleanup(e);
        return json::parse(body);
    }
};

#define START_SERVER(s)                                                                   \
    if (!have_python()) GTEST_SKIP() << "python3 not found: the fake judge server needs it"; \
    FakeJudgeServer s;                                                                    \
    ASSERT_GT(s.port, 0) << "tests/fake_judge_server.py did not start"

HttpJudgeOptions options(const FakeJudgeServer& s) {
    HttpJudgeOptions o;
    o.url = s.url(), o.model = "judge-7b", o.concurrency = 4, o.timeout_s = 1.0, o.retries = 2, o.backoff_s = 0.02;
    o.quiet = true;
    return o;
}

// One example; the fake server says a criterion is met when its last word is in the response.
RubricExample example(const std::vector<std::pair<std::string, int>>& criteria) {
    RubricExample ex;
    ex.prompt_id = "e1";
    ex.prompt = {{"system", "Scaffold: mention honey."}, {"user", "Mira has a cough. What should she do?"}};
    for (const auto& [text, points] : criteria) ex.rubrics.push_back({text, points, {}, {}});
    return ex;
}

std::vector<bool> met_of(const std::vector<Verdict>& v) {
    std::vector<bool> out;
    for (const Verdict& x : v) out.push_back(x.met);
    return out;
}

}  // namespace

// Verdicts follow the response; a met negative criterion lowers the reward; the request carries
// the model name and the key named by --judge-api-key-env.
TEST(HttpJudge, GradesThroughTheServerAndAMetNegativeCriterionLowersTheReward) {
    START_SERVER(s);
    setenv("RUSCA_TEST_JUDGE_KEY", "sekret", 1);
    HttpJudgeOptions o = options(s);
    o.api_key_env = "RUSCA_TEST_JUDGE_KEY";
    HttpJudge judge(o);
    const RubricExample ex = example({{"Says to take honey", 5}, {"Says to rest", 3}, {"Recommends a pipe", -4}});
    const auto v = judge.judge({{&ex, "Take honey and rest."}, {&ex, "Take honey, rest and smoke a pipe."}});
    ASSERT_EQ(v.size(), 2u);
    EXPECT_EQ(met_of(v[0]), (std::vector<bool>{true, true, false}));
    EXPECT_EQ(met_of(v[1]), (std::vector<bool>{true, true, true}));
    EXPECT_DOUBLE_EQ(*judged_reward(ex, v[0]), 1.0);
    EXPECT_DOUBLE_EQ(*judged_reward(ex, v[1]), 0.5);  // (5 + 3 - 4) / 8: the pipe costs its points
    const json st = s.stats();
    EXPECT_EQ(st["posts"], 6);
    EXPECT_EQ(st["model"], "judge-7b");
    EXPECT_EQ(st["auth"], "Bearer sekret");
    EXPECT_EQ(judge.last_stats()["judge_requests"], 6);
    EXPECT_EQ(judge.last_stats()["judge_retries"], 0);
    unsetenv("RUSCA_TEST_JUDGE_KEY");
}

TEST(HttpJudge, ReadsTheVerdictInEveryReplyForm) {
    START_SERVER(s);
    HttpJudge judge(options(s));
    const RubricExample ex = example({{"Says honey [[fence]]", 2}, {"Says rest [[prose]]", 2}, {"Says tea [[bare]]", 2},
                                      {"Says soup [[think]]", 2}, {"Says water [[bare]]", 2}});
    const auto v = judge.judge({{&ex, "honey, rest and tea"}});
    EXPECT_EQ(met_of(v[0]), (std::vector<bool>{true, true, true, false, false}));
    EXPECT_EQ(judge.last_stats()["judge_retries"], 0);
}

// Each kind of transient failure, once or twice, then an answer: all verdicts arrive, every retry
// is counted by its cause, and the server saw exactly the attempts counted.
TEST(HttpJudge, RetriesTransientFailures) {
    START_SERVER(s);
    HttpJudge judge(options(s));  // 2 retries
    const RubricExample ex = example({{"Says honey [[500:2]]", 2}, {"Says rest [[drop:1]]", 2}, {"Says water [[slow:1]]", 2},
                                      {"Says tea [[garbage:1]]", 2}, {"Says soup [[badjson:1]]", 2}});
    const auto v = judge.judge({{&ex, "honey, rest, water and tea"}});
    EXPECT_EQ(met_of(v[0]), (std::vector<bool>{true, true, true, true, false}));
    for (const Verdict& x : v[0]) EXPECT_FALSE(x.failed);
    const json st = judge.last_stats();
    EXPECT_EQ(st["judge_requests"], 5);
    EXPECT_EQ(st["judge_retries"], 6);
    EXPECT_EQ(st["judge_http_errors"], 2);
    EXPECT_EQ(st["judge_transport_errors"], 1);
    EXPECT_EQ(st["judge_timeouts"], 1);
    EXPECT_EQ(st["judge_bad_replies"], 2);
    EXPECT_EQ(s.stats()["posts"], 11);
}

// What still fails after the retries is masked: failed = true, left out of the reward's numerator
// and denominator (the reward equals the rubric reward of the example without those criteria); an
// HTTP 404 (a wrong model name) is not retried.
TEST(HttpJudge, MasksCriteriaThatStillFail) {
    START_SERVER(s);
    HttpJudgeOptions o = options(s);
    o.retries = 1;
    HttpJudge judge(o);
    const RubricExample ex = example({{"Says honey", 5}, {"Says rest [[500]]", 3}, {"Says tea [[drop]]", 2},
                                      {"Says pipe [[garbage]]", -4}, {"Says soup [[badjson]]", 2}, {"Says water [[slow]]", 2},
                                      {"Says salt [[404]]", 2}, {"Says smoke", -3}});
    const auto v = judge.judge({{&ex, "honey, rest, tea, a pipe and smoke"}});
    std::vector<bool> failed;
    for (const Verdict& x : v[0]) failed.push_back(x.failed);
    EXPECT_EQ(failed, (std::vector<bool>{false, true, true, true, true, true, true, false}));
    EXPECT_EQ(count_failed(v), 6);
    RubricExample answered = example({{"Says honey", 5}, {"Says smoke", -3}});
    EXPECT_DOUBLE_EQ(*judged_reward(ex, v[0]), rubric_reward(answered, {true, true}));  // (5 - 3) / 5
    EXPECT_EQ(judge.last_stats()["judge_retries"], 5);                                   // not the 404
    EXPECT_EQ(s.stats()["posts"], 2 + 2 * 5 + 1);
}

TEST(HttpJudge, KeepsAtMostConcurrencyRequestsInFlight) {
    START_SERVER(s);
    HttpJudgeOptions o = options(s);
    o.concurrency = 3;
    HttpJudge judge(o);
    std::vector<std::pair<std::string, int>> criteria;
    for (int i = 0; i < 12; i++) criteria.push_back({"Says honey [[delay:150]]", 1});
    const RubricExample ex = example(criteria);
    const auto v = judge.judge({{&ex, "honey"}});
    EXPECT_EQ(count_failed(v), 0);
    const json st = s.stats();
    EXPECT_EQ(st["posts"], 12);
    EXPECT_LE(st["max_in_flight"].get<int>(), 3);
    EXPECT_GE(st["max_in_flight"].get<int>(), 2);
}

// A judge that answers nothing is an error naming the URL and the last failure, not a run of
// rewards made of nothing.
TEST(HttpJudge, NothingAnsweredIsAnErrorNamingTheServer) {
    START_SERVER(s);
    HttpJudgeOptions o = options(s);
    const RubricExample ex = example({{"Says honey [[404]]", 2}, {"Says rest [[404]]", 2}});
    HttpJudge judge(o);
    expect_error([&] { judge.judge({{&ex, "honey"}}); }, {s.url() + "/chat/completions", "every one of the 2 requests", "HTTP 404"});
    o.url = "http://127.0.0.1:1/v1", o.retries = 0;  // nothing listens on port 1
    HttpJudge nobody(o);
    expect_error([&] { nobody.judge({{&ex, "honey"}}); }, {"127.0.0.1:1", "every one of the 2 requests"});
}

// libcurl is loaded only for --judge-url; where it is absent, or the library found is not libcurl,
// the error says which package to install.
TEST(HttpJudge, MissingLibcurlSaysWhatToInstall) {
    try {
        load_curl_api("libcurl-absent-for-a-test.so.4");
        FAIL() << "loading an absent library did not throw";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("--judge-url) needs libcurl: install libcurl4"), std::string::npos) << e.what();
        EXPECT_NE(std::string(e.what()).find("libcurl-absent-for-a-test.so.4"), std::string::npos) << e.what();
    }
    try {
        load_curl_api("libm.so.6");
        FAIL() << "libm passed for libcurl";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("libm.so.6 has no curl_global_init"), std::string::npos) << e.what();
    }
    EXPECT_NE(curl_api().multi_poll, nullptr);  // the real one loads
}

TEST(HttpJudge, OptionErrorsNameTheFlag) {
    HttpJudgeOptions o;
    o.url = "localhost:8000", o.model = "m";
    expect_error([&] { HttpJudge j(o); }, {"--judge-url", "localhost:8000"});
    o.url = "http://localhost:8000/v1", o.model = "";
    expect_error([&] { HttpJudge j(o); }, {"--judge-model"});
    o.model = "m", o.api_key_env = "RUSCA_TEST_NO_SUCH_VARIABLE";
    unsetenv("RUSCA_TEST_NO_SUCH_VARIABLE");
    expect_error([&] { HttpJudge j(o); }, {"--judge-api-key-env", "RUSCA_TEST_NO_SUCH_VARIABLE"});
    o.api_key_env = "";
    EXPECT_EQ(HttpJudge(o).endpoint(), "http://localhost:8000/v1/chat/completions");
    o.url = "http://localhost:8000/v1/chat/completions";
    EXPECT_EQ(HttpJudge(o).endpoint(), "http://localhost:8000/v1/chat/completions");
}

// A response none of whose positive criteria got a verdict cannot be scored: it gets its group's
// mean, so its advantage is 0 and the others' are as if it were not there.
TEST(JudgeBackend, UnscoredResponseGetsItsGroupsMean) {
    const RubricExample ex = example({{"a", 4}, {"b", -2}});
    auto verdict = [](bool met, bool failed) {
        Verdict v;
        v.met = met, v.failed = failed;
        return v;
    };
    const std::vector<JudgeItem> items(4, JudgeItem{&ex, "r"});
    const std::vector<std::vector<Verdict>> v = {{verdict(true, false), verdict(false, false)},
                                                 {verdict(false, false), verdict(true, false)},
                                                 {verdict(false, true), verdict(true, false)},   // unscored
                                                 {verdict(true, false), verdict(false, true)}};  // negative masked
    long unscored = 0;
    const std::vector<double> r = group_rewards(items, v, 4, &unscored);
    EXPECT_EQ(unscored, 1);
    EXPECT_DOUBLE_EQ(r[0], 1.0);
    EXPECT_DOUBLE_EQ(r[1], -0.5);
    EXPECT_DOUBLE_EQ(r[3], 1.0);
    EXPECT_DOUBLE_EQ(r[2], (1.0 - 0.5 + 1.0) / 3);
    EXPECT_FALSE(judged_reward(ex, v[2]).has_value());
}

// The whole loop with a server as its judge: one RL step and an eval, with one criterion per
// prompt that always fails: counted as judge_failed in the metrics, the run goes on.
TEST(HttpJudge, RlStepAndEvalCountMaskedCriteria) {
    START_SERVER(s);
    TempDir d;
    ModelConfig c = load_config("data/tiny_config.json");
    c.hidden_size = 32, c.intermediate_size = 48, c.num_layers = 2, c.num_heads = 2, c.num_kv_heads = 1, c.head_dim = 16;
    write_random_model(d.path + "/policy", c, 1, 0.3f);
    std::string rows;
    for (int i = 0; i < 2; i++)
        rows += json({{"prompt_id", "p" + std::to_string(i)},
                      {"prompt", "Mira is sick. What helps?"},
                      {"rubrics", {{{"criterion", "Says the"}, {"points", 3}},
                                   {{"criterion", "Says rest [[500]]"}, {"points", 2}},
                                   {{"criterion", "Says a"}, {"points", -1}}}}})
                    .dump() +
                "\n";
    write_file_atomic(d.file("rubrics.jsonl"), rows);
    RlOptions o;
    o.policy = d.path + "/policy", o.tokenizer = "data/tokenizer.model", o.data = d.file("rubrics.jsonl");
    o.out = d.path + "/run", o.steps = 1, o.prompts_per_step = 2, o.group = 2, o.max_new_tokens = 4, o.quiet = true;
    o.updates_per_step = 1, o.loss.beta = 0;
    o.external_judge = options(s), o.external_judge.retries = 1;
    run_rl(o);
    const std::vector<json> m = read_metrics(o.out + "/metrics.jsonl");
    ASSERT_EQ(m.size(), 1u);
    EXPECT_EQ(m[0]["judge_failed"], 4);  // one criterion of each of the 2 x 2 rollouts
    EXPECT_EQ(m[0]["judge_unscored"], 0);
    EXPECT_EQ(m[0]["judge_requests"], 12);
    EXPECT_EQ(m[0]["judge_retries"], 4);
    EXPECT_TRUE(std::isfinite(m[0]["reward_mean"].get<double>()));

    std::unique_ptr<Model> policy = load_cpu_model(o.policy);
    std::unique_ptr<InferenceEngine> engine = make_engine("cpu", *policy);
    Tokenizer tok("data/tokenizer.model");
    HttpJudge judge(o.external_judge);
    EvalOptions eo;
    eo.gen.max_new_tokens = 4, eo.best_of_n = 2;
    const EvalResult e = evaluate(*engine, tok, judge, load_rubric_jsonl(o.data), eo);
    EXPECT_EQ(e.judge_failed, 4);
    EXPECT_EQ(e.judge_unscored, 0);
    EXPECT_EQ(e.judge.rewards.size(), 2u);
}

// A whole group without a verdict on its positive criteria: rewards stay finite, advantages zero.
TEST(HttpJudge, RlStepWithNothingScorableInAGroupStaysFinite) {
    START_SERVER(s);
    TempDir d;
    ModelConfig c = load_config("data/tiny_config.json");
    c.hidden_size = 32, c.intermediate_size = 48, c.num_layers = 2, c.num_heads = 2, c.num_kv_heads = 1, c.head_dim = 16;
    write_random_model(d.path + "/policy", c, 1, 0.3f);
    const json ex = {{"prompt_id", "p0"},
                     {"prompt", "Mira is sick. What helps?"},
                     {"rubrics", {{{"criterion", "Says rest [[500]]"}, {"points", 2}}, {{"criterion", "Says a"}, {"points", -1}}}}};
    write_file_atomic(d.file("rubrics.jsonl"), ex.dump() + "\n");
    RlOptions o;
    o.policy = d.path + "/policy", o.tokenizer = "data/tokenizer.model", o.data = d.file("rubrics.jsonl");
    o.out = d.path + "/run", o.steps = 1, o.prompts_per_step = 1, o.group = 2, o.max_new_tokens = 4, o.quiet = true;
    o.updates_per_step = 1;
    o.external_judge = options(s), o.external_judge.retries = 0, o.loss.beta = 0;
    run_rl(o);
    const std::vector<json> m = read_metrics(o.out + "/metrics.jsonl");
    ASSERT_EQ(m.size(), 1u);
    EXPECT_EQ(m[0]["judge_failed"], 2);
    EXPECT_EQ(m[0]["judge_unscored"], 2);
    EXPECT_EQ(m[0]["reward_mean"], 0.0);
    EXPECT_EQ(m[0]["loss"], 0.0);  // every advantage 0
}

// `rusca judge --judge-url`: verdicts from the server in the output file, a criterion without one
// marked "judge_failed" and left out of the reward; `rusca eval --judge-url` counts it; `rusca rl`
// without any judge says what it needs.
TEST(HttpJudge, CommandLineJudgeWritesMaskedCriteria) {
    START_SERVER(s);
    TempDir d;
    const json row = {{"prompt_id", "p0"},
                      {"prompt", "Mira has a cough. What should she do?"},
                      {"rubrics", {{{"criterion", "Says honey"}, {"points", 4}},
                                   {{"criterion", "Says rest [[500]]"}, {"points", 2}},
                                   {{"criterion", "Says pipe"}, {"points", -2}}}},
                      {"responses", {"Take honey.", "Take honey and a pipe."}}};
    write_file_atomic(d.file("in.jsonl"), row.dump() + "\n");
    const std::string log = d.file("log.txt");
    const std::string cmd = "build/rusca judge --judge-url " + s.url() + " --judge-model m --judge-retries 1 --judge-backoff 0.01 --data " +
                            d.file("in.jsonl") + " --out " + d.file("v.jsonl") + " > " + log + " 2>&1";
    ASSERT_EQ(std::system(cmd.c_str()), 0) << read_file(log);
    std::vector<json> out;
    std::istringstream in(read_file(d.file("v.jsonl")));
    for (std::string line; std::getline(in, line);) out.push_back(json::parse(line));
    ASSERT_EQ(out.size(), 2u);
    EXPECT_EQ(out[0]["reward"], 1.0);  // 4 of 4: the failed criterion's 2 points are not possible
    EXPECT_EQ(out[1]["reward"], 0.5);  // (4 - 2) / 4
    EXPECT_EQ(out[0]["criteria"][1]["judge_failed"], true);
    EXPECT_TRUE(out[0]["criteria"][1]["met"].is_null());
    EXPECT_EQ(out[1]["criteria"][2]["met"], true);
    EXPECT_NE(read_file(log).find("2 criteria got no verdict"), std::string::npos) << read_file(log);

    // `rusca eval --judge-url`: the masked criteria counted in its JSON.
    ModelConfig c = load_config("data/tiny_config.json");
    c.hidden_size = 32, c.intermediate_size = 48, c.num_layers = 2, c.num_heads = 2, c.num_kv_heads = 1, c.head_dim = 16;
    write_random_model(d.path + "/policy", c, 1, 0.3f);
    const std::string eval = "build/rusca eval --policy " + d.path + "/policy --tokenizer data/tokenizer.model --judge-url " +
                             s.url() + " --judge-model m --judge-retries 0 --max-new-tokens 4 --best-of-n 2 --device cpu --data " +
                             d.file("in.jsonl") + " --json " + d.file("eval.json") + " > " + log + " 2>&1";
    ASSERT_EQ(std::system(eval.c_str()), 0) << read_file(log);
    const json e = json::parse(read_file(d.file("eval.json")));
    EXPECT_EQ(e["judge_failed"], 2);  // the [[500]] criterion of both completions
    EXPECT_EQ(e["judge_unscored"], 0);

    const std::string rl = "build/rusca rl --policy " + d.path + " --data " + d.file("in.jsonl") + " > " + log + " 2>&1";
    EXPECT_NE(std::system(rl.c_str()), 0);
    EXPECT_NE(read_file(log).find("--judge DIR (in process) or --judge-url URL"), std::string::npos) << read_file(log);
}
