// test_checkpoint.cpp: model directories and training checkpoints: bit-exact save/load round trips
// for tiny Qwen2 (untied, QKV bias) and Llama (tied) shapes, sharded loading, mismatch errors,
// the crash-safety bookkeeping (`latest`, leftover temp directories), and the tokenizer /
// generation_config files a model folder carries.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <random>
#include <set>

#include "host/checkpoint.h"
#include "host/error.h"
#include "host/fileio.h"
#include "test_util.h"
#include "tokenizer/tokenizer.h"

namespace rusca {
namespace {
using namespace rusca::testutil;
namespace fs = std::filesystem;



ModelConfig tiny_config(bool llama_tied) {
    ModelConfig c;
    c.model_type = llama_tied ? "llama" : "qwen2";
    c.family = llama_tied ? Family::Llama : Family::Qwen2;
    c.qkv_bias = !llama_tied;
    c.tie_word_embeddings = llama_tied;
    c.vocab_size = 17;
    c.hidden_size = 8;
    c.intermediate_size = 12;
    c.num_layers = 2;
    c.num_heads = 2;
    c.num_kv_heads = 1;
    c.head_dim = 4;
    return c;
}

// Random values that are never zero, so a tensor left unloaded (zero-filled) cannot pass.
std::vector<float> random_params(size_t n, unsigned seed) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> dist(0.0f, 0.5f);
    std::vector<float> p(n);
    for (float& x : p) {
        x = dist(rng);
        if (x == 0.0f) x = 0.125f;
    }
    return p;
}

bool bit_equal(const std::vector<float>& a, const std::vector<float>& b) {
    return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

// The layout's tensors as F32 TensorOuts, leaving out `skip` (for mismatch tests).
std::vector<TensorOut> outs(const ParamLayout& layout, const std::vector<float>& p, const std::string& skip = "") {
    std::vector<TensorOut> out;
    for (const ParamInfo& t : layout.tensors)
        if (t.name != skip) out.push_back({t.name, DType::F32, t.shape, p.data() + t.offset});
    return out;
}

class CheckpointTest : public ::testing::TestWithParam<bool> {
protected:
    TempDir tmp;
    ModelConfig config = tiny_config(GetParam());
    ParamLayout layout{config};
    std::vector<float> params = random_params(layout.total, 7);
};

TEST_P(CheckpointTest, SaveModelLoadParamsBitExact) {
    const std::string dir = tmp.file("model");
    save_model(dir, config, layout, params.data());
    EXPECT_EQ(layout.find("lm_head.weight") == nullptr, config.tie_word_embeddings);

    std::vector<float> got(layout.total, 0.0f);
    load_params(dir, layout, got.data());
    EXPECT_TRUE(bit_equal(got, params));
    std::vector<float> got_file(layout.total, 0.0f);  // a .safetensors path works too
    load_params(dir + "/model.safetensors", layout, got_file.data());
    EXPECT_TRUE(bit_equal(got_file, params));
    std::vector<double> gotd(layout.total);
    load_params(dir, layout, gotd.data());
    for (size_t i = 0; i < layout.total; i++) ASSERT_EQ(gotd[i], double(params[i]));

    ModelConfig back = load_config(dir + "/config.json");
    EXPECT_EQ(back.family, config.family);
    EXPECT_EQ(back.vocab_size, config.vocab_size);
    EXPECT_EQ(back.num_kv_heads, config.num_kv_heads);
    EXPECT_EQ(back.head_dim, config.head_dim);
    EXPECT_EQ(back.tie_word_embeddings, config.tie_word_embeddings);
    EXPECT_EQ(back.qkv_bias, config.qkv_bias);
    SafeTensorsFile st(dir + "/model.safetensors");
    EXPECT_EQ(st.metadata().at("format"), "pt");
    EXPECT_EQ(st.tensors().size(), layout.tensors.size());
}

TEST_P(CheckpointTest, SaveSixteenBitRoundsEachValue) {
    for (DType dt : {DType::BF16, DType::F16}) {
        const std::string dir = tmp.file(std::string("model_") + dtype_name(dt));
        save_model(dir, config, layout, params.data(), dt);
        EXPECT_NE(read_file(dir + "/config.json").find(dt == DType::BF16 ? "bfloat16" : "float16"), std::string::npos);
        std::vector<float> got(layout.total);
        load_params(dir, layout, got.data());
        for (size_t i = 0; i < layout.total; i++) {
            float want = dt == DType::BF16 ? bf16_to_f32(f32_to_bf16(params[i])) : f16_to_f32(f32_to_f16(params[i]));
            ASSERT_EQ(got[i], want) << dtype_name(dt) << " element " << i;
        }
    }
}

TEST_P(CheckpointTest, MissingTensorIsAnError) {
    const std::string path = tmp.file("m.safetensors");
    write_safetensors(path, outs(layout, params, "model.layers.1.mlp.up_proj.weight"));
    std::vector<float> got(layout.total);
    expect_error([&] { load_params(path, layout, got.data()); },
                 {"m.safetensors", "\"model.layers.1.mlp.up_proj.weight\"", "missing"});
}

TEST_P(CheckpointTest, UnexpectedTensorIsAnError) {
    const std::string path = tmp.file("x.safetensors");
    auto t = outs(layout, params);
    t.push_back({"model.layers.2.mlp.up_proj.weight", DType::F32, {12, 8}, params.data()});
    write_safetensors(path, t);
    std::vector<float> got(layout.total);
    expect_error([&] { load_params(path, layout, got.data()); },
                 {"x.safetensors", "unexpected tensor \"model.layers.2.mlp.up_proj.weight\"", "config.json"});
}

TEST_P(CheckpointTest, WrongShapeIsAnError) {
    const std::string path = tmp.file("s.safetensors");
    auto t = outs(layout, params, "model.norm.weight");
    t.push_back({"model.norm.weight", DType::F32, {4, 2}, params.data()});
    write_safetensors(path, t);
    std::vector<float> got(layout.total);
    expect_error([&] { load_params(path, layout, got.data()); },
                 {"s.safetensors", "\"model.norm.weight\"", "shape [4, 2] but expected [8]"});
}

TEST_P(CheckpointTest, IgnoresRotaryInvFreqAndTiedLmHead) {
    const std::string path = tmp.file("i.safetensors");
    auto t = outs(layout, params);
    std::vector<float> inv_freq(2, 1.0f);
    t.push_back({"model.layers.0.self_attn.rotary_emb.inv_freq", DType::F32, {2}, inv_freq.data()});
    if (config.tie_word_embeddings)  // HF sometimes stores the tied head anyway
        t.push_back({"lm_head.weight", DType::F32, {17, 8}, params.data() + layout.embed});
    write_safetensors(path, t);
    std::vector<float> got(layout.total);
    load_params(path, layout, got.data());
    EXPECT_TRUE(bit_equal(got, params));
}

TEST_P(CheckpointTest, ShardedModelLoads) {
    const std::string dir = tmp.file("sharded");
    make_dirs(dir);
    auto all = outs(layout, params);
    const size_t half = all.size() / 2;
    std::vector<TensorOut> a(all.begin(), all.begin() + half), b(all.begin() + half, all.end());
    write_safetensors(dir + "/model-00001-of-00002.safetensors", a);
    write_safetensors(dir + "/model-00002-of-00002.safetensors", b);
    std::string index = "{\"metadata\": {}, \"weight_map\": {";
    for (size_t i = 0; i < all.size(); i++)
        index += std::string(i ? ", " : "") + "\"" + all[i].name + "\": \"model-0000" + (i < half ? "1" : "2") +
                 "-of-00002.safetensors\"";
    write_file_atomic(dir + "/model.safetensors.index.json", index + "}}");
    std::vector<float> got(layout.total, 0.0f);
    load_params(dir, layout, got.data());
    EXPECT_TRUE(bit_equal(got, params));

    fs::remove(dir + "/model-00002-of-00002.safetensors");
    expect_error([&] { load_params(dir, layout, got.data()); }, {"model-00002-of-00002.safetensors"});
}

// Past the shard limit, save_model writes shards + an index as transformers does; saving again in
// the same folder with another limit leaves only the new layout's files (stale shards or a stale
// index would otherwise be read instead of the new weights).
TEST_P(CheckpointTest, SaveModelShardsPastTheLimit) {
    const std::string dir = tmp.file("shards");
    const size_t limit = layout.total * sizeof(float) / 3;  // at least three shards
    save_model(dir, config, layout, params.data(), DType::F32, limit);
    EXPECT_FALSE(fs::exists(dir + "/model.safetensors"));
    nlohmann::json index = nlohmann::json::parse(read_file(dir + "/model.safetensors.index.json"));
    EXPECT_EQ(index["metadata"]["total_size"].get<size_t>(), layout.total * sizeof(float));
    EXPECT_EQ(index["weight_map"].size(), layout.tensors.size());
    std::set<std::string> files;
    for (const auto& [name, file] : index["weight_map"].items()) files.insert(file.get<std::string>());
    ASSERT_GE(files.size(), 3u);
    const std::string n = std::to_string(files.size());
    EXPECT_TRUE(files.count("model-00001-of-0000" + n + ".safetensors")) << index.dump();
    for (const std::string& f : files) {
        size_t bytes = 0;
        const SafeTensorsFile st(dir + "/" + f);
        for (const TensorView& t : st.tensors()) bytes += t.nbytes;
        EXPECT_TRUE(bytes <= limit || st.tensors().size() == 1) << f << " holds " << bytes << " bytes";
    }
    std::vector<float> got(layout.total, 0.0f);
    load_params(dir, layout, got.data());
    EXPECT_TRUE(bit_equal(got, params));

    std::vector<float> other = random_params(layout.total, 8);  // a smaller save over it: one file
    save_model(dir, config, layout, other.data(), DType::BF16);
    for (const auto& e : fs::directory_iterator(dir))
        EXPECT_EQ(e.path().filename().string().find("model-"), std::string::npos) << e.path();
    EXPECT_FALSE(fs::exists(dir + "/model.safetensors.index.json"));
    load_params(dir, layout, got.data());
    for (size_t i = 0; i < layout.total; i++) ASSERT_EQ(got[i], bf16_to_f32(f32_to_bf16(other[i])));
    expect_error([&] { save_model(dir, config, layout, params.data(), DType::F32, 0); }, {"shard size"});
}

TEST_P(CheckpointTest, CheckpointRoundTripAndLatest) {
    const std::string out = tmp.file("run");
    EXPECT_EQ(latest_checkpoint(out), "");  // nothing saved yet (out does not even exist)
    TrainState st;
    st.m = random_params(layout.total, 11);
    st.v = random_params(layout.total, 12);
    st.meta = {{"step", "123"}, {"rng", "42 17"}, {"data_pos", "9"}};

    std::string dir = save_checkpoint(out, 123, config, layout, params.data(), st);
    EXPECT_EQ(dir, out + "/checkpoint-000123");
    EXPECT_EQ(read_file(out + "/latest"), "checkpoint-000123\n");
    EXPECT_EQ(latest_checkpoint(out), dir);
    EXPECT_FALSE(fs::exists(out + "/.tmp-checkpoint-000123"));

    std::vector<float> got(layout.total);
    load_params(dir, layout, got.data());
    EXPECT_TRUE(bit_equal(got, params));
    TrainState back = load_train_state(dir, layout);
    EXPECT_TRUE(bit_equal(back.m, st.m));
    EXPECT_TRUE(bit_equal(back.v, st.v));
    EXPECT_EQ(back.meta, st.meta);

    // A later step moves `latest`; saving the same step again replaces that checkpoint.
    std::vector<float> params2 = random_params(layout.total, 99);
    dir = save_checkpoint(out, 200, config, layout, params2.data(), st);
    EXPECT_EQ(latest_checkpoint(out), out + "/checkpoint-000200");
    std::vector<float> params3 = random_params(layout.total, 100);
    save_checkpoint(out, 200, config, layout, params3.data(), st);
    load_params(latest_checkpoint(out), layout, got.data());
    EXPECT_TRUE(bit_equal(got, params3));
    EXPECT_TRUE(fs::is_directory(out + "/checkpoint-000123"));  // older ones are left alone
    EXPECT_FALSE(fs::exists(out + "/.tmp-checkpoint-000200"));
}

TEST_P(CheckpointTest, LeftoverTempDirIsHarmless) {
    const std::string out = tmp.file("run");
    TrainState st{random_params(layout.total, 1), random_params(layout.total, 2), {}};
    save_checkpoint(out, 5, config, layout, params.data(), st);
    // A run killed mid-save leaves half-written temp directories behind.
    for (const char* name : {"/.tmp-checkpoint-000006", "/.tmp-checkpoint-000007"}) {
        make_dirs(out + name);
        write_file_atomic(out + name + "/model.safetensors", "garbage");
    }
    EXPECT_EQ(latest_checkpoint(out), out + "/checkpoint-000005");
    std::string dir = save_checkpoint(out, 6, config, layout, params.data(), st);
    EXPECT_EQ(latest_checkpoint(out), dir);
    EXPECT_FALSE(fs::exists(out + "/.tmp-checkpoint-000006"));
    std::vector<float> got(layout.total);
    load_params(dir, layout, got.data());
    EXPECT_TRUE(bit_equal(got, params));
    EXPECT_TRUE(load_train_state(dir, layout).meta.empty());
}

TEST_P(CheckpointTest, LatestAndTrainStateErrors) {
    const std::string out = tmp.file("run");
    make_dirs(out);
    write_file_atomic(out + "/latest", "checkpoint-000042\n");
    expect_error([&] { latest_checkpoint(out); }, {"latest", "checkpoint-000042"});

    TrainState st{random_params(layout.total, 1), random_params(layout.total, 2), {}};
    std::string dir = save_checkpoint(out, 1, config, layout, params.data(), st);
    ParamLayout other(tiny_config(!GetParam()));  // the other family has a different size
    ASSERT_NE(other.total, layout.total);
    expect_error([&] { load_train_state(dir, other); }, {"train_state.safetensors", "parameters"});

    // A state file without adam.v names the file and the tensor.
    std::vector<float> m(layout.total);
    write_safetensors(dir + "/train_state.safetensors", {{"adam.m", DType::F32, {int64_t(layout.total)}, m.data()}},
                      {{"param_count", std::to_string(layout.total)}});
    expect_error([&] { load_train_state(dir, layout); }, {"train_state.safetensors", "\"adam.v\""});
    expect_error([&] { load_train_state(tmp.file("nowhere"), layout); }, {"nowhere/train_state.safetensors"});

    TrainState bad{std::vector<float>(3), std::vector<float>(3), {}};
    expect_error([&] { save_checkpoint(out, 2, config, layout, params.data(), bad); }, {"checkpoint-000002"});
}

INSTANTIATE_TEST_SUITE_P(Families, CheckpointTest, ::testing::Values(false, true),
                         [](const ::testing::TestParamInfo<bool>& p) {
                             return p.param ? std::string("LlamaTied") : std::string("Qwen2Untied");
                         });

}  // namespace
}  // namespace rusca

// Checkpoints and exports carry the tokenizer files, so the folder loads on its own.
namespace rusca {
namespace {

TEST(ModelFolder, CopiesTokenizerFilesFromAFolder) {
    TempDir tmp;
    const std::string src = "tests/golden/tokenizers/qwen2";
    const auto copied = copy_tokenizer_files(src, tmp.file("out"));
    EXPECT_EQ(copied, (std::vector<std::string>{"tokenizer.json", "tokenizer_config.json"}));
    for (const auto& name : copied) EXPECT_EQ(read_file(tmp.file("out/" + name)), read_file(src + "/" + name));
}

TEST(ModelFolder, CopiesALoneFileUnderItsStandardName) {
    TempDir tmp;
    std::ofstream(tmp.file("my.model"), std::ios::binary) << read_file("data/tokenizer.model");
    std::ofstream(tmp.file("generation_config.json")) << R"({"eos_token_id": 2})";
    const auto copied = copy_tokenizer_files(tmp.file("my.model"), tmp.file("out"));
    EXPECT_EQ(copied, (std::vector<std::string>{"tokenizer.model", "generation_config.json"}));
    EXPECT_EQ(read_file(tmp.file("out/tokenizer.model")), read_file("data/tokenizer.model"));
    expect_error([&] { copy_tokenizer_files(tmp.file("nope.json"), tmp.file("out")); }, {"nope.json"});
}

TEST(ModelFolder, GenerationConfigKeepsTheSourceOne) {
    TempDir tmp;
    ModelConfig c;
    c.bos_token_id = 5;
    write_generation_config(tmp.path, c, {7, 9});
    EXPECT_EQ(nlohmann::json::parse(read_file(tmp.file("generation_config.json"))),
              nlohmann::json::parse(R"({"bos_token_id": 5, "eos_token_id": [7, 9]})"));
    write_generation_config(tmp.path, c, {1});  // already there (e.g. copied along): kept
    EXPECT_EQ(nlohmann::json::parse(read_file(tmp.file("generation_config.json")))["eos_token_id"].size(), 2u);
    TempDir one;
    write_generation_config(one.path, c, {7});
    EXPECT_EQ(nlohmann::json::parse(read_file(one.file("generation_config.json")))["eos_token_id"], 7);
}

TEST(ModelFolder, CheckpointCarriesTheTokenizer) {
    TempDir tmp;
    ModelConfig c = tiny_config(true);
    ParamLayout layout(c);
    std::vector<float> params(layout.total, 0.5f);
    TrainState st;
    st.m.assign(layout.total, 0), st.v.assign(layout.total, 0);
    const std::string dir = save_checkpoint(tmp.file("run"), 1, c, layout, params.data(), st, "tests/golden/tokenizers/llama3");
    EXPECT_TRUE(file_exists(dir + "/tokenizer.json"));
    EXPECT_TRUE(file_exists(dir + "/tokenizer_config.json"));
    EXPECT_EQ(find_tokenizer_file(dir), dir + "/tokenizer.json");
}

}  // namespace
}  // namespace rusca
