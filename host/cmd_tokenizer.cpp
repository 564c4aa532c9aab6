// cmd_tokenizer.cpp: `rusca tokenizer train | encode | decode`, a command-line face for
// tokenizer/tokenizer.h: make a sentencepiece model from text; look at the ids of any tokenizer
// (a .model, a tokenizer.json, or a model folder).
#include <CLI/CLI.hpp>

#include <cstdio>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "host/cli.h"
#include "host/error.h"
#include "tokenizer/tokenizer.h"

namespace rusca {
namespace {

void print_ids(const std::vector<int>& ids) {
    std::string line;
    for (size_t i = 0; i < ids.size(); i++) line += (i ? " " : "") + std::to_string(ids[i]);
    std::printf("%s\n", line.c_str());
}

void add_train(CLI::App& parent) {
    auto opt = std::make_shared<TokenizerTrainOptions>();
    auto no_byte_fallback = std::make_shared<bool>(false);
    CLI::App* c = parent.add_subcommand("train", "train a sentencepiece model on a text file");
    c->add_option("--input", opt->input, "text file, one sentence or paragraph per line")
        ->required()
        ->check(CLI::ExistingFile);
    c->add_option("--model-prefix", opt->model_prefix, "writes PREFIX.model and PREFIX.vocab")
        ->required();
    c->add_option("--vocab-size", opt->vocab_size, "number of pieces, specials included")
        ->capture_default_str()
        ->check(CLI::Range(16, 1 << 20));
    c->add_option("--model-type", opt->model_type, "sentencepiece algorithm")
        ->capture_default_str()
        ->check(CLI::IsMember({"bpe", "unigram"}));
    c->add_option("--user-symbols", opt->user_symbols,
                  "comma-separated pieces kept whole, e.g. chat markers")
        ->delimiter(',');
    c->add_flag("--no-byte-fallback", *no_byte_fallback,
                "map unseen characters to <unk> instead of byte pieces");
    c->callback([opt, no_byte_fallback] {
        opt->byte_fallback = !*no_byte_fallback;
        train_tokenizer(*opt);
        const Tokenizer tok(opt->model_prefix + ".model");
        std::printf("wrote %s.model and %s.vocab (%d pieces)\n", opt->model_prefix.c_str(),
                    opt->model_prefix.c_str(), tok.vocab_size());
    });
}

// Encodes --text, or else each line of stdin (one output line per input line, so
// `echo hi | rusca tokenizer encode` does not count the newline).
void add_encode(CLI::App& parent) {
    struct Args {
        std::string model, text;
        bool bos = false, eos = false;
    };
    auto a = std::make_shared<Args>();
    CLI::App* c = parent.add_subcommand("encode", "print the token ids of a text, space-separated");
    c->add_option("--model", a->model, "sentencepiece .model, tokenizer.json, or a folder holding one")
        ->required()
        ->check(CLI::ExistingPath);
    auto* text = c->add_option("--text", a->text, "text to encode (default: each line of stdin)");
    c->add_flag("--bos", a->bos, "prepend the BOS id");
    c->add_flag("--eos", a->eos, "append the EOS id");
    c->callback([a, text] {
        const Tokenizer tok(a->model);
        if (text->count() > 0) return print_ids(tok.encode(a->text, a->bos, a->eos));
        for (std::string line; std::getline(std::cin, line);)
            print_ids(tok.encode(line, a->bos, a->eos));
    });
}

void add_decode(CLI::App& parent) {
    struct Args {
        std::string model;
        std::vector<int> ids;
    };
    auto a = std::make_shared<Args>();
    CLI::App* c = parent.add_subcommand("decode", "print the text of token ids");
    c->add_option("--model", a->model, "sentencepiece .model, tokenizer.json, or a folder holding one")
        ->required()
        ->check(CLI::ExistingPath);
    c->add_option("ids", a->ids, "token ids")->required();
    c->callback([a] {
        const Tokenizer tok(a->model);
        std::printf("%s\n", tok.decode(a->ids).c_str());
    });
}

}  // namespace

void add_tokenizer_command(CLI::App& app) {
    CLI::App* t = app.add_subcommand("tokenizer", "tokenizers: train (sentencepiece), encode, decode (sentencepiece or tokenizer.json)");
    t->require_subcommand(1);
    add_train(*t);
    add_encode(*t);
    add_decode(*t);
}

}  // namespace rusca
