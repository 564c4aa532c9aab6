// test_chat.cpp: chat templates (host/chat.cpp) against transformers' apply_chat_template, as
// recorded by tools/make_tokenizer_golden.py for Qwen2.5's ChatML (with its default system turn),
// Qwen3's, Llama 3, Llama 3.1 (dated system header) and Llama 2 [INST]; the scaffold split (prefix + prompt tokens == the templated
// conversation with the scaffold as its system turn); stop tokens; our sentencepiece ChatML.
#include <gtest/gtest.h>

#include <ctime>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "host/chat.h"
#include "host/fileio.h"
#include "test_util.h"

using json = nlohmann::json;
using rusca::Message;
using rusca::Tokenizer;
using namespace rusca::testutil;

namespace {

std::string golden_dir(const std::string& family) { return "tests/golden/tokenizers/" + family; }

std::vector<Message> messages_of(const json& j) {
    std::vector<Message> m;
    for (const json& x : j) m.push_back({x["role"], x["content"]});
    return m;
}

std::vector<int> concat(std::vector<int> a, const std::vector<int>& b) {
    a.insert(a.end(), b.begin(), b.end());
    return a;
}

}  // namespace

TEST(Chat, FamilyFromTheFolder) {
    EXPECT_EQ(rusca::chat_format(Tokenizer(golden_dir("qwen2"))).family, rusca::ChatFamily::ChatML);
    EXPECT_EQ(rusca::chat_format(Tokenizer(golden_dir("qwen2"))).default_system,
              "You are Qwen, created by Alibaba Cloud. You are a helpful assistant.");
    EXPECT_EQ(rusca::chat_format(Tokenizer(golden_dir("qwen3"))).family, rusca::ChatFamily::ChatML);
    EXPECT_EQ(rusca::chat_format(Tokenizer(golden_dir("qwen3"))).default_system, "");  // Qwen3 adds none
    EXPECT_EQ(rusca::chat_format(Tokenizer(golden_dir("llama3"))).family, rusca::ChatFamily::Llama3);
    EXPECT_EQ(rusca::chat_format(Tokenizer(golden_dir("llama3"))).system_header, "");
    EXPECT_EQ(rusca::chat_format(Tokenizer(golden_dir("llama31"))).family, rusca::ChatFamily::Llama3);
    EXPECT_EQ(rusca::chat_format(Tokenizer(golden_dir("llama31"))).system_header,
              "Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n");
    EXPECT_EQ(rusca::chat_format(Tokenizer(golden_dir("llama2"))).family, rusca::ChatFamily::Llama2);
    EXPECT_EQ(rusca::chat_format(Tokenizer("data/tokenizer.model")).family, rusca::ChatFamily::ChatML);
    EXPECT_EQ(rusca::chat_format(Tokenizer("data/tokenizer.model")).default_system, "");
}

// Every recorded conversation, with and without the generation prompt: same text, same ids.
TEST(Chat, MatchesApplyChatTemplate) {
    for (const char* fam : {"qwen2", "qwen3", "llama3", "llama31", "llama2"}) {
        Tokenizer tok(golden_dir(fam));
        const json cases = json::parse(rusca::read_file(golden_dir(fam) + "/cases.json"))["chat"];
        EXPECT_GE(cases.size(), 8u) << fam;
        for (const json& c : cases) {
            const auto msgs = messages_of(c["messages"]);
            const bool gen = c["add_generation_prompt"];
            EXPECT_EQ(rusca::render_chat(tok, msgs, gen), c["text"].get<std::string>()) << fam << " " << c["messages"];
            EXPECT_EQ(rusca::chat_tokens(tok, msgs, gen), c["ids"].get<std::vector<int>>()) << fam << " " << c["messages"];
        }
    }
}

// The rollout split: prefix(scaffold) + prompt == the conversation with the scaffold as system
// turn; prefix("") + prompt == the bare conversation (with Qwen2.5's default system turn, or
// Llama 3.1's dated system turn holding no text).
TEST(Chat, ScaffoldPrefixPlusPromptMatchesTemplate) {
    for (const char* fam : {"qwen2", "qwen3", "llama3", "llama31", "llama2"}) {
        Tokenizer tok(golden_dir(fam));
        const bool dated = !rusca::chat_format(tok).system_header.empty();
        int scaffolded = 0, bare = 0;
        const json all = json::parse(rusca::read_file(golden_dir(fam) + "/cases.json"));  // named: see test_bpe.cpp
        for (const json& c : all["chat"]) {
            if (!c["add_generation_prompt"].get<bool>()) continue;
            auto msgs = messages_of(c["messages"]);
            const auto want = c["ids"].get<std::vector<int>>();
            // Llama 3.1 with the prompt's own system turn: see chat.h (it stays an ordinary turn).
            if (!(dated && msgs[0].role == "system")) {
                EXPECT_EQ(concat(rusca::chat_prefix_tokens(tok, "", msgs), rusca::chat_prompt_tokens(tok, msgs)), want) << fam;
            }
            if (msgs[0].role == "system") {
                const std::string scaffold = msgs[0].content;
                msgs.erase(msgs.begin());
                EXPECT_EQ(concat(rusca::chat_prefix_tokens(tok, scaffold, msgs), rusca::chat_prompt_tokens(tok, msgs)), want) << fam;
                scaffolded++;
            } else {
                bare++;
            }
        }
        EXPECT_GE(scaffolded, 2) << fam;
        EXPECT_GE(bare, 2) << fam;
    }
}

TEST(Chat, QwenDefaultSystemNeverFollowsTheScaffold) {
    Tokenizer tok(golden_dir("qwen2"));
    const std::vector<Message> prompt = {{"user", "What is a fever?"}};
    const std::string with = tok.decode(rusca::chat_prefix_tokens(tok, "Rubric: be kind.", prompt));
    const std::string without = tok.decode(rusca::chat_prefix_tokens(tok, "", prompt));
    EXPECT_EQ(with, "<|im_start|>system\nRubric: be kind.<|im_end|>\n");
    EXPECT_EQ(without, "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n");
    // A prompt with its own system turn gets no default either.
    EXPECT_TRUE(rusca::chat_prefix_tokens(tok, "", {{"system", "s"}, {"user", "u"}}).empty());
}

// Llama 3.2's template dates the header with strftime_now, which transformers fills with today.
TEST(Chat, Llama32DatesTheHeaderToday) {
    TempDir dir;
    std::ofstream(dir.file("tokenizer.json")) << rusca::read_file(golden_dir("llama31") + "/tokenizer.json");
    std::string tmpl = nlohmann::json::parse(rusca::read_file(golden_dir("llama31") + "/tokenizer_config.json"))["chat_template"];
    const std::string fixed = "{%- set date_string = \"26 Jul 2024\" %}";
    ASSERT_NE(tmpl.find(fixed), std::string::npos);
    tmpl.replace(tmpl.find(fixed), fixed.size(), "{%- set date_string = strftime_now(\"%d %b %Y\") %}");
    std::ofstream(dir.file("tokenizer_config.json")) << nlohmann::json{{"bos_token", "<|begin_of_text|>"}, {"chat_template", tmpl}}.dump();
    char today[32];
    const std::time_t now = std::time(nullptr);
    std::strftime(today, sizeof today, "%d %b %Y", std::localtime(&now));
    EXPECT_EQ(rusca::chat_format(Tokenizer(dir.path)).system_header,
              std::string("Cutting Knowledge Date: December 2023\nToday Date: ") + today + "\n\n");
}

// Llama 2 folds the system text into the first user turn, so that turn is the prefix: a one-turn
// prompt has no prompt tokens of its own, and a scaffold goes before the prompt's own system text.
TEST(Chat, Llama2ScaffoldOpensTheFirstUserTurn) {
    Tokenizer tok(golden_dir("llama2"));
    const std::vector<Message> prompt = {{"user", "Hi"}};
    EXPECT_TRUE(rusca::chat_prompt_tokens(tok, prompt).empty());
    EXPECT_EQ(rusca::chat_prefix_tokens(tok, "", prompt), rusca::chat_tokens(tok, prompt, true));
    EXPECT_EQ(rusca::chat_prefix_tokens(tok, "Rubric", prompt), rusca::chat_tokens(tok, {{"system", "Rubric"}, {"user", "Hi"}}, true));
    const std::vector<Message> two = {{"system", "Be brief."}, {"user", "Hi"}, {"assistant", "Hello"}, {"user", "Bye"}};
    const std::vector<int> prompt_ids = rusca::chat_prompt_tokens(tok, two);
    EXPECT_EQ(tok.decode(prompt_ids), tok.decode(rusca::chat_tokens(tok, two, true)).substr(
                                          tok.decode(rusca::chat_prefix_tokens(tok, "", two)).size()));
    const std::vector<Message> merged = {{"system", "Rubric\n\nBe brief."}, {"user", "Hi"}, {"assistant", "Hello"}, {"user", "Bye"}};
    EXPECT_EQ(concat(rusca::chat_prefix_tokens(tok, "Rubric", two), prompt_ids), rusca::chat_tokens(tok, merged, true));
    expect_error([&] { rusca::chat_tokens(tok, {{"user", "a"}, {"user", "b"}}, true); }, {"alternate"});
}

TEST(Chat, StopTokens) {
    Tokenizer qwen(golden_dir("qwen2")), llama(golden_dir("llama3")), sp("data/tokenizer.model");
    EXPECT_EQ(rusca::chat_stop_tokens(qwen), (std::vector<int>{qwen.piece_to_id("<|im_end|>")}));
    EXPECT_EQ(rusca::chat_stop_tokens(llama), (std::vector<int>{llama.piece_to_id("<|eot_id|>")}));
    EXPECT_EQ(rusca::chat_stop_tokens(sp), (std::vector<int>{sp.encode("<|im_end|>")[0], sp.eos_id()}));
}

// Our own sentencepiece tokenizer keeps the ChatML it always had: BOS, then the turns.
TEST(Chat, SentencePieceChatML) {
    Tokenizer tok("data/tokenizer.model");
    const std::vector<Message> prompt = {{"user", "Hello"}};
    EXPECT_EQ(rusca::chat_prompt_tokens(tok, prompt), tok.encode("<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\n"));
    EXPECT_EQ(rusca::chat_prefix_tokens(tok, "", prompt), std::vector<int>{tok.bos_id()});
    EXPECT_EQ(rusca::chat_prefix_tokens(tok, "S", prompt), concat({tok.bos_id()}, tok.encode("<|im_start|>system\nS<|im_end|>\n")));
}

TEST(Chat, UnknownTemplateIsAnError) {
    TempDir dir;
    std::ofstream(dir.file("tokenizer.json")) << rusca::read_file(golden_dir("qwen2") + "/tokenizer.json");
    std::ofstream(dir.file("tokenizer_config.json")) << R"({"chat_template": "{{ messages[0]['content'] }} ### Response:"})";
    expect_error([&] { rusca::chat_format(Tokenizer(dir.path)); }, {"chat template", "not a ChatML, Llama 3 or Llama 2"});
}
