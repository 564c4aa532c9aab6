// bpe.h: Hugging Face byte-level BPE (`tokenizer.json` of Qwen2/2.5/3, Llama 3, GPT-2), natively.
// Encoding follows the `tokenizers` library step by step so ids match it exactly:
//   1. added tokens (<|im_start|>, <tool_call>, ...) are split out first, leftmost-longest, on the
//      raw text (normalized: false) or on the normalized text (normalized: true), honouring
//      lstrip / rstrip / single_word;
//   2. the normalizer (none, or NFC for Qwen);
//   3. the pre-tokenizer regex (PCRE2, Unicode classes) cuts words; each word's bytes become the
//      printable characters of GPT-2's byte-to-unicode table;
//   4. BPE merges each word by rank (a heap over adjacent pairs: O(n log n) per word), with a word
//      cache, since real text repeats words.
// Decoding maps the characters back to bytes and repairs incomplete UTF-8 with U+FFFD exactly as
// Rust's String::from_utf8_lossy does. Anything in the file we would get wrong (byte fallback,
// dropout, other normalizers / pre-tokenizers / decoders) is refused with the file and field named.
#pragma once
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "tokenizer/tokenizer_model.h"

namespace rusca {

class PreTokenizerRegex;  // PCRE2 behind a small class (bpe.cpp)

struct AddedToken {
    int id = -1;
    std::string content;
    bool special = false, normalized = false, lstrip = false, rstrip = false, single_word = false;
};

class BpeTokenizer final : public TokenizerModel {
public:
    // Parses a tokenizer.json; every unsupported or malformed field is an Error naming the path.
    explicit BpeTokenizer(const std::string& path);
    ~BpeTokenizer() override;
    std::vector<int> encode(const std::string& text) const override;
    std::string decode(const std::vector<int>& ids) const override;
    int vocab_size() const override { return int(id_to_token_.size()); }
    int piece_to_id(const std::string& piece) const override;  // -1 if unknown
    const std::vector<AddedToken>& added_tokens() const { return added_; }

private:
    struct Merge { int rank, id; };
    struct Piece { size_t begin, end; int added; };  // added: index into added_, or -1 for text

    void parse(const std::string& path);
    std::vector<Piece> split_added(const std::string& text, bool normalized_pass) const;
    std::string normalize(const std::string& text) const;
    void encode_text(const std::string& text, std::vector<int>& out) const;
    void encode_word(const std::string& word, std::vector<int>& out) const;
    std::vector<int> merge_word(const std::string& chars) const;

    std::string path_;
    std::unordered_map<std::string, int> token_to_id_;
    std::vector<std::string> id_to_token_;
    std::unordered_map<uint64_t, Merge> merges_;  // (left id << 32 | right id) -> rank, merged id
    std::vector<AddedToken> added_;
    bool added_first_byte_[256] = {};  // whether some added token starts with this byte (a fast skip)
    bool nfc_ = false;
    bool ignore_merges_ = false;  // Llama 3: a word that is itself a token is not merged
    std::unique_ptr<PreTokenizerRegex> regex_;

    // Word cache (as in `tokenizers`): bounded, shared by threads.
    static constexpr size_t kCacheCapacity = 100000;
    mutable std::mutex cache_mu_;
    mutable std::unordered_map<std::string, std::vector<int>> cache_;
};

// GPT-2's reversible map from each byte to a printable Unicode character (UTF-8 encoded), so BPE
// vocabularies never hold raw control bytes or spaces: ' ' -> "Ġ", '\n' -> "Ċ".
const std::vector<std::string>& byte_to_unicode();
// Bytes to text as Rust's String::from_utf8_lossy: each maximal invalid subsequence -> U+FFFD.
std::string utf8_lossy(const std::string& bytes);

}  // namespace rusca
