// tokenizer_model.h: what a tokenizer implementation provides (text <-> ids, vocabulary lookups).
// Two implementations: sentencepiece .model files (tokenizer.cpp) and Hugging Face byte-level BPE
// tokenizer.json files (bpe.cpp). Callers never see this: they hold a rusca::Tokenizer
// (tokenizer.h), which picks the implementation from the file or model folder it is given.
#pragma once
#include <string>
#include <vector>

namespace rusca {

class TokenizerModel {
public:
    virtual ~TokenizerModel() = default;
    // Text -> ids; special tokens written in the text are recognised, no BOS/EOS is added.
    virtual std::vector<int> encode(const std::string& text) const = 0;
    virtual std::string decode(const std::vector<int>& ids) const = 0;
    virtual int vocab_size() const = 0;
    virtual int piece_to_id(const std::string& piece) const = 0;  // -1 if unknown
};

}  // namespace rusca
