// tokenizer.h: the one tokenizer type the rest of rusca uses. It wraps either a sentencepiece
// .model file (our own tiny tokenizer, Llama 2) or a Hugging Face byte-level BPE tokenizer.json
// (Qwen2/2.5/3, Llama 3), chosen by what the path holds, so no caller includes sentencepiece or
// knows which kind it has. From a model folder it also reads what HF keeps beside the tokenizer:
// tokenizer_config.json (bos/eos/pad tokens, the chat template) and generation_config.json
// (the eos ids generation stops at). Training new sentencepiece models lives here too.
#pragma once
#include <memory>
#include <string>
#include <vector>

namespace rusca {

class TokenizerModel;  // tokenizer/tokenizer_model.h

class Tokenizer {
public:
    // `path` is a .model file, a tokenizer.json, or a folder holding one (see find_tokenizer_file). Missing or invalid files are Errors naming the path (and field).
    explicit Tokenizer(const std::string& path);
    ~Tokenizer();
    std::vector<int> encode(const std::string& text, bool add_bos = false, bool add_eos = false) const;
    std::string decode(const std::vector<int>& ids) const;
    int vocab_size() const;
    int bos_id() const { return bos_; }  // -1 if the tokenizer has none
    int eos_id() const { return eos_; }
    int pad_id() const { return pad_; }
    // The id of a piece: -1 if unknown (sentencepiece: its unk id).
    int piece_to_id(const std::string& piece) const;
    // Whether `text` encodes to exactly one id (chat markers such as <|im_start|>).
    bool is_single_token(const std::string& text) const;
    const std::string& path() const { return path_; }
    // tokenizer_config.json's chat_template ("" if there is none); host/chat.cpp reads the family from it.
    const std::string& chat_template() const { return chat_template_; }
    // generation_config.json's eos_token_id (a number or a list) beside the tokenizer; empty if none.
    const std::vector<int>& generation_eos_ids() const { return generation_eos_; }

private:
    std::string path_;  // the file actually loaded
    std::unique_ptr<TokenizerModel> model_;
    int bos_ = -1, eos_ = -1, pad_ = -1;
    std::string chat_template_;
    std::vector<int> generation_eos_;
};

// The tokenizer file a model folder holds, or "". tokenizer.model wins when both are there: folders
// of sentencepiece families (Llama 2, Mistral) carry a tokenizer.json too, but of a kind that is not
// byte-level BPE; Qwen and Llama 3 folders hold only tokenizer.json.
std::string find_tokenizer_file(const std::string& dir);
// What to load for `flag` (--tokenizer): its value when given, else the model folder when it holds
// a tokenizer; otherwise an Error asking for the flag.
std::string tokenizer_path(const std::string& given, const std::string& model_dir, const std::string& flag = "--tokenizer");
// The judge's: --judge-tokenizer when given, else the judge folder's own, else the policy's.
std::string judge_tokenizer_path(const std::string& given, const std::string& judge_dir, const std::string& policy_tokenizer);

struct TokenizerTrainOptions {
    std::string input;          // text file, one sentence / paragraph per line
    std::string model_prefix;   // writes <prefix>.model and <prefix>.vocab
    int vocab_size = 512;
    std::string model_type = "bpe";  // bpe | unigram
    std::vector<std::string> user_symbols;  // extra special pieces (e.g. chat markers)
    bool byte_fallback = true;  // unseen characters become byte pieces instead of <unk>
    bool quiet = false;         // silence sentencepiece's progress log (tests)
};
void train_tokenizer(const TokenizerTrainOptions& opt);

}  // namespace rusca
