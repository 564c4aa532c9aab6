// sft_data.h: supervised training data, tokenized once, served as fixed-length rows.
//  - .txt  : the whole file as one token stream (each line + EOS), cut into windows of T tokens;
//            every next token counts in the loss.
//  - .jsonl: one example per line, {"prompt": str, "response": str} (only response tokens count in
//            the loss) or {"text": str} (all count); each example is one row, padded, truncated.
// Malformed lines are errors naming the file and line number.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "tokenizer/tokenizer.h"

namespace rusca {

class SftDataset {
public:
    SftDataset(const std::string& path, const Tokenizer& tok, int T);
    size_t size() const { return rows_.size(); }
    // Row i as inputs and next-token targets, both [T]; ignored targets are -1, padding is pad_id.
    void get(size_t i, int* tokens, int* targets) const;
    long truncated() const { return truncated_; }  // JSONL examples cut to fit T + 1 tokens
    long total_tokens() const;                    // tokens that count in the loss, one epoch

private:
    struct Row {
        std::vector<int> seq;  // up to T + 1 tokens
        int first_target = 0;  // targets before this index (prompt tokens) are ignored
    };
    void load_text(const std::string& path, const Tokenizer& tok);
    void load_jsonl(const std::string& path, const Tokenizer& tok);
    int T_, pad_;
    long truncated_ = 0;
    std::vector<Row> rows_;
};

// Visits 0..n-1 in a fresh seeded shuffle each epoch; (epoch, cursor) is the whole state, so a
// resumed run continues the exact order.
struct EpochSampler {
    EpochSampler(size_t n, uint64_t seed) : n(n), seed(seed) { shuffle(); }
    size_t next();
    void restore(long epoch, long cursor);
    size_t n;
    uint64_t seed;
    long epoch = 0, cursor = 0;

private:
    void shuffle();
    std::vector<size_t> order_;
};

}  // namespace rusca
