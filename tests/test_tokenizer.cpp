// test_tokenizer.cpp: the shipped data/tokenizer.model (exact ids for known strings, special ids,
// chat markers, exact round trips) and the wrapper's errors and training path.
// Tests run from the repository root (tests/main.cpp), so data/ paths resolve.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <string>
#include <vector>

#include "host/error.h"
#include "tokenizer/tokenizer.h"
#include "test_util.h"

namespace fs = std::filesystem;
using rusca::Tokenizer;
using namespace rusca::testutil;

namespace {

const char* kModel = "data/tokenizer.model";

std::vector<std::string> corpus_lines(size_t n) {
    std::ifstream f("data/tiny_corpus.txt");
    std::vector<std::string> lines;
    for (std::string line; lines.size() < n && std::getline(f, line);) lines.push_back(line);
    return lines;
}

std::string read_bytes(const fs::path& p) {
    std::ifstream f(p, std::ios::binary);
    return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}



}  // namespace

TEST(Tokenizer, SpecialIds) {
    Tokenizer tok(kModel);
    EXPECT_EQ(tok.vocab_size(), 512);
    EXPECT_EQ(tok.piece_to_id("<unk>"), 0);
    EXPECT_EQ(tok.bos_id(), 1);
    EXPECT_EQ(tok.eos_id(), 2);
    EXPECT_EQ(tok.pad_id(), 3);
    EXPECT_EQ(tok.piece_to_id("no such piece"), 0);  // unknown pieces map to <unk>
    EXPECT_EQ(tok.path(), kModel);
}

// Ids observed from data/tokenizer.model as shipped (the Python sentencepiece package agrees).
// If the corpus or training options change, regenerate data/ and update these.
TEST(Tokenizer, KnownIds) {
    Tokenizer tok(kModel);
    // Mira ▁has ▁a ▁r ed ▁c at .
    EXPECT_EQ(tok.encode("Mira has a red cat."),
              (std::vector<int>{385, 311, 262, 306, 359, 282, 308, 470}));
    // D rink ▁water ▁and ▁rest . ▁See ▁a ▁doctor ▁if ▁the ▁f ev er ▁is ▁h igh .
    EXPECT_EQ(tok.encode("Drink water and rest. See a doctor if the fever is high."),
              (std::vector<int>{499, 412, 377, 284, 441, 470, 451, 262, 344, 341, 276, 274, 326,
                                269, 271, 334, 378, 470}));
    EXPECT_EQ(tok.encode("Mira", true, true), (std::vector<int>{1, 385, 2}));
    EXPECT_TRUE(tok.encode("").empty());
}

TEST(Tokenizer, ChatMarkersAreSingleIds) {
    Tokenizer tok(kModel);
    EXPECT_EQ(tok.encode("<|im_start|>"), std::vector<int>{4});
    EXPECT_EQ(tok.encode("<|im_end|>"), std::vector<int>{5});
    EXPECT_EQ(tok.piece_to_id("<|im_start|>"), 4);
    EXPECT_EQ(tok.piece_to_id("<|im_end|>"), 5);
    // Inside a chat-templated text too; "\n" is never in the corpus and falls back to a byte piece.
    const std::string chat = "<|im_start|>user\nHi<|im_end|>";
    EXPECT_EQ(tok.encode(chat), (std::vector<int>{4, 458, 269, 16, 486, 463, 5}));
    EXPECT_EQ(tok.piece_to_id("<0x0A>"), 16);
    EXPECT_EQ(tok.decode(tok.encode(chat)), chat);
}

TEST(Tokenizer, RoundTripsCorpusExactly) {
    Tokenizer tok(kModel);
    const auto lines = corpus_lines(300);
    ASSERT_EQ(lines.size(), 300u) << "data/tiny_corpus.txt is missing or short";
    for (const auto& line : lines) {
        const auto ids = tok.encode(line);
        EXPECT_LT(ids.size(), line.size());  // it does compress
        EXPECT_EQ(tok.decode(ids), line);
        // BOS / EOS are control pieces: they decode to nothing.
        EXPECT_EQ(tok.decode(tok.encode(line, true, true)), line);
    }
}

// No dummy prefix and no whitespace cleanup: encodings concatenate like the texts do,
// which is what building a chat prompt piece by piece needs.
TEST(Tokenizer, EncodingsConcatenate) {
    Tokenizer tok(kModel);
    const std::string a = "Question: How old is Mira? ", b = " Answer:  Mira is nine.  ";
    auto ids = tok.encode(a);
    const auto tail = tok.encode(b);
    ids.insert(ids.end(), tail.begin(), tail.end());
    EXPECT_EQ(tok.decode(ids), a + b);
}

TEST(Tokenizer, UnseenTextFallsBackToBytes) {
    Tokenizer tok(kModel);
    const std::string text = "caf\xc3\xa9 \xe2\x98\x95 {x}\t~";  // "café ☕ {x}\t~"
    const auto ids = tok.encode(text);
    for (int id : ids) EXPECT_NE(id, 0) << "unexpected <unk>";
    EXPECT_EQ(tok.decode(ids), text);
}

TEST(Tokenizer, MissingFileNamesThePath) {
    const std::string path = "data/no_such_tokenizer.model";
    expect_error([&] { Tokenizer t(path); }, {path});
}

TEST(Tokenizer, GarbageFileNamesThePath) {
    TempDir dir;
    const std::string path = dir.file("junk.model");
    std::ofstream(path, std::ios::binary) << "this is not a protobuf \x01\x02\xff\xfe garbage";
    expect_error([&] { Tokenizer t(path); }, {path});
}

TEST(Tokenizer, DecodeRejectsOutOfRangeIds) {
    Tokenizer tok(kModel);
    expect_error([&] { tok.decode({385, 512}); }, {"id 512"});
    expect_error([&] { tok.decode({-1}); }, {"id -1"});
}

TEST(TrainTokenizer, SmallCorpusGivesLoadableDeterministicModel) {
    TempDir dir;
    const fs::path input = dir.file("corpus.txt");
    {
        std::ofstream f(input);
        for (const auto& line : corpus_lines(400)) f << line << "\n";
    }
    rusca::TokenizerTrainOptions opt;
    opt.input = input.string();
    opt.model_prefix = dir.file("tok");
    opt.vocab_size = 320;
    opt.user_symbols = {"<|im_start|>", "<|im_end|>"};
    opt.quiet = true;
    rusca::train_tokenizer(opt);
    ASSERT_TRUE(fs::exists(opt.model_prefix + ".vocab"));
    const std::string first = read_bytes(opt.model_prefix + ".model");

    Tokenizer tok(opt.model_prefix + ".model");
    EXPECT_EQ(tok.vocab_size(), 320);
    EXPECT_EQ(tok.bos_id(), 1);
    EXPECT_EQ(tok.eos_id(), 2);
    EXPECT_EQ(tok.pad_id(), 3);
    EXPECT_EQ(tok.encode("<|im_end|>"), std::vector<int>{5});
    const std::string s = "Pip has a cough. He should drink warm water and rest.";
    EXPECT_EQ(tok.decode(tok.encode(s)), s);

    rusca::train_tokenizer(opt);  // same input, same options: the same bytes
    EXPECT_EQ(read_bytes(opt.model_prefix + ".model"), first);
}

TEST(TrainTokenizer, BadOptionsAreErrors) {
    TempDir dir;
    rusca::TokenizerTrainOptions opt;
    opt.model_prefix = dir.file("tok");
    opt.quiet = true;
    opt.input = dir.file("missing.txt");
    expect_error([&] { rusca::train_tokenizer(opt); }, {opt.input});

    opt.input = "data/tiny_corpus.txt";
    opt.model_type = "wordpiece";
    expect_error([&] { rusca::train_tokenizer(opt); }, {"wordpiece"});

    // More pieces than a two-line corpus can give: sentencepiece refuses, we name the input.
    const fs::path tiny = dir.file("tiny.txt");
    std::ofstream(tiny) << "a b\nb a\n";
    opt.input = tiny.string();
    opt.model_type = "bpe";
    opt.vocab_size = 5000;
    expect_error([&] { rusca::train_tokenizer(opt); }, {opt.input});
}
