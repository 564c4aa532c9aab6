// cmd_bench_tokenizer.cpp: `rusca bench tokenizer`: encode speed of our byte-level BPE next to
// Hugging Face `tokenizers` (tools/bench_tokenizer_hf.py) on the same tokenizer.json and text,
// both on one thread, line by line; prints ours, theirs and the ratio, writes JSON.
// The text is encoded once untimed (both sides then run with a warm word cache, as in training,
// where the same prompts come back every epoch), then `repeats` timed passes; we report the median.
#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>

#include "bench_util.h"
#include "error.h"
#include "fileio.h"
#include "tokenizer/tokenizer.h"

namespace rusca {

namespace {

struct TokenizerBenchArgs {
    std::string tokenizer = "tests/golden/tokenizers/qwen2", text = "data/tiny_corpus.txt";
    int repeats = 5;
    std::string python = "python3", json_out;
    bool no_hf = false;
};

std::vector<std::string> lines_of(const std::string& path) {
    std::istringstream in(read_file(path));
    std::vector<std::string> lines;
    for (std::string line; std::getline(in, line);) lines.push_back(line);
    check(!lines.empty(), path + ": no text to encode");
    return lines;
}

nlohmann::json run_ours(const TokenizerBenchArgs& a, const std::vector<std::string>& lines, size_t bytes) {
    const Tokenizer tok(a.tokenizer);
    long tokens = 0;
    for (const std::string& l : lines) tokens += long(tok.encode(l).size());  // warm-up (and the count)
    std::vector<double> secs;
    for (int r = 0; r < a.repeats; r++) {
        auto t0 = std::chrono::steady_clock::now();
        for (const std::string& l : lines) tok.encode(l);
        secs.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    }
    const double s = median(secs);
    return {{"tokens", tokens}, {"seconds_median", s}, {"tokens_per_s", tokens / s}, {"mb_per_s", bytes / s / 1e6}};
}

void bench_tokenizer(const TokenizerBenchArgs& a) {
    const std::vector<std::string> lines = lines_of(a.text);
    size_t bytes = 0;
    for (const std::string& l : lines) bytes += l.size();
    std::printf("bench tokenizer: %s on %s (%zu lines, %.2f MB), 1 thread, median of %d\n", a.tokenizer.c_str(),
                a.text.c_str(), lines.size(), bytes / 1e6, a.repeats);
    const nlohmann::json ours = run_ours(a, lines, bytes);
    std::printf("  rusca      : %12.0f tokens/s  %7.2f MB/s  (%ld tokens)\n", ours["tokens_per_s"].get<double>(),
                ours["mb_per_s"].get<double>(), ours["tokens"].get<long>());
    const std::string file = find_tokenizer_file(a.tokenizer).empty() ? a.tokenizer : find_tokenizer_file(a.tokenizer);
    const nlohmann::json hf = a.no_hf ? nlohmann::json{{"error", "skipped (--no-hf)"}}
                                      : run_python_json(a.python, "tools/bench_tokenizer_hf.py",
                                                        "--tokenizer " + file + " --text " + a.text +
                                                            " --repeats " + std::to_string(a.repeats));
    nlohmann::json result = {{"benchmark", "tokenizer"}, {"tokenizer", a.tokenizer}, {"text", a.text},
                             {"lines", lines.size()}, {"bytes", bytes}, {"repeats", a.repeats},
                             {"cpu", cpu_name()}, {"rusca", ours}, {"hf_tokenizers", hf}};
    if (hf.contains("tokens_per_s")) {
        std::printf("  hf (%s): %12.0f tokens/s  %7.2f MB/s  (%ld tokens)\n", hf.value("version", std::string("?")).c_str(),
                    hf["tokens_per_s"].get<double>(), hf["mb_per_s"].get<double>(), hf["tokens"].get<long>());
        check(hf["tokens"].get<long>() == ours["tokens"].get<long>(), "bench tokenizer: HF and rusca token counts differ");
        result["ratio_rusca_over_hf"] = ours["tokens_per_s"].get<double>() / hf["tokens_per_s"].get<double>();
        std::printf("  ratio      : %12.2fx (rusca / hf tokenizers)\n", result["ratio_rusca_over_hf"].get<double>());
    } else {
        std::printf("  hf         : unavailable (%s)\n", hf.value("error", std::string("?")).c_str());
    }
    write_bench_json(result, a.json_out);
}

}  // namespace

void add_tokenizer_bench(CLI::App* bench) {
    auto a = std::make_shared<TokenizerBenchArgs>();
    CLI::App* cmd = bench->add_subcommand("tokenizer", "BPE encode tokens/s vs Hugging Face tokenizers (1 thread, same text)");
    cmd->add_option("--tokenizer", a->tokenizer, "tokenizer.json or a folder holding one")->capture_default_str()->check(CLI::ExistingPath);
    cmd->add_option("--text", a->text, "Text file, encoded line by line")->capture_default_str()->check(CLI::ExistingFile);
    cmd->add_option("--repeats", a->repeats, "Timed passes (median)")->capture_default_str()->check(CLI::Range(1, 1000));
    cmd->add_option("--python", a->python, "Python with the tokenizers package")->capture_default_str();
    cmd->add_flag("--no-hf", a->no_hf, "Skip the Hugging Face baseline");
    cmd->add_option("--json", a->json_out, "Write the results here (e.g. bench/results/tokenizer-<date>.json)");
    cmd->callback([a] { bench_tokenizer(*a); });
}

}  // namespace rusca
