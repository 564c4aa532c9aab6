// tokenizer.h: a thin wrapper over sentencepiece (encode / decode / special ids) plus training a
// new model from text, so the rest of rusca never includes sentencepiece headers.
#pragma once
#include <memory>
#include <string>
#include <vector>

namespace sentencepiece { class SentencePieceProcessor; }

namespace rusca {

class Tokenizer {
public:
    // Loads a sentencepiece .model file; a missing or invalid file is an Error naming the path.
    explicit Tokenizer(const std::string& model_path);
    ~Tokenizer();
    std::vector<int> encode(const std::string& text, bool add_bos = false, bool add_eos = false) const;
    std::string decode(const std::vector<int>& ids) const;
    int vocab_size() const;
    int bos_id() const;  // -1 if the model has none
    int eos_id() const;
    int pad_id() const;
    int piece_to_id(const std::string& piece) const;  // unk id if unknown
    const std::string& path() const { return path_; }

private:
    std::string path_;
    std::unique_ptr<sentencepiece::SentencePieceProcessor> sp_;
};

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
