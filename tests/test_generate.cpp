// test_generate.cpp: rollouts over shared prefills: greedy equals a naive full-forward argmax loop,
// stop tokens and length limits, seeded reproducibility, shared prefixes.
#include <gtest/gtest.h>

#include <algorithm>

#include "host/checkpoint.h"
#include "host/error.h"
#include "host/generate.h"
#include "host/model.h"

using namespace rusca;

namespace {

struct Fixture {
    ModelConfig config = load_config("tests/golden/qwen3/config.json");
    std::unique_ptr<Model> model = make_cpu_model(config);
    Fixture() { load_params("tests/golden/qwen3", model->layout, model->params()); }
    // Greedy decoding by re-running the whole sequence each step: slow and obviously right.
    std::vector<int> naive_greedy(std::vector<int> seq, int n) {
        std::vector<int> out;
        const int V = config.vocab_size;
        for (int i = 0; i < n; i++) {
            model->forward(seq.data(), nullptr, 1, int(seq.size()));
            std::vector<float> logits = model->logits();
            const float* last = &logits[(seq.size() - 1) * V];
            int tok = int(std::max_element(last, last + V) - last);
            out.push_back(tok), seq.push_back(tok);
        }
        return out;
    }
};

TEST(Generate, GreedyMatchesNaiveFullForward) {
    Fixture f;
    CpuInference inf(f.config, f.model->params());
    GenerateOptions opt;
    opt.sampling.temperature = 0;
    opt.max_new_tokens = 6;
    std::vector<PromptGroup> groups = {{{3, 14, 15, 92}, {{}, {65, 35}}}, {{27, 18}, {{8}}}};
    auto out = generate(inf, groups, opt);
    EXPECT_EQ(out[0][0].tokens, f.naive_greedy({3, 14, 15, 92}, 6));
    EXPECT_EQ(out[0][1].tokens, f.naive_greedy({65, 35, 3, 14, 15, 92}, 6));
    EXPECT_EQ(out[1][0].tokens, f.naive_greedy({8, 27, 18}, 6));
    EXPECT_FALSE(out[0][0].stopped);
    // Llama 2 keeps a one-turn prompt wholly in the prefix: an empty prompt is fine, an empty context is not.
    auto in_prefix = generate(inf, {{{}, {{3, 14, 15, 92}, {65, 35, 3, 14, 15, 92}}}}, opt);
    EXPECT_EQ(in_prefix[0][0].tokens, out[0][0].tokens);
    EXPECT_EQ(in_prefix[0][1].tokens, out[0][1].tokens);
    EXPECT_THROW(generate(inf, {{{}, {{}}}}, opt), Error);
}

TEST(Generate, StopsOnStopTokenAndKeepsIt) {
    Fixture f;
    CpuInference inf(f.config, f.model->params());
    GenerateOptions opt;
    opt.sampling.temperature = 0;
    opt.max_new_tokens = 6;
    std::vector<int> greedy = f.naive_greedy({3, 14, 15}, 6);
    opt.stop_tokens = {greedy[2]};
    auto out = generate(inf, {{{3, 14, 15}, {{}}}}, opt);
    const size_t first_stop = std::find(greedy.begin(), greedy.end(), greedy[2]) - greedy.begin();
    EXPECT_TRUE(out[0][0].stopped);
    EXPECT_EQ(out[0][0].tokens, std::vector<int>(greedy.begin(), greedy.begin() + first_stop + 1));
}

TEST(Generate, SeedReproducesSamplesAndSharedPrefixesDiffer) {
    Fixture f;
    CpuInference inf(f.config, f.model->params());
    GenerateOptions opt;
    opt.max_new_tokens = 12;
    opt.seed = 5;
    std::vector<PromptGroup> groups = {{{1, 2, 3}, {{}, {}, {}, {}}}};
    auto a = generate(inf, groups, opt), b = generate(inf, groups, opt);
    for (int i = 0; i < 4; i++) {
        EXPECT_EQ(a[0][i].tokens, b[0][i].tokens);
        EXPECT_EQ(a[0][i].logprobs, b[0][i].logprobs);
        for (float lp : a[0][i].logprobs) EXPECT_LE(lp, 0.0f);
    }
    // four rollouts over one shared prefill still draw different samples
    EXPECT_FALSE(a[0][0].tokens == a[0][1].tokens && a[0][1].tokens == a[0][2].tokens && a[0][2].tokens == a[0][3].tokens);
    opt.seed = 6;
    auto c = generate(inf, groups, opt);
    EXPECT_NE(a[0][0].tokens, c[0][0].tokens);
}

TEST(Generate, RejectsPromptsThatDoNotFit) {
    Fixture f;
    CpuInference inf(f.config, f.model->params());
    GenerateOptions opt;
    opt.max_new_tokens = f.config.max_position_embeddings;
    EXPECT_THROW(generate(inf, {{{1, 2}, {{}}}}, opt), Error);
    opt.max_new_tokens = 4;
    EXPECT_THROW(generate(inf, {{{1, 999}, {{}}}}, opt), Error);
}

}  // namespace
