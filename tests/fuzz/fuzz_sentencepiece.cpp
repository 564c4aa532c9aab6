// fuzz_sentencepiece.cpp: a sentencepiece .model file through rusca::Tokenizer (the sentencepiece
// library parses it; our side must turn whatever it says into an error naming the file), then
// encode and decode round trips.
#include "tests/fuzz/fuzz_target.h"
#include "tokenizer/tokenizer.h"

RUSCA_FUZZ_TARGET(sentencepiece) {
    const std::string path = rusca::fuzz::scratch_file("fuzz_tokenizer.model", data, size);
    rusca::fuzz::expect_clean(path, [&] {
        rusca::Tokenizer tok(path);
        const std::vector<int> ids = tok.encode("Mira has a cough. Drink water!\n", true, true);
        tok.decode(ids);
        tok.decode({0, tok.vocab_size() - 1});
    });
}
