// test_infer.cpp: the KV-cache forward (prefill, decode, shared prefix) gives the logits of a
// full forward over the same tokens, for every family.
#include <gtest/gtest.h>

#include <cmath>

#include "host/checkpoint.h"
#include "host/cpu/infer.h"
#include "host/model.h"

using namespace rusca;

namespace {

class Infer : public ::testing::TestWithParam<std::string> {};

TEST_P(Infer, CachedDecodeMatchesFullForward) {
    const std::string dir = "tests/golden/" + GetParam();
    ModelConfig c = load_config(dir + "/config.json");
    std::unique_ptr<Model> full = make_cpu_model(c);
    load_params(dir, full->layout, full->params());
    const int T = 9, V = c.vocab_size, C = c.hidden_size;
    std::vector<int> tokens(T);
    for (int t = 0; t < T; t++) tokens[t] = (t * 37 + 5) % V;
    full->forward(tokens.data(), nullptr, 1, T);
    std::vector<float> want = full->logits();

    CpuInference inf(c, full->params());
    const int Lp = 4;  // a shared prefix of 4 tokens, a 2-token chunk, then one token at a time
    KvCache prefix, own;
    std::vector<float> h(C), logits(V);
    inf.extend(nullptr, prefix, tokens.data(), Lp, h.data(), logits.data());
    auto expect_row = [&](int t) {
        double err = 0, scale = 0;
        for (int v = 0; v < V; v++)
            err = std::max(err, double(std::fabs(logits[v] - want[size_t(t) * V + v]))),
            scale = std::max(scale, double(std::fabs(want[size_t(t) * V + v])));
        EXPECT_LE(err, 1e-5 * scale) << "position " << t;
    };
    expect_row(Lp - 1);
    inf.extend(&prefix, own, tokens.data() + Lp, 2, h.data(), logits.data());
    expect_row(Lp + 1);
    for (int t = Lp + 2; t < T; t++) {
        inf.extend(&prefix, own, tokens.data() + t, 1, h.data(), logits.data());
        expect_row(t);
    }
    EXPECT_EQ(own.len, T - Lp);
    EXPECT_EQ(prefix.len, Lp);  // the shared prefix is never written after its prefill
}

INSTANTIATE_TEST_SUITE_P(Families, Infer, ::testing::Values("llama", "qwen2", "qwen3"));

}  // namespace
