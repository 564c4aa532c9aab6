// fuzz_tokenizer_json.cpp: a Hugging Face tokenizer.json through rusca::Tokenizer (the native
// byte-level BPE: vocabulary, merges, added tokens, the PCRE2 pre-tokenizer), then encode/decode.
#include "tests/fuzz/fuzz_target.h"
#include "tokenizer/tokenizer.h"

RUSCA_FUZZ_TARGET(tokenizer_json) {
    const std::string path = rusca::fuzz::scratch_file("tokenizer.json", data, size);
    rusca::fuzz::expect_clean(path, [&] {
        rusca::Tokenizer tok(path);
        const std::vector<int> ids = tok.encode("Hello, world! <|im_start|> 123 \xc3\xa9t\xc3\xa9\n\n  x", true, true);
        tok.decode(ids);
        if (tok.vocab_size() > 0) tok.decode({0, tok.vocab_size() - 1});
    });
}
