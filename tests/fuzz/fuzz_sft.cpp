// fuzz_sft.cpp: SFT JSONL ({"prompt", "response"} or {"text"} per line) through SftDataset with the
// shipped world's sentencepiece tokenizer, then every row as the trainer reads it.
#include <vector>

#include "host/sft_data.h"
#include "tests/fuzz/fuzz_target.h"
#include "tokenizer/tokenizer.h"

RUSCA_FUZZ_TARGET(sft) {
    static const rusca::Tokenizer tok(rusca::fuzz::source_path("data/world/tokenizer.model"));
    const std::string path = rusca::fuzz::scratch_file("fuzz_sft.jsonl", data, size);
    rusca::fuzz::expect_clean(path, [&] {
        const int T = 16;
        rusca::SftDataset ds(path, tok, T);
        std::vector<int> tokens(T), targets(T);
        for (size_t i = 0; i < ds.size(); i++) ds.get(i, tokens.data(), targets.data());
        ds.total_tokens();
    });
}
