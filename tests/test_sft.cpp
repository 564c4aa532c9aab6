// test_sft.cpp: the supervised training loop: loss falls, a resumed run is bit-identical to an
// uninterrupted one, and bad data is reported with its file and line.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <fstream>

#include "host/checkpoint.h"
#include "host/config.h"
#include "host/error.h"
#include "host/fileio.h"
#include "host/sft.h"
#include "host/sft_data.h"
#include "test_util.h"
#include "tokenizer/tokenizer.h"

using namespace rusca;
using namespace rusca::testutil;

namespace {


const char* kTinyConfig = R"({"model_type": "qwen2", "vocab_size": 512, "hidden_size": 16,
  "intermediate_size": 24, "num_hidden_layers": 2, "num_attention_heads": 2, "num_key_value_heads": 1,
  "max_position_embeddings": 64, "tie_word_embeddings": true})";

SftOptions tiny_options(const TempDir& dir, const std::string& data, const std::string& out) {
    write_file_atomic(dir.path + "/config.json", kTinyConfig);
    SftOptions o;
    o.init_config = dir.path + "/config.json";
    o.data = data;
    o.tokenizer = "data/tokenizer.model";
    o.out = dir.path + "/" + out;
    o.batch = 2, o.seq = 16, o.steps = 6, o.warmup = 2, o.lr = 3e-3f;
    o.quiet = true;
    return o;
}


TEST(Sft, ResumedRunIsBitIdenticalToUninterrupted) {
    TempDir dir;
    SftOptions full = tiny_options(dir, "data/tiny_sft.jsonl", "full");
    SftResult a = run_sft(full);
    ASSERT_EQ(a.losses.size(), 6u);

    SftOptions part = tiny_options(dir, "data/tiny_sft.jsonl", "part");
    part.stop_at = 3;  // as if killed right after the step-3 checkpoint
    SftResult first = run_sft(part);
    for (int i = 0; i < 3; i++) EXPECT_EQ(first.losses[i], a.losses[i]) << "step " << 1 + i;
    part.stop_at = 0, part.resume = true;
    SftResult rest = run_sft(part);
    ASSERT_EQ(rest.losses.size(), 3u);
    for (int i = 0; i < 3; i++) EXPECT_EQ(rest.losses[i], a.losses[3 + i]) << "step " << 4 + i;
    EXPECT_EQ(read_file(part.out + "/checkpoint-000006/model.safetensors"),
              read_file(full.out + "/checkpoint-000006/model.safetensors"));
    // metrics.jsonl of the resumed run holds each step once, like the uninterrupted one
    std::string metrics = read_file(part.out + "/metrics.jsonl");
    EXPECT_EQ(std::count(metrics.begin(), metrics.end(), '\n'), 6);
}

TEST(Sft, LossFallsOnTheTinyCorpus) {
    TempDir dir;
    SftOptions o = tiny_options(dir, "data/tiny_corpus.txt", "run");
    o.steps = 30, o.batch = 4, o.seq = 32, o.lr = 1e-2f;
    SftResult r = run_sft(o);
    float first = (r.losses[0] + r.losses[1]) / 2, last = (r.losses[28] + r.losses[29]) / 2;
    EXPECT_LT(last, first - 0.5f);
    EXPECT_TRUE(file_exists(o.out + "/metrics.jsonl"));
    EXPECT_EQ(latest_checkpoint(o.out), o.out + "/checkpoint-000030");
}

TEST(Sft, MalformedJsonlNamesFileAndLine) {
    TempDir dir;
    Tokenizer tok("data/tokenizer.model");
    const std::string path = dir.path + "/bad.jsonl";
    write_file_atomic(path, "{\"prompt\": \"a\", \"response\": \"b\"}\n\n{\"prompt\": \"a\", \"response\": \n");
    std::string e = error_of([&] { SftDataset d(path, tok, 16); });
    EXPECT_NE(e.find(path + ":3"), std::string::npos) << e;
    write_file_atomic(path, "{\"prompt\": \"a\", \"response\": 5}\n");
    e = error_of([&] { SftDataset d(path, tok, 16); });
    EXPECT_NE(e.find(path + ":1"), std::string::npos) << e;
    EXPECT_NE(e.find("response"), std::string::npos) << e;
}

TEST(Sft, PromptTokensAreMaskedOutOfTheLoss) {
    TempDir dir;
    Tokenizer tok("data/tokenizer.model");
    const std::string path = dir.path + "/one.jsonl";
    write_file_atomic(path, "{\"prompt\": \"Mira has\", \"response\": \" a cat.\"}\n");
    SftDataset d(path, tok, 32);
    std::vector<int> tokens(32), targets(32);
    d.get(0, tokens.data(), targets.data());
    const size_t prompt = tok.encode("Mira has").size(), response = tok.encode(" a cat.").size();
    int counted = 0;
    for (int t = 0; t < 32; t++) counted += targets[t] >= 0;
    EXPECT_EQ(counted, int(response + 1));  // response tokens + EOS
    EXPECT_EQ(targets[prompt - 1], -1);       // predicting the last prompt token: ignored
    EXPECT_EQ(targets[prompt], tok.encode(" a cat.")[0]);  // BOS + prompt, then the first response token
}

TEST(Sft, MissingInputsAreClearErrors) {
    TempDir dir;
    SftOptions o = tiny_options(dir, "data/tiny_sft.jsonl", "run");
    o.tokenizer = dir.path + "/nope.model";
    EXPECT_NE(error_of([&] { run_sft(o); }).find("nope.model"), std::string::npos);
    o = tiny_options(dir, dir.path + "/missing.jsonl", "run");
    EXPECT_NE(error_of([&] { run_sft(o); }).find("missing.jsonl"), std::string::npos);
}

}  // namespace

namespace {

TEST(Sft, NonFiniteLossSkipsTheUpdateAndSaysSo) {
    TempDir dir;
    ModelConfig c = parse_config(kTinyConfig, "tiny");
    ParamLayout layout(c);
    std::vector<float> params(layout.total, 1e30f);  // overflows to inf / NaN in the first matmul
    save_model(dir.file("bad_model"), c, layout, params.data());
    SftOptions o = tiny_options(dir, "data/tiny_sft.jsonl", "run");
    o.init_config.clear();
    o.model = dir.file("bad_model");
    o.steps = 2;
    SftResult r = run_sft(o);
    EXPECT_FALSE(std::isfinite(r.losses[0]));
    const std::string metrics = read_file(o.out + "/metrics.jsonl");
    EXPECT_NE(metrics.find("\"skipped\""), std::string::npos) << metrics;
    std::vector<float> after(layout.total);
    load_params(r.last_checkpoint, layout, after.data());
    EXPECT_EQ(after, params);  // nothing was updated
}

}  // namespace
