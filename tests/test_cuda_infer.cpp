// test_cuda_infer.cpp: the CUDA inference engine (host/cuda/cuda_infer.h) against the CPU reference
// (CpuInference, generate(), Judge) on small random models with head_dim 64:
//  - every logits row the GPU sampler saw equals the CPU's teacher-forced logits within bf16
//    tolerance, and the CPU sampler twin on those very logits draws the GPU's token with the same
//    counter (seed, rollout, step);
//  - greedy rollouts are the CPU's greedy rollouts (a different token only at a near-tie of the CPU
//    logits), with shared prefixes, ragged and long (> 256-key) prompts, stop tokens;
//  - sampling is reproducible, CUDA graphs give exactly the plain-launch results, batch sizes change
//    as rollouts stop;
//  - judge margins equal the CPU judge's within bf16 tolerance, verdicts agree away from 0.
// bf16 flips near-ties (a CPU experiment with only the weights rounded to bf16 flipped ~2% of the
// greedy argmaxes of these models), so token sequences are checked by teacher forcing: walk the
// GPU's tokens through the CPU model and require each to be the CPU argmax or within tolerance of it.
// Skips without a GPU.
#include <gtest/gtest.h>

#include "gpu_test_util.h"

#ifdef RUSCA_CUDA
#include <algorithm>
#include <cmath>
#include <random>

#include "host/cpu/infer.h"
#include "host/cpu/sampler.h"
#include "host/cuda/cuda_infer.h"
#include "host/error.h"
#include "host/generate.h"
#include "host/judge.h"
#include "host/model.h"

using namespace rusca;

namespace {

ModelConfig config_for(Family f, int vocab = 256) {
    ModelConfig c;
    c.family = f;
    c.model_type = f == Family::Llama ? "llama" : f == Family::Qwen2 ? "qwen2" : "qwen3";
    c.vocab_size = vocab, c.hidden_size = 128, c.intermediate_size = 256, c.num_layers = 2;
    c.head_dim = 64, c.max_position_embeddings = 1024;
    // Llama: GQA 2:1; Qwen2: MHA with QKV bias, tied; Qwen3: 4 query heads over 2 KV heads (q_dim 256 != hidden)
    c.num_heads = f == Family::Qwen3 ? 4 : 2, c.num_kv_heads = f == Family::Llama ? 1 : 2;
    c.rope_theta = f == Family::Llama ? 10000.0f : 1e6f;
    c.qkv_bias = f == Family::Qwen2, c.qk_norm = f == Family::Qwen3, c.tie_word_embeddings = f == Family::Qwen2;
    return c;
}

std::vector<float> random_params(const ModelConfig& c, uint64_t seed) {
    ParamLayout layout(c);
    std::vector<float> p(layout.total);
    init_params(layout, p.data(), seed, 0.1f);  // std 0.1: logits spread over a few units, not all tied
    return p;
}

// fp32 weights on the host and the CPU reference over them (the engine copies them to bf16).
struct Models {
    ModelConfig config;
    std::vector<float> params;
    CpuInference cpu;
    Models(const ModelConfig& c, uint64_t seed)
        : config(c), params(random_params(c, seed)), cpu(config, params.data()) {}
};

std::vector<int> random_tokens(std::mt19937& gen, int n, int V) {
    std::vector<int> t(n);
    for (int& x : t) x = int(gen() % uint32_t(V));
    return t;
}

double max_abs(const std::vector<float>& v) {
    double m = 0;
    for (float x : v) m = std::max(m, double(std::fabs(x)));
    return m;
}

// Tolerance for a logit (or logit difference) of a row whose largest |logit| is `scale`: bf16
// activations and weights, a few percent of the scale, plus a floor.
double logit_tol(double scale) { return 0.04 * scale + 0.02; }

struct Walk {
    int steps = 0, near_ties = 0;
    double worst_logit_err = 0;  // max |gpu - cpu| / tolerance over the rows compared
};

// Teacher-forces `comp` (a GPU completion after `full`) through the CPU model and checks, step by
// step: the GPU's logits row (if traced) against the CPU's; greedy: the token is the CPU argmax or
// a near-tie; the logprob against the CPU's; stop-token and length semantics.
void walk(const CpuInference& cpu, const std::vector<int>& full, const Completion& comp, const GenerateOptions& opt,
          const std::vector<std::vector<float>>* gpu_logits, Walk& w, const std::string& what) {
    const int V = cpu.config.vocab_size;
    KvCache cache;
    std::vector<float> hidden(cpu.config.hidden_size), logits(V);
    cpu.extend(nullptr, cache, full.data(), int(full.size()), hidden.data(), logits.data());
    ASSERT_EQ(comp.tokens.size(), comp.logprobs.size()) << what;
    ASSERT_GE(comp.tokens.size(), 1u) << what;
    if (gpu_logits) {
        ASSERT_EQ(gpu_logits->size(), comp.tokens.size()) << what;
    }
    const bool greedy = opt.sampling.temperature == 0;
    const double T = greedy ? 1.0 : opt.sampling.temperature;
    for (size_t s = 0; s < comp.tokens.size(); s++) {
        const int tok = comp.tokens[s];
        ASSERT_TRUE(tok >= 0 && tok < V) << what << " step " << s;
        const double tol = logit_tol(max_abs(logits));
        if (gpu_logits) {
            const std::vector<float>& g = (*gpu_logits)[s];
            ASSERT_EQ(int(g.size()), V);
            double err = 0;
            for (int v = 0; v < V; v++) {
                ASSERT_FALSE(std::isnan(g[v])) << what << " step " << s;
                err = std::max(err, double(std::fabs(g[v] - logits[v])));
            }
            EXPECT_LE(err, tol) << what << " step " << s << ": GPU logits vs CPU";
            w.worst_logit_err = std::max(w.worst_logit_err, err / tol);
        }
        if (greedy) {
            const int best = int(std::max_element(logits.begin(), logits.end()) - logits.begin());
            if (tok != best) {
                w.near_ties++;
                EXPECT_LE(logits[best] - logits[tok], 2 * tol) << what << " step " << s << ": not a near-tie";
            }
        }
        double mx = -1e300, sum = 0;  // CPU log softmax(l / T)[tok], the unfiltered distribution
        for (int v = 0; v < V; v++) mx = std::max(mx, logits[v] / T);
        for (int v = 0; v < V; v++) sum += std::exp(logits[v] / T - mx);
        const double lp = logits[tok] / T - mx - std::log(sum);
        EXPECT_NEAR(comp.logprobs[s], lp, 2 * tol / T) << what << " step " << s << ": logprob";
        const bool stop = std::find(opt.stop_tokens.begin(), opt.stop_tokens.end(), tok) != opt.stop_tokens.end();
        if (stop) {
            EXPECT_EQ(s + 1, comp.tokens.size()) << what << ": tokens after a stop token";
            EXPECT_TRUE(comp.stopped) << what;
        }
        w.steps++;
        if (s + 1 < comp.tokens.size()) cpu.extend(nullptr, cache, &tok, 1, hidden.data(), logits.data());
    }
    if (!comp.stopped) {
        EXPECT_EQ(int(comp.tokens.size()), opt.max_new_tokens) << what;
    }
}

std::vector<int> full_prefix(const PromptGroup& g, size_t i) {
    std::vector<int> full = g.prefixes[i];
    full.insert(full.end(), g.prompt.begin(), g.prompt.end());
    return full;
}

// Prompt groups with shared full prefixes (rollouts 0/1 and 2/3 of group 0), ragged lengths, a prompt
// longer than one 256-key attention split, a one-token prompt, a group without rollouts, and an
// empty prompt whose context is all prefix (Llama 2's one-turn prompts).
std::vector<PromptGroup> mixed_groups(int V, uint32_t seed) {
    std::mt19937 gen(seed);
    std::vector<PromptGroup> g(6);
    g[0] = {random_tokens(gen, 7, V), {{}, {}, {5, 9}, {5, 9}}};
    g[1] = {random_tokens(gen, 300, V), {{}, {17}}};
    g[2] = {random_tokens(gen, 1, V), {{}}};
    g[3] = {random_tokens(gen, 33, V), {}};
    g[4] = {random_tokens(gen, 33, V), {{1, 2, 3}, {}}};
    g[5] = {{}, {random_tokens(gen, 9, V), random_tokens(gen, 4, V)}};
    return g;
}

void expect_same(const std::vector<std::vector<Completion>>& a, const std::vector<std::vector<Completion>>& b,
                 const std::string& what) {
    ASSERT_EQ(a.size(), b.size()) << what;
    for (size_t g = 0; g < a.size(); g++) {
        ASSERT_EQ(a[g].size(), b[g].size()) << what;
        for (size_t i = 0; i < a[g].size(); i++) {
            EXPECT_EQ(a[g][i].tokens, b[g][i].tokens) << what << " group " << g << " rollout " << i;
            EXPECT_EQ(a[g][i].logprobs, b[g][i].logprobs) << what << " group " << g << " rollout " << i;
            EXPECT_EQ(a[g][i].stopped, b[g][i].stopped) << what << " group " << g << " rollout " << i;
        }
    }
}

struct GreedyCase {
    Family family;
    bool flash_prefill;
    int prefill_chunk_rows;
};

class CudaInferGreedy : public ::testing::TestWithParam<GreedyCase> {};

TEST_P(CudaInferGreedy, MatchesCpuGenerateLogitsAndTokens) {
    SKIP_WITHOUT_GPU();
    const GreedyCase gc = GetParam();
    Models m(config_for(gc.family), 5);
    CudaEngineOptions eo;
    eo.flash_prefill = gc.flash_prefill, eo.prefill_chunk_rows = gc.prefill_chunk_rows;
    CudaEngine engine(m.config, m.params.data(), eo);
    const std::vector<PromptGroup> groups = mixed_groups(m.config.vocab_size, 1);
    GenerateOptions opt;
    opt.sampling.temperature = 0;
    opt.max_new_tokens = 24;
    // Stop tokens the CPU's greedy rollouts actually emit, so some rollouts stop early.
    auto probe = generate(m.cpu, groups, opt);
    opt.stop_tokens = {probe[0][0].tokens[4], probe[1][1].tokens[9]};
    const auto cpu = generate(m.cpu, groups, opt);

    // Plain launches with every logits row recorded, then the normal path (CUDA graphs).
    std::vector<std::vector<std::vector<float>>> trace;
    engine.trace_logits(&trace);
    const auto traced = engine.generate(groups, opt);
    engine.trace_logits(nullptr);
    const auto gpu = engine.generate(groups, opt);
    expect_same(gpu, traced, "graphs vs plain launches");
    EXPECT_FALSE(engine.stats().graphs_failed);

    Walk w;
    int r = 0, identical = 0, rollouts = 0;
    for (size_t g = 0; g < groups.size(); g++) {
        ASSERT_EQ(gpu[g].size(), groups[g].prefixes.size());
        for (size_t i = 0; i < groups[g].prefixes.size(); i++, r++) {
            const std::string what = "group " + std::to_string(g) + " rollout " + std::to_string(i);
            const int ties_before = w.near_ties;
            walk(m.cpu, full_prefix(groups[g], i), gpu[g][i], opt, &trace[r], w, what);
            rollouts++;
            if (w.near_ties == ties_before) {  // no near-tie: exactly the CPU's rollout
                EXPECT_EQ(gpu[g][i].tokens, cpu[g][i].tokens) << what;
                EXPECT_EQ(gpu[g][i].stopped, cpu[g][i].stopped) << what;
                identical += gpu[g][i].tokens == cpu[g][i].tokens;
            }
        }
    }
    std::printf("[ greedy ] %d of %d rollouts identical to the CPU, %d near-ties in %d steps, worst logit error "
                "%.2f of the tolerance\n", identical, rollouts, w.near_ties, w.steps, w.worst_logit_err);
    EXPECT_LE(w.near_ties * 10, w.steps) << "too many near-ties: something is off beyond bf16 rounding";
    EXPECT_TRUE(cpu[0][0].stopped) << "the probe's stop token should stop the CPU's rollout 0";
    EXPECT_EQ(gpu[0][0].tokens, gpu[0][1].tokens) << "two rollouts of one shared prefix decode alike (greedy)";
}

INSTANTIATE_TEST_SUITE_P(Cuda, CudaInferGreedy,
                         ::testing::Values(GreedyCase{Family::Llama, true, 8192}, GreedyCase{Family::Qwen2, true, 8192},
                                           GreedyCase{Family::Qwen3, true, 8192},
                                           GreedyCase{Family::Qwen3, false, 16},  // kv-attention prefill, many chunks
                                           GreedyCase{Family::Llama, false, 40}));

struct SampledCase {
    Family family;
    int vocab;
    cpu::SamplingParams sampling;
};

class CudaInferSampled : public ::testing::TestWithParam<SampledCase> {};

TEST_P(CudaInferSampled, ReproducibleGraphsExactAndCountersMatchTheCpuSampler) {
    SKIP_WITHOUT_GPU();
    const SampledCase sc = GetParam();
    Models m(config_for(sc.family, sc.vocab), 9);
    const int V = m.config.vocab_size;
    std::mt19937 gen(3);
    std::vector<PromptGroup> groups = {{random_tokens(gen, 12, V), std::vector<std::vector<int>>(8)},
                                       {random_tokens(gen, 40, V), {{}, {3}, {3}, {}, {7, 8}}}};
    GenerateOptions opt;
    opt.sampling = sc.sampling;
    opt.max_new_tokens = 40;
    opt.seed = 11;
    CudaEngine engine(m.config, m.params.data());
    // Without stop tokens the batch never changes: step 0 of the decode runs plain launches, step 1
    // captures the graph, every later step replays it.
    auto probe = engine.generate(groups, opt);
    EXPECT_FALSE(engine.stats().graphs_failed);
    EXPECT_EQ(engine.stats().graphs_captured, 1);
    EXPECT_EQ(engine.stats().graph_launches, opt.max_new_tokens - 2);
    // Stop tokens drawn early by a few rollouts of that run: batch sizes shrink during decode.
    opt.stop_tokens = {probe[0][0].tokens[3], probe[0][2].tokens[6], probe[1][1].tokens[12]};

    const auto a = engine.generate(groups, opt);
    const CudaEngineStats stats = engine.stats();
    const auto b = engine.generate(groups, opt);
    expect_same(a, b, "same seed");
    EXPECT_FALSE(stats.graphs_failed);
    std::printf("[ sampled ] %ld decode steps: %ld in graphs (%d captured), %ld plain\n", stats.decode_steps,
                stats.graph_launches, stats.graphs_captured, stats.eager_steps);

    CudaEngineOptions plain;
    plain.cuda_graphs = false;
    CudaEngine engine_plain(m.config, m.params.data(), plain);
    expect_same(a, engine_plain.generate(groups, opt), "CUDA graphs vs plain launches");

    // The traced run (plain launches) is the same run; on its logits the CPU sampler twin, with
    // counter (seed, r, step), draws exactly the GPU's tokens and logprobs.
    std::vector<std::vector<std::vector<float>>> trace;
    engine.trace_logits(&trace);
    const auto t = engine.generate(groups, opt);
    engine.trace_logits(nullptr);
    expect_same(a, t, "traced run");
    Walk w;
    int r = 0, stopped = 0;
    for (size_t g = 0; g < groups.size(); g++)
        for (size_t i = 0; i < groups[g].prefixes.size(); i++, r++) {
            const Completion& comp = a[g][i];
            stopped += comp.stopped;
            ASSERT_EQ(trace[r].size(), comp.tokens.size());
            for (size_t s = 0; s < comp.tokens.size(); s++) {
                float lp = 0;
                const int tok = cpu::sample_token(trace[r][s].data(), V, opt.sampling, opt.seed, uint64_t(r),
                                                  uint64_t(s), &lp);
                EXPECT_EQ(tok, comp.tokens[s]) << "rollout " << r << " step " << s;
                EXPECT_NEAR(lp, comp.logprobs[s], 1e-4) << "rollout " << r << " step " << s;
            }
            walk(m.cpu, full_prefix(groups[g], i), comp, opt, &trace[r], w, "rollout " + std::to_string(r));
        }
    EXPECT_GE(stopped, 2) << "the stop tokens should end some rollouts early";

    opt.seed = 12;
    const auto c = engine.generate(groups, opt);
    EXPECT_NE(a[0][0].tokens, c[0][0].tokens) << "another seed draws other samples";
    EXPECT_FALSE(a[0][0].tokens == a[0][1].tokens && a[0][1].tokens == a[0][2].tokens)
        << "rollouts over one shared prefill draw different samples";
}

cpu::SamplingParams plain_t1() { return cpu::SamplingParams{}; }
cpu::SamplingParams filtered() {
    cpu::SamplingParams p;
    p.temperature = 0.8f, p.min_p = 0.01f, p.top_k = 50, p.top_p = 0.9f;
    return p;
}

// vocab 5000 > 4096: the sampler's sorted path with its workspace, inside the captured graph.
INSTANTIATE_TEST_SUITE_P(Cuda, CudaInferSampled,
                         ::testing::Values(SampledCase{Family::Llama, 256, plain_t1()},
                                           SampledCase{Family::Qwen3, 256, filtered()},
                                           SampledCase{Family::Qwen2, 5000, filtered()}));

TEST(CudaInfer, EngineReuseAcrossCallsAndEdgeCases) {
    SKIP_WITHOUT_GPU();
    Models m(config_for(Family::Llama), 21);
    const int V = m.config.vocab_size;
    std::mt19937 gen(5);
    const std::vector<PromptGroup> small = {{random_tokens(gen, 5, V), {{}, {}}}};
    std::vector<PromptGroup> big;
    for (int g = 0; g < 6; g++) big.push_back({random_tokens(gen, 20 + 50 * g, V), std::vector<std::vector<int>>(4)});
    GenerateOptions opt;
    opt.max_new_tokens = 10;
    opt.seed = 1;
    CudaEngine engine(m.config, m.params.data());
    const auto first = engine.generate(small, opt);
    engine.generate(big, opt);  // buffers grow
    expect_same(first, engine.generate(small, opt), "after a bigger call");
    CudaEngine fresh(m.config, m.params.data());
    expect_same(fresh.generate(big, opt), engine.generate(big, opt), "fresh engine");

    opt.max_new_tokens = 1;  // no decode step at all
    auto one = engine.generate(small, opt);
    ASSERT_EQ(one[0][0].tokens.size(), 1u);
    EXPECT_EQ(engine.stats().decode_steps, 0);
    EXPECT_TRUE(engine.generate({}, opt).empty());
    EXPECT_TRUE(engine.generate({{{1, 2}, {}}}, opt)[0].empty());
    opt.max_new_tokens = m.config.max_position_embeddings;
    EXPECT_THROW(engine.generate(small, opt), Error);
    opt.max_new_tokens = 4;
    EXPECT_THROW(engine.generate({{{1, V}, {{}}}}, opt), Error);
    EXPECT_THROW(engine.generate({{{}, {{}}}}, opt), Error);
}

// Token-level judging against CpuInference: long prefixes (> 256 keys), ragged suffixes, and engine
// options that force several item chunks and feeds.
TEST(CudaInfer, JudgeTokensMatchCpuMargins) {
    SKIP_WITHOUT_GPU();
    Models m(config_for(Family::Qwen3), 31);
    const int V = m.config.vocab_size, yes = 7, no = 8;
    std::mt19937 gen(2);
    std::vector<JudgeTokens> items;
    for (int len : {400, 37, 260, 37, 3}) {
        JudgeTokens it;
        it.prefix = random_tokens(gen, len, V);
        for (int s : {1, 5, 5, 12, 40}) it.suffixes.push_back(random_tokens(gen, s, V));
        items.push_back(it);
    }
    items.push_back({random_tokens(gen, 9, V), {}});  // an item with no criteria
    std::vector<std::vector<double>> ref(items.size());
    double scale = 0;
    for (size_t i = 0; i < items.size(); i++) {
        KvCache shared;
        std::vector<float> h(m.config.hidden_size), logits(V);
        m.cpu.extend(nullptr, shared, items[i].prefix.data(), int(items[i].prefix.size()), h.data(), nullptr);
        for (const std::vector<int>& s : items[i].suffixes) {
            KvCache own;
            m.cpu.extend(&shared, own, s.data(), int(s.size()), h.data(), logits.data());
            ref[i].push_back(double(logits[yes]) - logits[no]);
            scale = std::max(scale, max_abs(logits));
        }
    }
    const double tol = logit_tol(scale);
    CudaEngineOptions small;
    small.prefill_chunk_rows = 64, small.judge_prefix_rows = 300;
    for (const CudaEngineOptions& eo : {CudaEngineOptions{}, small}) {
        CudaEngine engine(m.config, m.params.data(), eo);
        auto v = engine.judge(items, yes, no);
        ASSERT_EQ(v.size(), items.size());
        for (size_t i = 0; i < items.size(); i++) {
            ASSERT_EQ(v[i].size(), items[i].suffixes.size());
            for (size_t k = 0; k < v[i].size(); k++) {
                EXPECT_NEAR(v[i][k].margin, ref[i][k], tol) << "item " << i << " criterion " << k;
                EXPECT_NEAR(v[i][k].p_yes, 1 / (1 + std::exp(-double(v[i][k].margin))), 1e-6);
                EXPECT_EQ(v[i][k].met, v[i][k].margin > 0);
                if (std::fabs(ref[i][k]) > 2 * tol) {
                    EXPECT_EQ(v[i][k].met, ref[i][k] > 0) << "item " << i;
                }
            }
        }
        EXPECT_THROW(engine.judge(items, yes, yes), Error);
        EXPECT_THROW(engine.judge(items, yes, V), Error);
    }
}

// The full judge path (template, tokenizer, answer words) against the CPU Judge.
TEST(CudaInfer, JudgeMatchesTheCpuJudge) {
    SKIP_WITHOUT_GPU();
    Tokenizer tok("data/tokenizer.model");
    Models m(config_for(Family::Llama, tok.vocab_size()), 11);
    Judge judge(m.cpu, tok, JudgeTemplate::load("tests/judge_template_short.txt"));  // the long reply fits 1024 positions
    RubricExample ex;
    ex.prompt_id = "t-1";
    ex.prompt = {{"user", "Mira has a fever. What should she do?"}};
    ex.rubrics = {{"Says to drink water.", 5, {}}, {"Says to rest.", 3, {}}, {"Recommends seeing a doctor.", 4, {}},
                  {"Suggests skipping meals.", -6, {}}};
    std::string long_reply;
    for (int i = 0; i < 40; i++) long_reply += "She should drink water and rest, and see a doctor if it lasts. ";
    std::vector<JudgeItem> items = {{&ex, "She should drink water and rest."}, {&ex, "Skip meals."}, {&ex, long_reply}};
    ASSERT_GT(judge.prefix_tokens(items[2]).size(), 256u);
    const auto cpu = judge.judge(items);
    double scale = 0;  // the size of this model's logits (the margin is a difference of two of them)
    for (const JudgeItem& item : items) {
        std::vector<int> t = judge.prefix_tokens(item), s = judge.suffix_tokens(ex.rubrics[0]);
        t.insert(t.end(), s.begin(), s.end());
        KvCache cache;
        std::vector<float> h(m.config.hidden_size), logits(m.config.vocab_size);
        m.cpu.extend(nullptr, cache, t.data(), int(t.size()), h.data(), logits.data());
        scale = std::max(scale, max_abs(logits));
    }
    for (auto& v : cpu)
        for (const Verdict& x : v) scale = std::max(scale, double(std::fabs(x.margin)));
    const double tol = logit_tol(scale);
    CudaEngine engine(m.config, m.params.data());
    const auto gpu = cuda_judge(engine, judge, items);
    ASSERT_EQ(gpu.size(), cpu.size());
    for (size_t i = 0; i < cpu.size(); i++) {
        ASSERT_EQ(gpu[i].size(), cpu[i].size());
        for (size_t k = 0; k < cpu[i].size(); k++) {
            EXPECT_NEAR(gpu[i][k].margin, cpu[i][k].margin, tol) << "item " << i << " criterion " << k;
            if (std::fabs(cpu[i][k].margin) > 2 * tol) {
                EXPECT_EQ(gpu[i][k].met, cpu[i][k].met) << i << "," << k;
            }
        }
    }
}

// A KV pool reserved at construction (what the memory plan gives the RL rollout engine) is there
// before the first call, serves calls that fit in it without growing, and changes no result; a call
// that needs more still grows it.
TEST(CudaInfer, ReservedKvPoolServesCallsWithoutGrowing) {
    SKIP_WITHOUT_GPU();
    Models m(config_for(Family::Llama), 21);
    const int V = m.config.vocab_size;
    std::mt19937 gen(6);
    std::vector<PromptGroup> groups;
    for (int g = 0; g < 3; g++) groups.push_back({random_tokens(gen, 20 + 30 * g, V), std::vector<std::vector<int>>(2)});
    GenerateOptions opt;
    opt.max_new_tokens = 8;
    opt.seed = 3;
    const size_t row_bytes = 2 * size_t(m.config.num_layers) * m.config.kv_dim() * 2;  // K and V, bf16
    CudaEngineOptions eo;
    eo.reserve_kv_pool_bytes = 400 * row_bytes;  // > 20 + 50 + 80 prefix rows + 6 slots of 8
    eo.max_kv_pool_bytes = 1000 * row_bytes;
    CudaEngine reserved(m.config, m.params.data(), eo), plain(m.config, m.params.data());
    EXPECT_EQ(reserved.kv_pool_capacity_bytes(), eo.reserve_kv_pool_bytes);
    EXPECT_EQ(plain.kv_pool_capacity_bytes(), 0u);
    expect_same(reserved.generate(groups, opt), plain.generate(groups, opt), "reserved pool");
    EXPECT_EQ(reserved.kv_pool_capacity_bytes(), eo.reserve_kv_pool_bytes) << "the pool grew";
    EXPECT_LT(reserved.stats().kv_pool_bytes, eo.reserve_kv_pool_bytes);

    groups.push_back({random_tokens(gen, 500, V), std::vector<std::vector<int>>(1)});  // needs more than the reserve
    expect_same(reserved.generate(groups, opt), plain.generate(groups, opt), "grown pool");
    EXPECT_GT(reserved.kv_pool_capacity_bytes(), eo.reserve_kv_pool_bytes);

    eo.reserve_kv_pool_bytes = eo.max_kv_pool_bytes + 1;
    EXPECT_THROW(CudaEngine(m.config, m.params.data(), eo), Error);
}

// Data parallel: a rank's share of a step's groups, generated with rollout_base, samples on the GPU
// exactly what the whole step's call gives those groups (their rollouts keep their RNG ids).
TEST(CudaInfer, RolloutBaseKeepsTheStepsSampling) {
    SKIP_WITHOUT_GPU();
    Models m(config_for(Family::Qwen2), 17);
    std::mt19937 gen(4);
    const int V = m.config.vocab_size;
    std::vector<PromptGroup> all;
    for (int g = 0; g < 3; g++) all.push_back({random_tokens(gen, 6 + 4 * g, V), std::vector<std::vector<int>>(3)});
    GenerateOptions opt;
    opt.max_new_tokens = 6, opt.seed = 5;
    CudaEngine engine(m.config, m.params.data());
    const auto whole = engine.generate(all, opt);
    GenerateOptions share = opt;
    share.rollout_base = {0, 6};  // groups 0 and 2 (rank 0 of 2): rollouts 0-2 and 6-8 of the step
    const auto part = engine.generate({all[0], all[2]}, share);
    expect_same({whole[0], whole[2]}, part, "a rank's share");
    const auto unbased = engine.generate({all[2]}, opt);  // the control: numbered from 0 it samples otherwise
    EXPECT_NE(unbased[0][0].tokens, whole[2][0].tokens);
}

}  // namespace
#endif
