// rl_test_util.h: what the RL tests of both backends share (tests/test_rl.cpp on the CPU,
// tests/test_cuda_rl.cpp on CUDA): tiny rubric data, metrics reading, and the check that old and
// reference log-probs are taken on the bare prompt, never the scaffolded one.
#pragma once
#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "host/chat.h"
#include "host/fileio.h"
#include "host/model.h"
#include "host/rl.h"
#include "host/rubric.h"
#include "tokenizer/tokenizer.h"

namespace rusca::testutil {

// Short prompts in the shipped tokenizer's world; n_criteria criteria each, none with zero points.
inline std::string write_rubrics(const std::string& path, int n_prompts, int n_criteria) {
    using json = nlohmann::json;
    std::string out;
    const char* names[] = {"Mira", "Tobin", "Lila", "Oren"};
    for (int i = 0; i < n_prompts; i++) {
        json rubrics = json::array();
        for (int c = 0; c < n_criteria; c++)
            rubrics.push_back({{"criterion", "Says fact " + std::to_string(c) + "."}, {"points", c % 3 == 2 ? -2 : c % 5 + 1}});
        json ex = {{"prompt_id", "p" + std::to_string(i)},
                   {"prompt", {{{"role", "user"}, {"content", std::string(names[i % 4]) + " is sick. What helps?"}}}},
                   {"rubrics", rubrics}};
        out += ex.dump() + "\n";
    }
    write_file_atomic(path, out);
    return path;
}

inline std::vector<nlohmann::json> read_metrics(const std::string& path) {
    std::vector<nlohmann::json> rows;
    std::istringstream in(read_file(path));
    for (std::string line; std::getline(in, line);) rows.push_back(nlohmann::json::parse(line));
    return rows;
}

// Metrics minus wall-clock fields and device memory in use, which differ between runs by nature.
inline nlohmann::json without_timings(nlohmann::json j) {
    for (auto it = j.begin(); it != j.end();) {
        const std::string k = it.key();
        bool timing = k.size() > 2 && (k.substr(k.size() - 2) == "_s" || k.find("per_s") != std::string::npos ||
                                       k.find("mfu") != std::string::npos || k.find("memory") != std::string::npos);
        it = timing ? j.erase(it) : std::next(it);
    }
    return j;
}

// Runs one step of `o` (one minibatch, beta > 0, a clip range of 1e-4) and checks that the old and
// reference log-probs were taken where the loss takes the current ones, on the BARE prompt: at
// step 1 the policy, the old policy and the reference are the same weights, so the ratio is 1 to
// rounding (no token clipped) and the KL is 0 to rounding. The control first shows the check can
// fail: on this policy the scaffold system turn moves the response log-probs far more than that.
inline void expect_logprobs_on_bare_prompt(RlOptions o) {
    o.steps = 1, o.updates_per_step = 1, o.loss.beta = 0.01, o.loss.eps_low = o.loss.eps_high = 1e-4;
    o.eval_data = "", o.eval_every = 0;
    // Control: response log-probs after the bare prompt and after a scaffold + the same prompt.
    {
        std::unique_ptr<Model> m = load_model(o.policy, o.device);
        Tokenizer tok(o.tokenizer);
        const RubricExample ex = load_rubric_jsonl(o.data)[0];
        const std::vector<int> prompt = chat_prompt_tokens(tok, ex.prompt);
        const std::vector<int> response = tok.encode("Rest and drink water.");
        auto logprobs = [&](const std::string& system) {
            std::vector<int> seq = chat_prefix_tokens(tok, system, ex.prompt);
            seq.insert(seq.end(), prompt.begin(), prompt.end());
            const int start = int(seq.size());
            seq.insert(seq.end(), response.begin(), response.end());
            GrpoBatch b;
            b.B = b.S = 1, b.T = int(seq.size()), b.tokens = seq, b.target.assign(seq.size(), -1);
            for (size_t j = 0; j < response.size(); j++) b.target[start + j - 1] = response[j];
            std::vector<float> all = m->token_logprobs(b, 1.0), out;
            for (size_t j = 0; j < response.size(); j++) out.push_back(all[start + j - 1]);
            return out;
        };
        const std::vector<float> bare = logprobs(""), scaffolded = logprobs("Points to include: says fact 0.");
        double k3 = 0;
        for (size_t j = 0; j < bare.size(); j++) {
            const double d = double(scaffolded[j]) - bare[j];
            k3 += (std::exp(d) - d - 1) / double(bare.size());
        }
        ASSERT_GT(k3, 1e-4) << "the scaffold barely moves this policy: the check below could not fail";
    }
    run_rl(o);
    const std::vector<nlohmann::json> rows = read_metrics(o.out + "/metrics.jsonl");
    ASSERT_EQ(rows.size(), 1u);
    ASSERT_GT(rows[0]["shown_by_rollout"][0].get<double>(), 0) << "step 1 showed no scaffold: nothing to check";
    ASSERT_GT(rows[0]["reward_std"].get<double>(), 0) << "zero advantages: a wrong old log-prob would move no loss";
    EXPECT_EQ(rows[0]["clip_frac"].get<double>(), 0.0) << "old log-probs taken on another prompt than the loss's";
    EXPECT_EQ(rows[0]["dual_clip_frac"].get<double>(), 0.0);
    EXPECT_LT(rows[0]["kl"].get<double>(), 1e-7) << "reference log-probs taken on another prompt than the loss's";
}

}  // namespace rusca::testutil
