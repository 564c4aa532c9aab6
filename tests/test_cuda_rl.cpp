// test_cuda_rl.cpp: `rusca rl` on the CUDA backend (on the emulator in CI) with tiny policy and judge:
// a few steps with finite metrics and a held-out eval, a loadable checkpoint and an exact resume; the CUDA GRPO loss,
// log-probs and gradients against the CPU backend's on the same rollouts; verdicts, rewards and
// advantages of the same completions identical on both; old and reference log-probs on the bare
// prompt; and the CLI (`rusca-emu rl --device cuda`). Shapes stay tiny: every CUDA thread is a
// fiber on the emulator. Skips without a GPU.
#include <gtest/gtest.h>

#include "gpu_test_util.h"

#ifdef RUSCA_CUDA
#include <sys/wait.h>

#include <cmath>
#include <random>

#include "cuda/common.cuh"  // CUDA_CHECK
#include "host/advantage.h"
#include "host/checkpoint.h"
#include "host/engine.h"
#include "host/model.h"
#include "host/rl.h"
#include "rl_test_util.h"
#include "test_util.h"

using namespace rusca;
using namespace rusca::testutil;
using json = nlohmann::json;

namespace {

// head_dim 64 (what the flash kernels serve), one layer, the shipped 512-token tokenizer.
ModelConfig tiny_config() {
    ModelConfig c = load_config("data/tiny_config.json");
    c.hidden_size = 64, c.intermediate_size = 128, c.num_layers = 1, c.num_heads = 1, c.num_kv_heads = 1;
    c.head_dim = 64;
    return c;
}

std::string write_model(const std::string& dir, uint64_t seed, float std) {
    const ModelConfig c = tiny_config();
    return write_random_model(dir, c, seed, std);
}

struct World {
    TempDir d;
    World() {
        write_model(d.path + "/policy", 1, 0.3f);
        write_model(d.path + "/judge", 2, 0.2f);
        write_rubrics(d.path + "/rubrics.jsonl", 3, 3);
    }
    RlOptions run(const std::string& out) const {
        RlOptions o;
        o.policy = d.path + "/policy", o.judge = d.path + "/judge", o.tokenizer = "data/tokenizer.model";
        o.data = d.path + "/rubrics.jsonl", o.out = d.path + "/" + out, o.device = "cuda";
        o.steps = 2, o.prompts_per_step = 1, o.group = 4, o.updates_per_step = 2, o.max_new_tokens = 6;
        o.lr = 1e-3f, o.loss.beta = 0.01, o.quiet = true;
        o.yes = " A", o.no = " B";  // answer words at which this random judge's verdicts vary (rewards, advantages)
        o.judge_template = "tests/judge_template_short.txt";
        o.eval_data = o.data, o.eval_every = 2, o.eval_limit = 1;  // the held-out eval on the CUDA engines too
        return o;
    }
};

TEST(CudaRl, StepsAreFiniteCheckpointLoadsAndResumeIsExact) {
    SKIP_WITHOUT_GPU();
    World w;
    RlOptions full = w.run("full");
    EXPECT_EQ(run_rl(full).last_step, 2);
    // The held-out eval of the starting policy comes first (step 0), then one line per step.
    auto step_lines = [](std::vector<json> lines) {
        EXPECT_EQ(lines.at(0)["step"], 0);
        EXPECT_TRUE(lines.at(0).contains("eval_score"));
        lines.erase(lines.begin());
        return lines;
    };
    const std::vector<json> a = step_lines(read_metrics(full.out + "/metrics.jsonl"));
    ASSERT_EQ(a.size(), 2u);
    for (const json& m : a)
        for (const char* key : {"reward_mean", "reward_std", "loss", "kl", "clip_frac", "entropy", "grad_norm"}) {
            ASSERT_TRUE(m.contains(key)) << key;
            EXPECT_TRUE(std::isfinite(m[key].get<double>())) << key;
        }
    EXPECT_TRUE(a.back().contains("eval_score"));
    EXPECT_TRUE(std::isfinite(a.back()["eval_score"].get<double>()));
    std::unique_ptr<Model> saved = load_cpu_model(full.out + "/checkpoint-000002");
    std::unique_ptr<Model> start = load_cpu_model(full.policy);
    double moved = 0;
    for (size_t i = 0; i < saved->layout.total; i++) {
        ASSERT_TRUE(std::isfinite(saved->params()[i]));
        moved = std::max(moved, double(std::fabs(saved->params()[i] - start->params()[i])));
    }
    EXPECT_GT(moved, 0) << "two RL steps left the weights unchanged";

    RlOptions part = w.run("part");
    part.stop_at = 1;
    run_rl(part);
    part.stop_at = 0, part.resume = true;
    run_rl(part);
    const std::vector<json> b = step_lines(read_metrics(part.out + "/metrics.jsonl"));
    ASSERT_EQ(b.size(), 2u);
    for (int i = 0; i < 2; i++) EXPECT_EQ(without_timings(a[i]), without_timings(b[i])) << "step " << i + 1;
    EXPECT_EQ(read_file(full.out + "/checkpoint-000002/model.safetensors"),
              read_file(part.out + "/checkpoint-000002/model.safetensors"));
}

// A budget below what the plan adds up is refused before anything is allocated, saying what to change.
TEST(CudaRl, RunThatDoesNotFitIsRefusedByTheMemoryPlan) {
    SKIP_WITHOUT_GPU();
    World w;
    RlOptions o = w.run("small");
    o.memory_budget_gb = 0.01;  // 10 MiB: the cuBLASLt workspaces alone need more
    expect_error([&] { run_rl(o); }, {"does not fit", "--prompts-per-step", "--max-new-tokens"});
    EXPECT_FALSE(file_exists(o.out + "/metrics.jsonl"));
}

TEST(CudaRl, OldAndReferenceLogprobsOnTheBarePrompt) {
    SKIP_WITHOUT_GPU();
    World w;
    expect_logprobs_on_bare_prompt(w.run("bare"));
}

// Two rollouts of random tokens after random prompts, right-padded: the grid layout run_rl builds.
GrpoBatch random_rollouts(int V, uint32_t seed) {
    std::mt19937 gen(seed);
    GrpoBatch b;
    b.B = b.S = 2, b.T = 24;
    const int N = b.B * b.T, prompt[2] = {9, 13}, len[2] = {11, 7};
    b.tokens.assign(N, 0), b.target.assign(N, -1), b.seq.assign(N, 0), b.adv.assign(N, 0), b.mask.assign(N, 0);
    for (int i = 0; i < b.B; i++) {
        for (int t = 0; t < prompt[i] + len[i]; t++) b.tokens[i * b.T + t] = int(gen() % V);
        for (int j = 0; j < len[i]; j++) {
            const int n = i * b.T + prompt[i] + j - 1;
            b.target[n] = b.tokens[n + 1], b.seq[n] = i, b.adv[n] = i ? -0.8f : 1.1f, b.mask[n] = 1;
        }
        b.max_len = std::max(b.max_len, len[i]);
    }
    return b;
}

TEST(CudaRl, LossLogprobsAndGradientsMatchTheCpuBackend) {
    SKIP_WITHOUT_GPU();
    const ModelConfig c = tiny_config();
    std::unique_ptr<Model> cpu = make_cpu_model(c), gpu = make_model(c, "cuda");
    init_params(cpu->layout, cpu->params(), 7, 0.1f);
    std::copy(cpu->params(), cpu->params() + cpu->layout.total, gpu->params());
    gpu->upload_params();
    GrpoBatch b = random_rollouts(c.vocab_size, 3);

    const std::vector<float> lp_cpu = cpu->token_logprobs(b, 0.9), lp_gpu = gpu->token_logprobs(b, 0.9);
    double lp_err = 0;
    for (size_t n = 0; n < lp_cpu.size(); n++) {
        ASSERT_TRUE(std::isfinite(lp_gpu[n])) << n;
        if (b.target[n] < 0) {
            EXPECT_EQ(lp_gpu[n], 0.0f) << "row " << n << " has no response token";
        }
        lp_err = std::max(lp_err, double(std::fabs(lp_gpu[n] - lp_cpu[n])));
    }
    EXPECT_LE(lp_err, 3e-2) << "log-probs through bf16 weights and activations";

    // Old and reference log-probs a little off the current ones, so ratios, clipping and KL all act.
    std::mt19937 gen(4);
    std::normal_distribution<float> noise(0.0f, 0.15f);
    b.old_logp = lp_cpu, b.ref_logp = lp_cpu;
    for (size_t n = 0; n < lp_cpu.size(); n++) {
        if (b.mask[n]) b.old_logp[n] += noise(gen), b.ref_logp[n] += noise(gen);
    }
    cpu::GrpoLossConfig cfg;
    cfg.temperature = 0.9, cfg.beta = 0.05;
    cpu->zero_grad(), gpu->zero_grad();
    const cpu::GrpoLossStats s_cpu = cpu->grpo_loss_backward(b, cfg), s_gpu = gpu->grpo_loss_backward(b, cfg);
    // Loss and KL are smooth in the log-probs: |d loss / d logp| <= |A| rho <= 1.1 x 1.2 per token,
    // |d k3 / d logp| = |exp(ref - logp) - 1| < 1 at this noise; so their error is bounded by lp_err's.
    EXPECT_NEAR(s_gpu.loss, s_cpu.loss, 1.5 * lp_err);
    EXPECT_NEAR(s_gpu.kl_mean, s_cpu.kl_mean, lp_err);
    EXPECT_NEAR(s_gpu.entropy_mean, s_cpu.entropy_mean, 2e-2 * s_cpu.entropy_mean);
    EXPECT_EQ(s_gpu.tokens, s_cpu.tokens);
    const float* g_cpu = cpu->grads();
    const float* g_gpu = gpu->grads();
    for (const ParamInfo& p : cpu->layout.tensors) {
        double err = 0, scale = 1e-12;
        for (size_t i = p.offset; i < p.offset + p.numel; i++) {
            ASSERT_TRUE(std::isfinite(g_gpu[i])) << p.name;
            err = std::max(err, double(std::fabs(g_gpu[i] - g_cpu[i]))), scale = std::max(scale, double(std::fabs(g_cpu[i])));
        }
        EXPECT_GT(scale, 1e-9) << "no gradient reached " << p.name;
        EXPECT_LE(err / scale, 5e-2) << "gradient of " << p.name;  // bf16 activations, as test_cuda_model
    }
}

// The same completions judged by the CPU Judge and the CUDA engine: every verdict whose CPU margin
// is clear of bf16 rounding agrees, and then rewards and group advantages are identical.
// Old and reference log-probs kept on the device (keep_logprobs, what run_rl uses) give the loss and
// gradients of the host round trip bit for bit, and never fill the host arrays; a batch whose
// reference log-probs were not kept is refused when the KL term needs them.
TEST(CudaRl, LogprobsKeptOnTheDeviceEqualTheHostRoundTrip) {
    SKIP_WITHOUT_GPU();
    const ModelConfig c = tiny_config();
    std::unique_ptr<Model> gpu = make_model(c, "cuda"), ref = make_model(c, "cuda", /*frozen=*/true);
    init_params(gpu->layout, gpu->params(), 7, 0.1f);
    init_params(ref->layout, ref->params(), 8, 0.1f);  // another reference, so the KL term acts
    gpu->upload_params(), ref->upload_params();
    cpu::GrpoLossConfig cfg;
    cfg.temperature = 0.9, cfg.beta = 0.05;
    GrpoBatch host = random_rollouts(c.vocab_size, 3), dev = host;
    host.old_logp = gpu->token_logprobs(host, cfg.temperature);
    host.ref_logp = ref->token_logprobs(host, cfg.temperature);
    gpu->keep_logprobs(dev, cfg.temperature, LogpKind::kOld);
    ref->keep_logprobs(dev, cfg.temperature, LogpKind::kReference);
    EXPECT_TRUE(dev.old_logp.empty() && dev.ref_logp.empty()) << "the log-probs visited the host";
    ASSERT_TRUE(dev.device != nullptr);

    gpu->zero_grad();
    const cpu::GrpoLossStats a = gpu->grpo_loss_backward(host, cfg);
    const std::vector<float> grads_host(gpu->grads(), gpu->grads() + gpu->layout.total);
    gpu->zero_grad();
    const cpu::GrpoLossStats b = gpu->grpo_loss_backward(dev, cfg);
    EXPECT_EQ(b.loss, a.loss);
    EXPECT_EQ(b.kl_mean, a.kl_mean);
    EXPECT_GT(a.kl_mean, 0.0);
    EXPECT_EQ(b.entropy_mean, a.entropy_mean);
    EXPECT_EQ(b.tokens, a.tokens);
    const float* g = gpu->grads();
    size_t differ = 0;
    for (size_t i = 0; i < gpu->layout.total; i++) differ += g[i] != grads_host[i];
    EXPECT_EQ(differ, 0u) << "gradients differ from the host round trip's";

    GrpoBatch partial = host;
    partial.old_logp.clear(), partial.ref_logp.clear();
    gpu->keep_logprobs(partial, cfg.temperature, LogpKind::kOld);
    expect_error([&] { gpu->grpo_loss_backward(partial, cfg); }, {"not kept on the device"});
}

TEST(CudaRl, RewardsAndAdvantagesFromTheSameCompletionsAreIdentical) {
    SKIP_WITHOUT_GPU();
    World w;
    std::unique_ptr<Model> judge_model = load_cpu_model(w.d.path + "/judge");
    Tokenizer tok("data/tokenizer.model");
    CpuInference inf(judge_model->config, judge_model->params());
    // Answer words at which this random judge's verdicts differ between replies, all clear of 0.
    Judge judge(inf, tok, JudgeTemplate::load("tests/judge_template_short.txt"), " A", " B");
    const std::vector<RubricExample> data = load_rubric_jsonl(w.d.path + "/rubrics.jsonl");
    const char* replies[] = {"Rest.", "Drink water and rest.", "See a doctor.", "Says fact 0."};
    std::vector<JudgeItem> items;
    for (const RubricExample& ex : data)
        for (const char* r : replies) items.push_back({&ex, r});
    const auto v_cpu = make_engine("cpu", *judge_model)->judge(judge, items);
    const auto v_gpu = make_engine("cuda", *judge_model)->judge(judge, items);
    std::vector<double> r_cpu, r_gpu;
    int clear = 0, total = 0;
    for (size_t i = 0; i < items.size(); i++) {
        std::vector<bool> met_cpu, met_gpu;
        for (size_t k = 0; k < v_cpu[i].size(); k++) {
            EXPECT_NEAR(v_gpu[i][k].margin, v_cpu[i][k].margin, 0.05 + 0.03 * std::fabs(v_cpu[i][k].margin));
            const bool is_clear = std::fabs(v_cpu[i][k].margin) > 0.1;
            clear += is_clear, total++;
            met_cpu.push_back(v_cpu[i][k].met);
            met_gpu.push_back(is_clear ? v_gpu[i][k].met : v_cpu[i][k].met);  // a tie within rounding: either way
        }
        r_cpu.push_back(rubric_reward(*items[i].example, met_cpu));
        r_gpu.push_back(rubric_reward(*items[i].example, met_gpu));
    }
    EXPECT_GE(clear, total * 3 / 4) << "too many verdicts within rounding of the threshold to compare";
    EXPECT_EQ(r_gpu, r_cpu);
    EXPECT_EQ(group_advantages(r_gpu, 4, AdvNorm::GroupStd), group_advantages(r_cpu, 4, AdvNorm::GroupStd));
    double spread = 0;
    for (double r : r_cpu) spread = std::max(spread, std::fabs(r - r_cpu[0]));
    EXPECT_GT(spread, 0) << "every reward equal: advantages all zero, nothing compared";
}

#ifdef RUSCA_EMU
// The command line on the emulator: `rusca-emu rl --device cuda`, two steps, a checkpoint.
TEST(CudaRl, CommandLineRunsOnTheEmulator) {
    World w;
    const std::string out = w.d.path + "/cli";
    const std::string cmd = "build/rusca-emu rl --device cuda --policy " + w.d.path + "/policy --judge " + w.d.path +
                            "/judge --tokenizer data/tokenizer.model --data " + w.d.path +
                            "/rubrics.jsonl --steps 2 --prompts-per-step 1 --group 2 --max-new-tokens 4 --out " + out +
                            " > " + out + ".log 2>&1";
    const int rc = std::system(cmd.c_str());
    ASSERT_TRUE(WIFEXITED(rc) && WEXITSTATUS(rc) == 0) << read_file(out + ".log");
    EXPECT_NE(read_file(out + ".log").find("step    2/2"), std::string::npos) << read_file(out + ".log");
    EXPECT_TRUE(file_exists(out + "/checkpoint-000002/model.safetensors"));
    EXPECT_EQ(read_metrics(out + "/metrics.jsonl").size(), 2u);
}

// `eval` and `forward` take --device cuda as well.
TEST(CudaRl, EvalAndForwardCommandsRunOnTheEmulator) {
    World w;
    const std::string log = w.d.path + "/cmd.log";
    auto run = [&](const std::string& args) {
        const int rc = std::system(("build/rusca-emu " + args + " > " + log + " 2>&1").c_str());
        EXPECT_TRUE(WIFEXITED(rc) && WEXITSTATUS(rc) == 0) << args << "\n" << read_file(log);
        return read_file(log);
    };
    EXPECT_NE(run("eval --device cuda --policy " + w.d.path + "/policy --judge " + w.d.path +
                  "/judge --tokenizer data/tokenizer.model --data " + w.d.path + "/rubrics.jsonl --limit 1 --max-new-tokens 4")
                  .find("eval: 1 prompts x 1 completion, score"),
              std::string::npos);
    EXPECT_NE(run("forward --device cuda --model " + w.d.path + "/policy --tokens \"1 5 9\"").find("position 2: token 9 -> argmax"),
              std::string::npos);
}
#endif

TEST(CudaRl, CudaFaultsAreCudaErrors) {
    SKIP_WITHOUT_GPU();
    try {
        CUDA_CHECK(cudaErrorInvalidValue);
        FAIL() << "no exception";
    } catch (const CudaError& e) {
        EXPECT_NE(std::string(e.what()).find("cudaErrorInvalidValue"), std::string::npos) << e.what();
    }
}

}  // namespace
#endif
