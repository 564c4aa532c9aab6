// tokenizer.cpp: the sentencepiece wrapper (load, encode, decode, special ids) and training of
// new models. The only translation unit besides cmd_tokenizer.cpp that sees sentencepiece headers.
#include "tokenizer/tokenizer.h"

#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#include <fstream>
#include <string>
#include <unordered_map>
#include <vector>

#include "host/error.h"

namespace rusca {

Tokenizer::Tokenizer(const std::string& model_path)
    : path_(model_path), sp_(std::make_unique<sentencepiece::SentencePieceProcessor>()) {
    // Check existence ourselves: sentencepiece's own message for a missing file is terse.
    check(std::ifstream(model_path).good(), "tokenizer model " + model_path + ": cannot open file");
    const auto st = sp_->Load(model_path);
    check(st.ok(), "tokenizer model " + model_path + ": not a valid sentencepiece model (" +
                       st.ToString() + ")");
}

Tokenizer::~Tokenizer() = default;

std::vector<int> Tokenizer::encode(const std::string& text, bool add_bos, bool add_eos) const {
    std::vector<int> ids;
    const auto st = sp_->Encode(text, &ids);
    if (!st.ok()) throw Error("tokenizer " + path_ + ": encode failed: " + st.ToString());
    if (add_bos && bos_id() >= 0) ids.insert(ids.begin(), bos_id());
    if (add_eos && eos_id() >= 0) ids.push_back(eos_id());
    return ids;
}

std::string Tokenizer::decode(const std::vector<int>& ids) const {
    // sentencepiece aborts on out-of-range ids in some versions; say which id instead.
    // (if/throw rather than check(): these run per token and must not build messages.)
    for (int id : ids)
        if (id < 0 || id >= vocab_size())
            throw Error("tokenizer " + path_ + ": id " + std::to_string(id) +
                        " is outside the vocabulary [0, " + std::to_string(vocab_size()) + ")");
    std::string text;
    const auto st = sp_->Decode(ids, &text);
    if (!st.ok()) throw Error("tokenizer " + path_ + ": decode failed: " + st.ToString());
    return text;
}

int Tokenizer::vocab_size() const { return sp_->GetPieceSize(); }
int Tokenizer::bos_id() const { return sp_->bos_id(); }
int Tokenizer::eos_id() const { return sp_->eos_id(); }
int Tokenizer::pad_id() const { return sp_->pad_id(); }
int Tokenizer::piece_to_id(const std::string& piece) const { return sp_->PieceToId(piece); }

// ---- training --------------------------------------------------------------------------------

// sentencepiece splits list-valued options on commas, so a comma inside a value would silently
// become two values; refuse it instead.
static void check_no_comma(const std::string& value, const std::string& what) {
    check(value.find(',') == std::string::npos,
          "tokenizer train: " + what + " '" + value + "' must not contain a comma");
}

// The options we fix, and why:
//  - identity normalization, no dummy prefix, whitespace kept: decode(encode(s)) == s exactly,
//    and encode(a) + encode(b) decodes to a + b, which chat templating relies on;
//    chat markers then also encode to one id each even at the start of a text.
//  - byte fallback: text the corpus never showed (e.g. "\n" in chat templates) still round-trips
//    instead of becoming <unk>.
//  - one thread, every sentence loaded (no sampling): the same corpus gives the same model.
static std::unordered_map<std::string, std::string> trainer_args(const TokenizerTrainOptions& o) {
    check_no_comma(o.input, "input path");
    std::string symbols;
    for (const auto& s : o.user_symbols) {
        check(!s.empty(), "tokenizer train: empty user symbol");
        check_no_comma(s, "user symbol");
        symbols += (symbols.empty() ? "" : ",") + s;
    }
    std::unordered_map<std::string, std::string> a = {
        {"input", o.input},
        {"model_prefix", o.model_prefix},
        {"vocab_size", std::to_string(o.vocab_size)},
        {"model_type", o.model_type},
        {"character_coverage", "1.0"},
        {"normalization_rule_name", "identity"},
        {"add_dummy_prefix", "false"},
        {"remove_extra_whitespaces", "false"},
        {"split_digits", "true"},
        {"byte_fallback", o.byte_fallback ? "true" : "false"},
        {"unk_id", "0"},
        {"bos_id", "1"},
        {"eos_id", "2"},
        {"pad_id", "3"},
        {"num_threads", "1"},
        {"input_sentence_size", "0"},
        {"shuffle_input_sentence", "false"},
        {"max_sentence_length", "16384"},
        {"minloglevel", o.quiet ? "2" : "0"},
    };
    if (!symbols.empty()) a["user_defined_symbols"] = symbols;
    return a;
}

void train_tokenizer(const TokenizerTrainOptions& opt) {
    check(std::ifstream(opt.input).good(), "tokenizer train: cannot open input " + opt.input);
    check(opt.model_type == "bpe" || opt.model_type == "unigram",
          "tokenizer train: model type '" + opt.model_type + "' is not bpe or unigram");
    check(!opt.model_prefix.empty(), "tokenizer train: empty model prefix");
    const auto st = sentencepiece::SentencePieceTrainer::Train(trainer_args(opt));
    check(st.ok(), "tokenizer train on " + opt.input + " -> " + opt.model_prefix +
                       ".model failed: " + st.ToString());
}

}  // namespace rusca
