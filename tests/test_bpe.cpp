// test_bpe.cpp: rusca's byte-level BPE (tokenizer/bpe.cpp) against Hugging Face `tokenizers`:
// the ids, decodes and lossy decodes recorded by tools/make_tokenizer_golden.py for small
// tokenizers trained with Qwen2's and Llama 3's exact pre-tokenizers (English, Korean, Chinese,
// emoji, code, whitespace runs, contractions, numbers, special tokens inside text); the round trip;
// the folder/file selection of rusca::Tokenizer; and the errors for bad files.
#include <gtest/gtest.h>

#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "host/error.h"
#include "host/fileio.h"
#include "test_util.h"
#include "tokenizer/bpe.h"
#include "tokenizer/tokenizer.h"

using json = nlohmann::json;
using rusca::Tokenizer;
using namespace rusca::testutil;

namespace {

const char* kFamilies[] = {"qwen2", "qwen3", "llama3", "llama31", "llama2"};

std::string golden_dir(const std::string& family) { return "tests/golden/tokenizers/" + family; }
json cases(const std::string& family) { return json::parse(rusca::read_file(golden_dir(family) + "/cases.json")); }

// A copy of a golden tokenizer.json with one field replaced (for the error tests).
std::string patched_tokenizer(const TempDir& dir, const std::function<void(json&)>& patch) {
    json j = json::parse(rusca::read_file(golden_dir("qwen2") + "/tokenizer.json"));
    patch(j);
    const std::string path = dir.file("tokenizer.json");
    std::ofstream(path) << j.dump();
    return path;
}

}  // namespace

TEST(Bpe, EncodeMatchesHuggingFace) {
    for (const char* fam : kFamilies) {
        Tokenizer tok(golden_dir(fam));
        int n = 0;
        const json all = cases(fam);  // named: a loop over a temporary's member would dangle
        for (const json& c : all["encode"]) {
            const std::string text = c["text"];
            EXPECT_EQ(tok.encode(text), c["ids"].get<std::vector<int>>()) << fam << ": " << text;
            n++;
        }
        EXPECT_GE(n, 30) << fam;
    }
}

TEST(Bpe, DecodeMatchesHuggingFaceIncludingBrokenUtf8) {
    for (const char* fam : kFamilies) {
        Tokenizer tok(golden_dir(fam));
        const json all = cases(fam);
        EXPECT_GE(all["decode"].size(), 10u) << fam;
        for (const json& c : all["encode"])
            EXPECT_EQ(tok.decode(c["ids"].get<std::vector<int>>()), c["decoded"].get<std::string>()) << fam << ": " << c["text"];
        for (const json& c : all["decode"])
            EXPECT_EQ(tok.decode(c["ids"].get<std::vector<int>>()), c["text"].get<std::string>()) << fam << ": " << c["ids"];
    }
}

// Without a normalizer, decode(encode(s)) == s for any valid UTF-8 (bytes are never lost).
TEST(Bpe, RoundTripsExactly) {
    Tokenizer tok(golden_dir("llama3"));
    std::ifstream f("data/tiny_corpus.txt");
    std::string all;
    for (std::string line; std::getline(f, line);) all += line + "\n";
    const json llama3 = cases("llama3");
    for (const json& c : llama3["encode"]) all += c["text"].get<std::string>();
    all += "\xF0\x9F\xA7\xAC \xE2\x80\x8D \xC2\xA0 rare \xE4\xB8\x80\xE4\xB8\x81";  // characters the vocab never saw as tokens
    EXPECT_EQ(tok.decode(tok.encode(all)), all);
}

TEST(Bpe, SpecialIdsComeFromTokenizerConfig) {
    Tokenizer qwen(golden_dir("qwen2")), llama(golden_dir("llama3"));
    EXPECT_EQ(qwen.bos_id(), -1);  // Qwen has no BOS
    EXPECT_EQ(qwen.eos_id(), qwen.piece_to_id("<|im_end|>"));
    EXPECT_EQ(qwen.pad_id(), qwen.piece_to_id("<|endoftext|>"));
    EXPECT_EQ(llama.bos_id(), llama.piece_to_id("<|begin_of_text|>"));
    EXPECT_EQ(llama.eos_id(), llama.piece_to_id("<|eot_id|>"));
    EXPECT_GE(llama.bos_id(), 0);
    EXPECT_EQ(llama.encode("Hi", true, true).front(), llama.bos_id());
    EXPECT_EQ(llama.encode("Hi", true, true).back(), llama.eos_id());
    EXPECT_EQ(qwen.piece_to_id("no such piece"), -1);
    EXPECT_TRUE(qwen.is_single_token("<|im_start|>"));
    EXPECT_FALSE(qwen.is_single_token("<|im_start"));
}

TEST(Bpe, FolderChoosesTheFile) {
    EXPECT_EQ(Tokenizer(golden_dir("qwen2")).path(), golden_dir("qwen2") + "/tokenizer.json");
    EXPECT_EQ(Tokenizer(golden_dir("qwen2") + "/tokenizer.json").vocab_size(), Tokenizer(golden_dir("qwen2")).vocab_size());
    EXPECT_EQ(rusca::find_tokenizer_file("data"), "data/tokenizer.model");
    EXPECT_EQ(rusca::find_tokenizer_file("tests"), "");
    expect_error([] { Tokenizer t("tests"); }, {"tests", "no tokenizer.json or tokenizer.model"});
    TempDir both;  // a Llama 2 style folder: the sentencepiece model is the tokenizer
    std::ofstream(both.file("tokenizer.json")) << rusca::read_file(golden_dir("qwen2") + "/tokenizer.json");
    std::ofstream(both.file("tokenizer.model"), std::ios::binary) << rusca::read_file("data/tokenizer.model");
    EXPECT_EQ(Tokenizer(both.path).path(), both.file("tokenizer.model"));
}

TEST(Bpe, GenerationConfigEosIds) {
    TempDir dir;
    for (const char* f : {"tokenizer.json", "tokenizer_config.json"})
        std::ofstream(dir.file(f)) << rusca::read_file(golden_dir("llama3") + "/" + f);
    std::ofstream(dir.file("generation_config.json")) << R"({"bos_token_id": 0, "eos_token_id": [1, 4]})";
    EXPECT_EQ(Tokenizer(dir.path).generation_eos_ids(), (std::vector<int>{1, 4}));
    std::ofstream(dir.file("generation_config.json")) << R"({"eos_token_id": 4})";
    EXPECT_EQ(Tokenizer(dir.path).generation_eos_ids(), (std::vector<int>{4}));
    std::ofstream(dir.file("generation_config.json")) << R"({"eos_token_id": "x"})";
    expect_error([&] { Tokenizer t(dir.path); }, {"generation_config.json", "eos_token_id"});
}

TEST(Bpe, WordCacheGivesTheSameIds) {
    Tokenizer tok(golden_dir("qwen2"));
    const std::string text = "The patient has a fever. The patient has a fever. 환자는 열이 있습니다.";
    const std::vector<int> first = tok.encode(text);
    EXPECT_EQ(tok.encode(text), first);
}

TEST(Bpe, ByteTableIsGpt2s) {
    const auto& t = rusca::byte_to_unicode();
    EXPECT_EQ(t[' '], "\xC4\xA0");   // Ġ
    EXPECT_EQ(t['\n'], "\xC4\x8A");  // Ċ
    EXPECT_EQ(t['A'], "A");
    EXPECT_EQ(rusca::utf8_lossy("a\xE2\x82"), "a\xEF\xBF\xBD");            // truncated: one U+FFFD
    EXPECT_EQ(rusca::utf8_lossy("\xFF\xC3\xA9"), "\xEF\xBF\xBD\xC3\xA9");  // stray byte, then é
}

TEST(Bpe, BadFilesNameFileAndField) {
    TempDir dir;
    expect_error([&] { rusca::BpeTokenizer t(patched_tokenizer(dir, [](json& j) { j["model"]["type"] = "WordPiece"; })); },
                 {"tokenizer.json", "model.type"});
    expect_error([&] { rusca::BpeTokenizer t(patched_tokenizer(dir, [](json& j) { j["model"]["byte_fallback"] = true; })); },
                 {"tokenizer.json", "model.byte_fallback"});
    expect_error([&] { rusca::BpeTokenizer t(patched_tokenizer(dir, [](json& j) { j["normalizer"] = {{"type", "NFKC"}}; })); },
                 {"normalizer.type", "NFKC"});
    expect_error([&] { rusca::BpeTokenizer t(patched_tokenizer(dir, [](json& j) { j["model"]["merges"][3] = "zzzq qqqz"; })); },
                 {"model.merges[3]"});
    expect_error([&] { rusca::BpeTokenizer t(patched_tokenizer(dir, [](json& j) { j["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] = "(unclosed"; })); },
                 {"pre_tokenizer", "regex does not compile"});
    expect_error([&] { rusca::BpeTokenizer t(patched_tokenizer(dir, [](json& j) { j.erase("decoder"); })); }, {"decoder", "missing"});
    std::ofstream(dir.file("broken.json")) << "{ not json";
    expect_error([&] { Tokenizer t(dir.file("broken.json")); }, {"broken.json", "not valid JSON"});
    Tokenizer tok(golden_dir("qwen2"));
    expect_error([&] { tok.encode("ok \xFF bad"); }, {"not valid UTF-8", "byte 3"});
    expect_error([&] { tok.decode({tok.vocab_size()}); }, {"id " + std::to_string(tok.vocab_size())});
}
