// test_robustness.cpp: issue 13's refusals. Absurd but well-formed inputs (huge shapes, layer counts,
// lines, criterion lists) are refused with a message naming the file and field before anything large
// is allocated; a wrongly typed JSON field is a rusca error, not an abort; a save that hits a
// file-size limit (a full disk) fails clearly and leaves the previous checkpoint and `latest` intact.
#include <gtest/gtest.h>

#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "host/checkpoint.h"
#include "host/config.h"
#include "host/fileio.h"
#include "host/json_util.h"
#include "host/parallel.h"
#include "host/params.h"
#include "host/rubric.h"
#include "host/safetensors.h"
#include "tests/test_util.h"

using namespace rusca;
using rusca::testutil::expect_error;
using rusca::testutil::TempDir;

namespace {

const char* kTiny = R"({"model_type": "llama", "vocab_size": 16, "hidden_size": 8, "intermediate_size": 8,
  "num_hidden_layers": 1, "num_attention_heads": 2})";

// kTiny with one field set to `value` (raw JSON).
std::string tiny_with(const std::string& field, const std::string& value) {
    nlohmann::json j = nlohmann::json::parse(kTiny);
    j[field] = nlohmann::json::parse(value);
    return j.dump();
}

void write(const std::string& path, const std::string& bytes) {
    std::ofstream f(path, std::ios::binary);
    f << bytes;
}

std::string safetensors_with_header(const std::string& header, size_t data_bytes) {
    std::string h = header;
    h.append((8 - h.size() % 8) % 8, ' ');
    std::string out(8, '\0');
    for (int i = 0; i < 8; i++) out[i] = char(uint64_t(h.size()) >> (8 * i));
    return out + h + std::string(data_bytes, '\0');
}

}  // namespace

// Issue 13's abort: a number where config.json has a string, through the real binary.
TEST(Robustness, WrongTypeInConfigIsAnErrorNotAnAbort) {
    TempDir dir;
    write(dir.file("config.json"), R"({"model_type": 5, "vocab_size": 16})");
    char out[] = "/tmp/rusca_robust_XXXXXX";
    close(mkstemp(out));
    const int rc = std::system(("build/rusca forward --model " + dir.path + " --tokens 1 > " + out + " 2>&1").c_str());
    const std::string text = read_file(out);
    unlink(out);
    ASSERT_TRUE(WIFEXITED(rc)) << text;
    EXPECT_EQ(WEXITSTATUS(rc), 1) << text;
    // (a line of its own: libraries may warn on stderr first, e.g. libgomp about OMP_WAIT_POLICY)
    EXPECT_TRUE(text.rfind("rusca: error: ", 0) == 0 || text.find("\nrusca: error: ") != std::string::npos) << text;
    EXPECT_NE(text.find("model_type"), std::string::npos) << text;
}

TEST(Robustness, ConfigFieldsOfTheWrongTypeNameTheField) {
    for (const auto& [field, value] : std::vector<std::pair<std::string, std::string>>{
             {"rms_norm_eps", "\"small\""}, {"eos_token_id", "\"</s>\""}, {"tie_word_embeddings", "1"},
             {"vocab_size", "1e20"}, {"vocab_size", "99999999999"}, {"hidden_size", "-8"},
             {"rope_scaling", "[1]"}, {"rope_theta", "1e300"}, {"num_experts", "\"8\""}, {"bos_token_id", "[\"a\"]"}})
        expect_error([&] { parse_config(tiny_with(field, value), "cfg.json"); }, {"cfg.json", field});
}

TEST(Robustness, AbsurdConfigSizesAreRefusedUpFront) {
    expect_error([] { parse_config(tiny_with("num_hidden_layers", "100000"), "cfg.json"); },
                 {"cfg.json", "num_hidden_layers", "100000"});
    nlohmann::json huge = nlohmann::json::parse(kTiny);
    huge["hidden_size"] = 1 << 20, huge["vocab_size"] = 1 << 30, huge["intermediate_size"] = 1 << 20;
    expect_error([&] { parse_config(huge.dump(), "cfg.json"); }, {"cfg.json", "billion parameters"});
    // heads * head_dim would overflow the int the model code keeps it in
    expect_error([] { parse_config(tiny_with("head_dim", "2147483646"), "cfg.json"); }, {"cfg.json", "head_dim"});
}

TEST(Robustness, SafetensorsHugeShapesAreRefusedBeforeAllocating) {
    TempDir dir;
    const std::string path = dir.file("m.safetensors");
    // 10^12 elements claimed, 8 bytes present: the offsets must match the shape and the file.
    write(path, safetensors_with_header(R"({"w": {"dtype": "F32", "shape": [1000000, 1000000], "data_offsets": [0, 8]}})", 8));
    expect_error([&] { SafeTensorsFile f(path); }, {path, "\"w\"", "needs 4000000000000"});
    write(path, safetensors_with_header(R"({"w": {"dtype": "F32", "shape": [1000000, 1000000], "data_offsets": [0, 4000000000000]}})", 8));
    expect_error([&] { SafeTensorsFile f(path); }, {path, "\"w\"", "file truncated"});
    write(path, safetensors_with_header(R"({"w": {"dtype": "F32", "shape": [4294967296, 4294967296, 16], "data_offsets": [0, 8]}})", 8));
    expect_error([&] { SafeTensorsFile f(path); }, {path, "too large"});
}

TEST(Robustness, JsonlLinesAreCapped) {
    TempDir dir;
    const std::string path = dir.file("d.jsonl");
    write(path, "{}\n" + std::string(100, 'x') + "\nend");
    LineReader small(path, 64);
    std::string line;
    ASSERT_TRUE(small.next(line));
    EXPECT_EQ(line, "{}");
    expect_error([&] { small.next(line); }, {path + ":2: ", "longer than 64 bytes"});
    LineReader big(path);
    std::vector<std::string> lines;
    while (big.next(line)) lines.push_back(line);
    EXPECT_EQ(lines, (std::vector<std::string>{"{}", std::string(100, 'x'), "end"}));
    // A line past the real cap (64 MiB) through the rubric loader: refused while reading it.
    write(path, R"({"prompt": ")" + std::string(kMaxJsonlLineBytes, 'a') + "\"}\n");
    expect_error([&] { load_rubric_jsonl(path); }, {path + ":1: ", "longer than"});
}

TEST(Robustness, RubricCriteriaAreCapped) {
    std::string rubrics;
    for (int i = 0; i < 1001; i++) rubrics += std::string(i ? "," : "") + R"({"criterion": "c", "points": 1})";
    const std::string line = R"({"prompt": "q", "rubrics": [)" + rubrics + "]}";
    expect_error([&] { parse_rubric_line(line, "r.jsonl:1: ", 1, true); },
                 {"r.jsonl:1: ", "more than 1000 criteria", "criterion 1001"});
    // A million (32 MB, under the line cap) is refused at the 1001st, before the rest is parsed: the
    // line ends in broken JSON, which a parser that went on would have reported instead.
    std::string huge = R"({"prompt": "q", "rubrics": [)";
    for (int i = 0; i < 1000000; i++) huge += std::string(i ? "," : "") + R"({"criterion": "c", "points": 1})";
    huge += ", @@@";
    expect_error([&] { parse_rubric_line(huge, "r.jsonl:1: ", 1, true); }, {"criterion 1001"});
    // The list elsewhere in the line (prompt turns, tags) is not counted.
    std::string many_tags;
    for (int i = 0; i < 2000; i++) many_tags += std::string(i ? "," : "") + "\"t\"";
    EXPECT_EQ(parse_rubric_line(R"({"prompt": "q", "example_tags": [)" + many_tags + R"(], "rubrics": [{"criterion": "c", "points": 1}]})",
                                "r.jsonl:1: ", 1, true).example_tags.size(), 2000u);
    // points that would wrap to a negative int64 are not integers we accept
    expect_error([] { parse_rubric_line(R"({"prompt": "q", "rubrics": [{"criterion": "c", "points": 18446744073709551615}]})",
                                        "r.jsonl:1: ", 1, true); },
                 {"points must be an integer"});
}

// A save that runs into a file-size limit (what a full disk looks like to write()) throws an error
// naming the file, and the checkpoint before it and `latest` stay loadable.
TEST(Robustness, FullDiskSaveKeepsThePreviousCheckpoint) {
    TempDir dir;
    const ModelConfig c = parse_config(kTiny, "tiny");
    const ParamLayout layout(c);
    std::vector<float> p1(layout.total, 0.25f), p2(layout.total, 0.5f);
    TrainState st;
    st.m.assign(layout.total, 0.f), st.v.assign(layout.total, 0.f);
    save_checkpoint(dir.path, 1, c, layout, p1.data(), st);
    ASSERT_EQ(latest_checkpoint(dir.path), dir.file("checkpoint-000001"));

    struct rlimit old;
    ASSERT_EQ(getrlimit(RLIMIT_FSIZE, &old), 0);
    struct rlimit small = old;
    small.rlim_cur = 1024;  // the model file is ~2 KB: the second save cannot finish
    auto old_handler = signal(SIGXFSZ, SIG_IGN);
    ASSERT_EQ(setrlimit(RLIMIT_FSIZE, &small), 0);
    const std::string err = testutil::error_of([&] { save_checkpoint(dir.path, 2, c, layout, p2.data(), st); });
    setrlimit(RLIMIT_FSIZE, &old);
    signal(SIGXFSZ, old_handler);
    EXPECT_NE(err.find("File too large"), std::string::npos) << err;
    EXPECT_NE(err.find(dir.path), std::string::npos) << err;

    EXPECT_EQ(latest_checkpoint(dir.path), dir.file("checkpoint-000001"));
    std::vector<float> back(layout.total);
    load_params(dir.file("checkpoint-000001"), layout, back.data());
    EXPECT_EQ(back, p1);
    EXPECT_EQ(load_train_state(dir.file("checkpoint-000001"), layout).m, st.m);
    // The next save with room to write succeeds over the debris of the failed one.
    save_checkpoint(dir.path, 2, c, layout, p2.data(), st);
    EXPECT_EQ(latest_checkpoint(dir.path), dir.file("checkpoint-000002"));
}

// The fast version of tools/kill_loop.sh: rusca sft and rl killed with SIGKILL at random moments and
// resumed; every checkpoint loads, the resumed runs end bit-identical to uninterrupted ones, and a
// save past a file-size limit fails clearly. (The full loop, 55 kills, is run by hand: RESULTS.md.)
TEST(Robustness, KillLoopQuick) {
    char out[] = "/tmp/rusca_kill_log_XXXXXX";
    close(mkstemp(out));
    const int rc = std::system((std::string(RUSCA_SOURCE_DIR) + "/tools/kill_loop.sh --quick > " + out + " 2>&1").c_str());
    const std::string text = read_file(out);
    unlink(out);
    EXPECT_TRUE(WIFEXITED(rc) && WEXITSTATUS(rc) == 0) << text;
    EXPECT_NE(text.find("kill_loop: OK"), std::string::npos) << text;
}

// A body that throws inside an OpenMP loop would end the process (std::terminate); parallel_for
// hands the error to the caller after the other iterations ran.
TEST(Robustness, ExceptionInAParallelLoopReachesTheCaller) {
    std::vector<int> ran(200, 0);
    expect_error(
        [&] {
            parallel_for(ran.size(), [&](size_t i) {
                ran[i] = 1;
                check(i % 50 != 7, "item " + std::to_string(i) + " is bad");
            });
        },
        {"is bad"});
    EXPECT_EQ(std::count(ran.begin(), ran.end(), 1), 200);
}
