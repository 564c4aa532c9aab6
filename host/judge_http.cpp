// judge_http.cpp: the external judge's request loop over libcurl's multi interface: a queue of
// (response, criterion) requests, at most `concurrency` transfers in flight, failed attempts waiting
// out their backoff before they queue again. Single-threaded: curl_multi_poll waits for the next
// transfer to progress or the next backoff to end. libcurl is loaded at run time (curl_api.h).
#include "judge_http.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <memory>
#include <optional>
#include <unordered_map>

#include "curl_api.h"
#include "error.h"

namespace rusca {

namespace {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

constexpr double kMaxBackoffS = 60;
constexpr int kPollMs = 100;  // longest wait between checks of the backoff queue

size_t append_reply(char* data, size_t size, size_t n, void* out) {
    static_cast<std::string*>(out)->append(data, size * n);
    return size * n;
}

// The start of a reply, on one line, for error messages.
std::string excerpt(const std::string& s) {
    std::string out = s.substr(0, 200);
    std::replace(out.begin(), out.end(), '\n', ' ');
    return s.size() > 200 ? out + "..." : out;
}

enum class Failure { None, Timeout, Transport, Http, BadReply };

struct Attempt {
    Failure failure = Failure::None;
    bool retryable = true;
    std::optional<bool> met;
    std::string error;
};

// What one finished transfer says: a verdict, or why not and whether trying again can help
// (a timeout, a dropped connection, an overloaded server or a model that wrote no verdict can;
// a wrong URL, model name or key cannot).
Attempt read_attempt(CURLcode code, long status, const std::string& reply) {
    if (code == CURLE_OPERATION_TIMEDOUT) return {Failure::Timeout, true, {}, "timed out"};
    if (code != CURLE_OK) return {Failure::Transport, true, {}, curl_api().easy_strerror(code)};
    if (status != 200) {
        const bool retry = status == 408 || status == 409 || status == 429 || status >= 500;
        return {Failure::Http, retry, {}, "HTTP " + std::to_string(status) + ": " + excerpt(reply)};
    }
    std::string why;
    const std::optional<std::string> content = chat_completion_content(reply, why);
    if (!content) return {Failure::BadReply, true, {}, why + ": " + excerpt(reply)};
    std::optional<bool> met = parse_criteria_met(*content);
    if (!met) return {Failure::BadReply, true, {}, "no \"criteria_met\" in the reply: " + excerpt(*content)};
    return {Failure::None, false, met, ""};
}

// One (response, criterion) request and what became of it.
struct Request {
    size_t item = 0, criterion = 0;
    std::string body;
    int attempts = 0;
    Clock::time_point not_before;
    std::optional<bool> met;
    std::string error;  // of the last failed attempt
};

// One request per (item, criterion): HealthBench's grader prompt as the one user turn.
std::vector<Request> make_requests(const std::vector<JudgeItem>& items, const GraderTemplate& tmpl, const HttpJudgeOptions& opt) {
    std::vector<Request> reqs;
    for (size_t i = 0; i < items.size(); i++)
        for (size_t c = 0; c < items[i].example->rubrics.size(); c++) {
            const std::string prompt = tmpl.render(items[i], items[i].example->rubrics[c]);
            const json body = {{"model", opt.model},
                               {"messages", json::array({{{"role", "user"}, {"content", prompt}}})},
                               {"temperature", opt.temperature},
                               {"max_tokens", opt.max_tokens}};
            Request r;
            // Policy text may hold invalid UTF-8 (a reply cut inside a character): replaced, not fatal.
            r.item = i, r.criterion = c, r.body = body.dump(-1, ' ', false, json::error_handler_t::replace);
            reqs.push_back(std::move(r));
        }
    return reqs;
}

struct SlistDeleter {
    void operator()(curl_slist* l) const { curl_api().slist_free_all(l); }
};

// Attempts that failed, by cause, and all attempts made.
struct Counters {
    long attempts = 0, timeouts = 0, transport = 0, http = 0, bad_replies = 0;
};

// Runs every request to a verdict or a final failure: at most `concurrency` transfers in flight
// on one curl multi handle, failed attempts waiting out their backoff before they queue again.
class RequestLoop {
public:
    RequestLoop(const HttpJudgeOptions& opt, const std::string& endpoint, const curl_slist* headers, std::vector<Request>& reqs)
        : opt_(opt), endpoint_(endpoint), headers_(headers), reqs_(reqs), multi_(curl_.multi_init()) {
        check(multi_ != nullptr, "external judge: libcurl could not be initialised");
        // Keep a connection per slot alive between requests (the default cache shrinks with the handles).
        curl_.multi_setopt(multi_, CURLMOPT_MAXCONNECTS, long(opt_.concurrency));
        for (size_t r = 0; r < reqs_.size(); r++) ready_.push_back(r);
    }
    ~RequestLoop() {  // transfers still in flight only after an exception
        for (auto& kv : active_) curl_.multi_remove_handle(multi_, kv.first), curl_.easy_cleanup(kv.first);
        curl_.multi_cleanup(multi_);
    }
    RequestLoop(const RequestLoop&) = delete;
    RequestLoop& operator=(const RequestLoop&) = delete;

    Counters run() {
        while (done_ < reqs_.size()) {
            queue_due_retries();
            while (int(active_.size()) < opt_.concurrency && !ready_.empty()) {
                start(ready_.front());
                ready_.pop_front();
            }
            int running = 0, left = 0;
            curl_.multi_perform(multi_, &running);
            while (CURLMsg* msg = curl_.multi_info_read(multi_, &left))
                if (msg->msg == CURLMSG_DONE) finish(msg->easy_handle, msg->data.result);
            const bool can_start = int(active_.size()) < opt_.concurrency && !ready_.empty();
            if (done_ < reqs_.size() && !can_start) curl_.multi_poll(multi_, nullptr, 0, next_wait_ms(), nullptr);
        }
        return counters_;
    }

private:
    struct Transfer {
        size_t request = 0;
        std::string reply;
    };

    void start(size_t r) {
        CURL* e = curl_.easy_init();
        check(e != nullptr, "external judge: libcurl could not create a transfer");
        Transfer& t = active_[e];  // unordered_map: the address stays put for the write callback
        t.request = r;
        curl_.easy_setopt(e, CURLOPT_URL, endpoint_.c_str());
        curl_.easy_setopt(e, CURLOPT_POSTFIELDS, reqs_[r].body.c_str());
        curl_.easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, curl_off_t(reqs_[r].body.size()));
        curl_.easy_setopt(e, CURLOPT_HTTPHEADER, headers_);
        curl_.easy_setopt(e, CURLOPT_WRITEFUNCTION, append_reply);
        curl_.easy_setopt(e, CURLOPT_WRITEDATA, &t.reply);
        curl_.easy_setopt(e, CURLOPT_TIMEOUT_MS, long(opt_.timeout_s * 1000));
        curl_.easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
        curl_.multi_add_handle(multi_, e);
        reqs_[r].attempts++, counters_.attempts++;
    }

    // A transfer is over: a verdict, a retry after backoff, or a final failure.
    void finish(CURL* e, CURLcode code) {
        long status = 0;
        curl_.easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
        const Transfer t = std::move(active_.at(e));
        active_.erase(e);
        curl_.multi_remove_handle(multi_, e);
        curl_.easy_cleanup(e);
        const Attempt a = read_attempt(code, status, t.reply);
        counters_.timeouts += a.failure == Failure::Timeout, counters_.transport += a.failure == Failure::Transport;
        counters_.http += a.failure == Failure::Http, counters_.bad_replies += a.failure == Failure::BadReply;
        Request& r = reqs_[t.request];
        r.met = a.met, r.error = a.error;
        if (!a.met && a.retryable && r.attempts <= opt_.retries) {
            const double wait = std::min(kMaxBackoffS, opt_.backoff_s * double(1L << std::min(r.attempts - 1, 20)));
            r.not_before = Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(wait));
            waiting_.push_back(t.request);
        } else {
            done_++;
        }
    }

    void queue_due_retries() {
        const Clock::time_point now = Clock::now();
        for (auto it = waiting_.begin(); it != waiting_.end();) {
            if (reqs_[*it].not_before <= now) {
                ready_.push_back(*it);
                it = waiting_.erase(it);
            } else {
                ++it;
            }
        }
    }

    // Milliseconds until the first backed-off request may go again (at most kPollMs).
    int next_wait_ms() const {
        int ms = kPollMs;
        const Clock::time_point now = Clock::now();
        for (size_t r : waiting_)
            ms = std::min<int>(ms, int(std::chrono::duration_cast<std::chrono::milliseconds>(reqs_[r].not_before - now).count()) + 1);
        return std::max(ms, 0);
    }

    const CurlApi& curl_ = curl_api();
    const HttpJudgeOptions& opt_;
    const std::string& endpoint_;
    const curl_slist* headers_;
    std::vector<Request>& reqs_;
    CURLM* multi_;
    std::unordered_map<CURL*, Transfer> active_;
    std::deque<size_t> ready_;
    std::vector<size_t> waiting_;  // backing off
    size_t done_ = 0;
    Counters counters_;
};

}  // namespace

void HttpJudgeOptions::validate() const {
    check(url.rfind("http://", 0) == 0 || url.rfind("https://", 0) == 0,
          "--judge-url \"" + url + "\": expected an http:// or https:// URL (e.g. http://host:8000/v1)");
    check(!model.empty(), "--judge-url needs --judge-model (the name the server serves the judge under)");
    check(concurrency >= 1, "--judge-concurrency must be at least 1");
    check(timeout_s > 0, "--judge-timeout must be positive");
    check(retries >= 0, "--judge-retries must be >= 0");
    check(backoff_s >= 0, "--judge-backoff must be >= 0");
    check(max_tokens >= 1, "--judge-max-tokens must be positive");
}

HttpJudge::HttpJudge(HttpJudgeOptions opt) : opt_(std::move(opt)), tmpl_(GraderTemplate::load(opt_.grader_template)) {
    opt_.validate();
    curl_api();  // a missing libcurl is an error now, not at the first judged batch
    const std::string suffix = "/chat/completions";
    endpoint_ = opt_.url;
    if (endpoint_.size() < suffix.size() || endpoint_.compare(endpoint_.size() - suffix.size(), suffix.size(), suffix) != 0) {
        while (!endpoint_.empty() && endpoint_.back() == '/') endpoint_.pop_back();
        endpoint_ += suffix;
    }
    if (!opt_.api_key_env.empty()) {
        const char* key = std::getenv(opt_.api_key_env.c_str());
        check(key && *key, "--judge-api-key-env " + opt_.api_key_env + ": the environment variable " + opt_.api_key_env +
                               " is not set");
        auth_header_ = std::string("Authorization: Bearer ") + key;
    }
}

std::vector<std::vector<Verdict>> HttpJudge::judge(const std::vector<JudgeItem>& items) {
    std::vector<Request> reqs = make_requests(items, tmpl_, opt_);
    const CurlApi& curl = curl_api();
    std::unique_ptr<curl_slist, SlistDeleter> headers(curl.slist_append(nullptr, "Content-Type: application/json"));
    check(headers != nullptr, "external judge: libcurl could not be initialised");
    curl.slist_append(headers.get(), "Expect:");  // no 100-continue round trip before each body
    if (!auth_header_.empty()) curl.slist_append(headers.get(), auth_header_.c_str());
    const Counters n = RequestLoop(opt_, endpoint_, headers.get(), reqs).run();

    std::vector<std::vector<Verdict>> out(items.size());
    long failed = 0;
    std::string last_error;
    for (size_t i = 0; i < items.size(); i++) out[i].resize(items[i].example->rubrics.size());
    for (const Request& r : reqs) {
        Verdict& v = out[r.item][r.criterion];
        if (r.met) v.met = *r.met, v.p_yes = *r.met ? 1.0f : 0.0f;
        else v.failed = true, failed++, last_error = r.error;
    }
    stats_ = {{"judge_requests", long(reqs.size())}, {"judge_retries", n.attempts - long(reqs.size())},
              {"judge_timeouts", n.timeouts},          {"judge_http_errors", n.http},
              {"judge_transport_errors", n.transport}, {"judge_bad_replies", n.bad_replies}};
    check(reqs.empty() || failed < long(reqs.size()),
          "external judge at " + endpoint_ + ": every one of the " + std::to_string(reqs.size()) +
              " requests failed (up to " + std::to_string(opt_.retries) + " retries each); last error: " + last_error);
    if (failed > 0 && !opt_.quiet)
        std::fprintf(stderr, "rusca: external judge: %ld of %zu criteria got no verdict (masked out of the reward); last error: %s\n",
                     failed, reqs.size(), last_error.c_str());
    return out;
}

}  // namespace rusca
