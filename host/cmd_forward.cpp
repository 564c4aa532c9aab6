// cmd_forward.cpp: `rusca forward`, the logits of a model for one token sequence. It is how
// tools/check_hf_roundtrip.py compares our forward pass with transformers on the same checkpoint,
// and a quick way to inspect a checkpoint by hand.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>
#include <sstream>

#include "cli.h"
#include "error.h"
#include "model.h"
#include "safetensors.h"

namespace rusca {

namespace {
std::vector<int> parse_tokens(const std::string& text) {
    std::istringstream in(text);
    std::vector<int> ids;
    std::string word;
    while (in >> word) {
        try {
            size_t used = 0;
            ids.push_back(std::stoi(word, &used));
            check(used == word.size(), "");
        } catch (const std::exception&) {
            throw Error("--tokens: \"" + word + "\" is not an integer token id");
        }
    }
    check(!ids.empty(), "--tokens: no token ids given");
    return ids;
}

}  // namespace

void add_forward_command(CLI::App& app) {
    struct Args {
        std::string model, tokens, out, device = "auto";
    };
    auto a = std::make_shared<Args>();
    CLI::App* cmd = app.add_subcommand("forward", "Run a model on token ids; print the next-token argmax per "
                                                  "position, optionally write the logits as safetensors");
    cmd->add_option("--model", a->model, "Model directory (config.json + model.safetensors)")
        ->required()
        ->check(CLI::ExistingDirectory);
    cmd->add_option("--tokens", a->tokens, "Token ids separated by spaces, e.g. \"1 5 9\"")->required();
    cmd->add_option("--out", a->out, "Write tensor \"logits\" [T, V] (F32) to this .safetensors file");
    cmd->add_option("--device", a->device, "cpu, cuda, or auto (CUDA when a GPU is present)")->capture_default_str();
    cmd->callback([a] {
        std::unique_ptr<Model> model = load_model(a->model, resolve_device(a->device));
        std::vector<int> ids = parse_tokens(a->tokens);
        const int T = int(ids.size()), V = model->config.vocab_size;
        model->forward(ids.data(), nullptr, 1, T);
        std::vector<float> logits = model->logits();
        for (int t = 0; t < T; t++) {
            const float* row = &logits[size_t(t) * V];
            int best = int(std::max_element(row, row + V) - row);
            std::printf("position %d: token %d -> argmax %d (logit %.4f)\n", t, ids[t], best, row[best]);
        }
        if (!a->out.empty()) write_safetensors(a->out, {{"logits", DType::F32, {T, V}, logits.data()}});
    });
}

}  // namespace rusca
