// test_cli.cpp: the rusca binary as a user runs it: help, flag errors that name the flag, clear
// errors for bad files, a SIGTERM'd training run that saves and resumes, and export + eval.
#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include <algorithm>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "host/checkpoint.h"
#include "host/fileio.h"
#include "host/gpu.h"
#include "host/model.h"
#include "host/safetensors.h"
#include "tokenizer/tokenizer.h"

using namespace rusca;

namespace {

struct Result {
    int status;
    std::string out;  // stdout and stderr together
};

Result run(const std::string& args) {
    char tmpl[] = "/tmp/rusca_cli_XXXXXX";
    int fd = mkstemp(tmpl);
    close(fd);
    int rc = std::system(("build/rusca " + args + " > " + tmpl + " 2>&1").c_str());
    Result r{WIFEXITED(rc) ? WEXITSTATUS(rc) : -1, read_file(tmpl)};
    unlink(tmpl);
    return r;
}

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

// GPU-only benchmarks refuse clearly without a GPU instead of running on something else.
TEST(Cli, BenchRlNeedsAGpu) {
    if (!rusca::list_gpus().empty()) GTEST_SKIP() << "a GPU is present";
    Result r = run("bench rl --steps 1");
    EXPECT_EQ(r.status, 1) << r.out;
    EXPECT_TRUE(contains(r.out, "bench rl needs a GPU")) << r.out;
}

TEST(Cli, HelpListsSubcommands) {
    Result r = run("--help");
    EXPECT_EQ(r.status, 0);
    for (const char* sub : {"sft", "info", "tokenizer", "bench", "forward"}) EXPECT_TRUE(contains(r.out, sub)) << sub;
    r = run("sft --help");
    EXPECT_EQ(r.status, 0);
    EXPECT_TRUE(contains(r.out, "--resume"));
}

TEST(Cli, BadFlagsAreNamed) {
    Result r = run("sft --data data/tiny_sft.jsonl --tokenizer data/tokenizer.model --bogus 3");
    EXPECT_NE(r.status, 0);
    EXPECT_TRUE(contains(r.out, "--bogus")) << r.out;
    r = run("sft --data data/tiny_sft.jsonl --tokenizer data/tokenizer.model --init-config data/tiny_config.json --batch abc");
    EXPECT_NE(r.status, 0);
    EXPECT_TRUE(contains(r.out, "--batch")) << r.out;
    r = run("nosuchcommand");
    EXPECT_NE(r.status, 0);
}

TEST(Cli, InfoReportsGpusOrTheirAbsence) {
    Result r = run("info");
    EXPECT_EQ(r.status, 0);
    EXPECT_TRUE(contains(r.out, "GPU")) << r.out;
}

TEST(Cli, UnsupportedConfigIsAClearError) {
    char dir[] = "/tmp/rusca_cli_cfg_XXXXXX";
    ASSERT_NE(mkdtemp(dir), nullptr);
    const std::string cfg = std::string(dir) + "/config.json";
    write_file_atomic(cfg, R"({"model_type": "qwen2", "vocab_size": 512, "hidden_size": 16, "intermediate_size": 8,
      "num_hidden_layers": 1, "num_attention_heads": 2, "use_sliding_window": true})");
    Result r = run("sft --init-config " + cfg + " --data data/tiny_sft.jsonl --tokenizer data/tokenizer.model --out " +
                dir + "/out");
    EXPECT_EQ(r.status, 1);
    EXPECT_TRUE(contains(r.out, "rusca: error:") && contains(r.out, cfg) && contains(r.out, "use_sliding_window"))
        << r.out;
    std::system((std::string("rm -rf ") + dir).c_str());
}

TEST(Cli, SigtermSavesACheckpointThatResumes) {
    char dir[] = "/tmp/rusca_cli_sig_XXXXXX";
    ASSERT_NE(mkdtemp(dir), nullptr);
    const std::string out = std::string(dir) + "/run";
    const std::string args = "sft --init-config data/tiny_config.json --data data/tiny_corpus.txt --tokenizer "
                             "data/tokenizer.model --batch 2 --seq 32 --steps 100000 --quiet --out " + out;
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        execl("/bin/sh", "sh", "-c", ("exec build/rusca " + args + " >/dev/null 2>&1").c_str(), (char*)nullptr);
        _exit(127);
    }
    // wait for a few logged steps, then ask it to stop as a cluster scheduler would
    for (int i = 0; i < 600 && !(file_exists(out + "/metrics.jsonl") && read_file(out + "/metrics.jsonl").size() > 300); i++)
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    kill(pid, SIGTERM);
    int status = 0;
    waitpid(pid, &status, 0);
    ASSERT_TRUE(WIFEXITED(status));
    EXPECT_EQ(WEXITSTATUS(status), 130);
    ASSERT_TRUE(file_exists(out + "/latest"));
    std::string latest = read_file(out + "/latest");
    const long saved = std::stol(latest.substr(latest.find('-') + 1));
    EXPECT_GT(saved, 0);
    Result r = run(args.substr(0, args.find("--steps")) + "--steps " + std::to_string(saved + 2) + " --resume --out " + out);
    EXPECT_EQ(r.status, 0) << r.out;
    EXPECT_TRUE(file_exists(out + "/checkpoint-" + std::string(6 - std::to_string(saved + 2).size(), '0') +
                            std::to_string(saved + 2)));
    std::system((std::string("rm -rf ") + dir).c_str());
}

}  // namespace

namespace {

// A random model with the shipped tokenizer's vocabulary and room for HealthBench-length prompts.
std::string write_random_model(const std::string& dir) {
    ModelConfig c = load_config("data/tiny_config.json");
    c.max_position_embeddings = 8192;
    ParamLayout layout(c);
    std::vector<float> params(layout.total);
    init_params(layout, params.data(), 3, 0.2f);
    save_model(dir, c, layout, params.data());
    return dir;
}

TEST(Cli, GenerateThenJudgeHealthBench) {
    const std::string hb = "../shared/data/healthbench/healthbench_500_public.jsonl";
    if (!file_exists(hb)) GTEST_SKIP() << "HealthBench sample not present";
    char dir[] = "/tmp/rusca_cli_gj_XXXXXX";
    ASSERT_NE(mkdtemp(dir), nullptr);
    const std::string d = dir, model = write_random_model(d + "/model");
    // No --tokenizer and none in the model folder: a one-line error asking for it.
    Result r = run("generate --model " + model + " --prompts " + hb + " --limit 1 --out " + d + "/none.jsonl");
    EXPECT_NE(r.status, 0);
    EXPECT_TRUE(contains(r.out, "--tokenizer: not given") && contains(r.out, "holds no tokenizer.json or tokenizer.model")) << r.out;
    r = run("generate --model " + model + " --tokenizer data/tokenizer.model --prompts " + hb +
                   " --limit 2 --n 3 --max-new-tokens 8 --seed 1 --out " + d + "/gen.jsonl");
    ASSERT_EQ(r.status, 0) << r.out;
    std::string gen = read_file(d + "/gen.jsonl");
    EXPECT_EQ(std::count(gen.begin(), gen.end(), '\n'), 6);
    copy_tokenizer_files("data/tokenizer.model", model);  // now the folder carries its tokenizer
    r = run("judge --judge " + model + " --data " + hb + " --responses " + d +
            "/gen.jsonl --out " + d + "/verdicts.jsonl");
    ASSERT_EQ(r.status, 0) << r.out;
    EXPECT_TRUE(contains(r.out, "criteria/s")) << r.out;
    std::string verdicts = read_file(d + "/verdicts.jsonl");
    EXPECT_EQ(std::count(verdicts.begin(), verdicts.end(), '\n'), 6);
    EXPECT_TRUE(contains(verdicts, "\"p_yes\"") && contains(verdicts, "\"reward\""));
    std::system(("rm -rf " + d).c_str());
}

}  // namespace

// `rusca export` writes bf16 weights that read back as the rounded fp32 ones; `rusca eval` on the
// shipped world's data then reports the checker score, the judge's agreement with the checker per
// criterion sign (counted over Best-of-N completions), and the same numbers as JSON.
TEST(Cli, ExportBf16ThenEvalBestOfNWithChecker) {
    char tmpl[] = "/tmp/rusca_cli_export_XXXXXX";
    const std::string dir = mkdtemp(tmpl);
    ModelConfig c = load_config("data/world_config.json");
    c.hidden_size = 32, c.intermediate_size = 48, c.num_layers = 1, c.num_heads = 2, c.num_kv_heads = 1, c.head_dim = 16;
    ParamLayout layout(c);
    std::vector<float> params(layout.total);
    init_params(layout, params.data(), 7, 0.3f);
    save_model(dir + "/f32", c, layout, params.data());

    Result r = run("export --model " + dir + "/f32 --out " + dir + "/bf16 --dtype bf16");
    ASSERT_EQ(r.status, 0) << r.out;
    std::unique_ptr<Model> m = load_cpu_model(dir + "/bf16");
    for (size_t i = 0; i < params.size(); i++)
        ASSERT_EQ(m->params()[i], bf16_to_f32(f32_to_bf16(params[i]))) << "parameter " << i;
    EXPECT_LT(read_file(dir + "/bf16/model.safetensors").size(), read_file(dir + "/f32/model.safetensors").size() * 6 / 10);
    EXPECT_NE(run("export --model " + dir + "/f32 --out " + dir + "/x --dtype int8").status, 0);
    // With a tokenizer, the folder carries it and a generation_config.json naming the stop ids.
    r = run("export --model " + dir + "/f32 --out " + dir + "/hf --tokenizer data/world/tokenizer.model");
    ASSERT_EQ(r.status, 0) << r.out;
    EXPECT_TRUE(std::filesystem::exists(dir + "/hf/tokenizer.model"));
    nlohmann::json gen = nlohmann::json::parse(read_file(dir + "/hf/generation_config.json"));
    EXPECT_TRUE(gen.contains("eos_token_id")) << gen.dump();
    EXPECT_EQ(Tokenizer(dir + "/hf").encode("hello"), Tokenizer("data/world/tokenizer.model").encode("hello"));

    r = run("eval --policy " + dir + "/bf16 --judge " + dir + "/bf16 --tokenizer data/world/tokenizer.model "
            "--judge-template data/world/judge_template.txt --data data/world/heldout.jsonl --limit 3 --best-of-n 2 "
            "--max-new-tokens 6 --json " + dir + "/eval.json");
    ASSERT_EQ(r.status, 0) << r.out;
    EXPECT_TRUE(contains(r.out, "by the checker")) << r.out;
    nlohmann::json j = nlohmann::json::parse(read_file(dir + "/eval.json"));
    EXPECT_EQ(j["prompts"], 3);
    EXPECT_EQ(j["best_of_n"], 2);
    EXPECT_EQ(j["judge_agreement"]["n_positive"], 3 * 2 * 4);  // 4 positive and 2 negative criteria per world prompt
    EXPECT_EQ(j["judge_agreement"]["n_negative"], 3 * 2 * 2);
    EXPECT_TRUE(j["checker"].contains("score"));
    std::filesystem::remove_all(dir);
}
