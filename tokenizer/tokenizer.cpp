// tokenizer.cpp: rusca::Tokenizer (picks sentencepiece or byte-level BPE from the path and reads
// tokenizer_config.json / generation_config.json beside it), the sentencepiece implementation, and
// training of new sentencepiece models. The only translation unit besides cmd_tokenizer.cpp that
// sees sentencepiece headers.
#include "tokenizer/tokenizer.h"

#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#include <climits>
#include <filesystem>
#include <fstream>
#include <string>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>

#include "host/error.h"
#include "host/fileio.h"
#include "host/json_util.h"
#include "tokenizer/bpe.h"
#include "tokenizer/tokenizer_model.h"

namespace rusca {

namespace fs = std::filesystem;
using json = nlohmann::json;

// ---- sentencepiece ---------------------------------------------------------------------------

class SentencePieceModel final : public TokenizerModel {
public:
    explicit SentencePieceModel(const std::string& path) : path_(path) {
        // Check existence ourselves: sentencepiece's own message for a missing file is terse.
        check(std::ifstream(path).good(), "tokenizer model " + path + ": cannot open file");
        const auto st = sp_.Load(path);
        check(st.ok(), "tokenizer model " + path + ": not a valid sentencepiece model (" + st.ToString() + ")");
    }
    std::vector<int> encode(const std::string& text) const override {
        std::vector<int> ids;
        const auto st = sp_.Encode(text, &ids);
        if (!st.ok()) throw Error("tokenizer " + path_ + ": encode failed: " + st.ToString());
        return ids;
    }
    std::string decode(const std::vector<int>& ids) const override {
        // sentencepiece aborts on out-of-range ids in some versions; say which id instead.
        for (int id : ids)
            if (id < 0 || id >= vocab_size())
                throw Error("tokenizer " + path_ + ": id " + std::to_string(id) +
                            " is outside the vocabulary [0, " + std::to_string(vocab_size()) + ")");
        std::string text;
        const auto st = sp_.Decode(ids, &text);
        if (!st.ok()) throw Error("tokenizer " + path_ + ": decode failed: " + st.ToString());
        return text;
    }
    int vocab_size() const override { return sp_.GetPieceSize(); }
    int piece_to_id(const std::string& piece) const override { return sp_.PieceToId(piece); }
    int bos_id() const { return sp_.bos_id(); }
    int eos_id() const { return sp_.eos_id(); }
    int pad_id() const { return sp_.pad_id(); }

private:
    std::string path_;
    sentencepiece::SentencePieceProcessor sp_;
};

// ---- the Tokenizer: which file, and what HF keeps beside it -----------------------------------

std::string find_tokenizer_file(const std::string& dir) {
    for (const char* name : {"tokenizer.model", "tokenizer.json"}) {
        const fs::path p = fs::path(dir) / name;
        if (fs::is_regular_file(p)) return p.string();
    }
    return "";
}

std::string tokenizer_path(const std::string& given, const std::string& model_dir, const std::string& flag) {
    if (!given.empty()) return given;
    check(!model_dir.empty() && !find_tokenizer_file(model_dir).empty(),
          flag + ": not given, and the model folder " + (model_dir.empty() ? "(none)" : model_dir) +
              " holds no tokenizer.json or tokenizer.model");
    return model_dir;
}

std::string judge_tokenizer_path(const std::string& given, const std::string& judge_dir, const std::string& policy_tokenizer) {
    if (!given.empty()) return given;
    return find_tokenizer_file(judge_dir).empty() ? policy_tokenizer : judge_dir;
}

namespace {

json read_json_file(const std::string& path) {
    try {
        return json::parse(read_file(path));
    } catch (const json::exception& e) {
        throw Error(path + ": not valid JSON (" + e.what() + ")");
    }
}

// A special token of tokenizer_config.json ("bos_token": "<s>" | {"content": "<s>", ...} | null)
// as an id; -1 when absent or null.
int config_token_id(const json& cfg, const char* key, const TokenizerModel& m, const std::string& path) {
    if (!cfg.contains(key) || cfg.at(key).is_null()) return -1;
    const json& v = cfg.at(key);
    const json& content = v.is_object() && v.contains("content") ? v.at("content") : v;
    check(content.is_string(), path + ": " + key + ": expected a string or {\"content\": ...}");
    const int id = m.piece_to_id(content.get<std::string>());
    check(id >= 0, path + ": " + key + ": \"" + content.get<std::string>() + "\" is not a token of the vocabulary");
    return id;
}

// generation_config.json's eos_token_id: a number or a list of numbers.
std::vector<int> generation_eos(const std::string& path) {
    const json g = read_json_file(path);
    check(g.is_object(), path + ": expected a JSON object");
    if (!g.contains("eos_token_id") || g.at("eos_token_id").is_null()) return {};
    const json& e = g.at("eos_token_id");
    std::vector<int> ids;
    for (const json& v : e.is_array() ? e : json::array({e})) {
        check(v.is_number_integer(), path + ": eos_token_id: expected an integer or a list of integers");
        ids.push_back(int(json_integer(v, 0, INT32_MAX, path, "eos_token_id")));
    }
    return ids;
}

}  // namespace

Tokenizer::Tokenizer(const std::string& path) : path_(path) {
    if (fs::is_directory(path)) {
        path_ = find_tokenizer_file(path);
        check(!path_.empty(), path + ": the folder holds no tokenizer.json or tokenizer.model");
    }
    const bool is_json = path_.size() >= 5 && path_.compare(path_.size() - 5, 5, ".json") == 0;
    const std::string dir = fs::path(path_).parent_path().string();
    if (is_json) {
        model_ = std::make_unique<BpeTokenizer>(path_);
    } else {
        auto sp = std::make_unique<SentencePieceModel>(path_);
        bos_ = sp->bos_id(), eos_ = sp->eos_id(), pad_ = sp->pad_id();
        model_ = std::move(sp);
    }
    const std::string cfg_path = (fs::path(dir) / "tokenizer_config.json").string();
    if (fs::is_regular_file(cfg_path)) {
        const json cfg = read_json_file(cfg_path);
        check(cfg.is_object(), cfg_path + ": expected a JSON object");
        if (is_json) {  // a .model file carries its own special ids
            bos_ = config_token_id(cfg, "bos_token", *model_, cfg_path);
            eos_ = config_token_id(cfg, "eos_token", *model_, cfg_path);
            pad_ = config_token_id(cfg, "pad_token", *model_, cfg_path);
        }
        if (cfg.contains("chat_template") && cfg.at("chat_template").is_string())
            chat_template_ = cfg.at("chat_template").get<std::string>();
    }
    const std::string gen_path = (fs::path(dir) / "generation_config.json").string();
    if (fs::is_regular_file(gen_path)) generation_eos_ = generation_eos(gen_path);
}

Tokenizer::~Tokenizer() = default;

std::vector<int> Tokenizer::encode(const std::string& text, bool add_bos, bool add_eos) const {
    std::vector<int> ids = model_->encode(text);
    if (add_bos && bos_ >= 0) ids.insert(ids.begin(), bos_);
    if (add_eos && eos_ >= 0) ids.push_back(eos_);
    return ids;
}

std::string Tokenizer::decode(const std::vector<int>& ids) const { return model_->decode(ids); }
int Tokenizer::vocab_size() const { return model_->vocab_size(); }
int Tokenizer::piece_to_id(const std::string& piece) const { return model_->piece_to_id(piece); }
bool Tokenizer::is_single_token(const std::string& text) const { return model_->encode(text).size() == 1; }

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
