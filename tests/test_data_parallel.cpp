// test_data_parallel.cpp: the communication layer and data-parallel training.
//  - in process: launcher variables, the single-rank communicator, ZeRO-1 on one rank = AdamW;
//  - through `mpirun --oversubscribe -np 2 build/rusca` (skipped, saying so, only where mpirun is
//    absent): split invariance of SFT and RL (2 ranks x half the batch = 1 rank x the whole batch:
//    losses, gradient norms, weights and AdamW moments, with and without ZeRO-1), resuming a 2-rank
//    ZeRO-1 checkpoint on 1 rank and the reverse, and a rank that fails ending the whole job.
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <set>

#include "host/checkpoint.h"
#include "host/comm.h"
#include "host/data_parallel.h"
#include "host/fileio.h"
#include "host/generate.h"
#include "host/model.h"
#include "host/rng.h"
#include "host/rollout_dump.h"
#include "mpi_test_util.h"
#include "rl_test_util.h"
#include "test_util.h"

using namespace rusca;
using namespace rusca::testutil;
using json = nlohmann::json;

namespace {

// ---- in process ----------------------------------------------------------------------------

// Sets environment variables for one test and restores what was there.
struct EnvGuard {
    std::vector<std::pair<std::string, std::string>> saved;
    std::vector<std::string> unset_after;
    void set(const std::string& k, const std::string& v) {
        const char* old = getenv(k.c_str());
        if (old) saved.push_back({k, old});
        else unset_after.push_back(k);
        setenv(k.c_str(), v.c_str(), 1);
    }
    void clear(const std::string& k) {
        const char* old = getenv(k.c_str());
        if (old) saved.push_back({k, old}), unsetenv(k.c_str());
    }
    ~EnvGuard() {
        for (auto& [k, v] : saved) setenv(k.c_str(), v.c_str(), 1);
        for (auto& k : unset_after) unsetenv(k.c_str());
    }
};

const char* kLauncherVars[] = {"OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK", "PMI_RANK",
                               "PMI_SIZE", "PMIX_RANK", "SLURM_PROCID", "SLURM_NTASKS", "SLURM_STEP_NUM_TASKS", "SLURM_LOCALID", "MPI_LOCALRANKID"};

TEST(Comm, LaunchInfoReadsTheLauncher) {
    EnvGuard env;
    for (const char* v : kLauncherVars) env.clear(v);
    EXPECT_EQ(launch_info().size, 1);
    EXPECT_EQ(launch_info().source, "none");
    env.set("SLURM_PROCID", "0"), env.set("SLURM_NTASKS", "8");  // a batch script, not an srun step
    EXPECT_EQ(launch_info().size, 1);
    env.set("SLURM_PROCID", "3"), env.set("SLURM_STEP_NUM_TASKS", "8"), env.set("SLURM_LOCALID", "1");
    LaunchInfo li = launch_info();
    EXPECT_EQ(li.rank, 3);
    EXPECT_EQ(li.size, 8);
    EXPECT_EQ(li.local_rank, 1);
    EXPECT_EQ(li.source, "SLURM_PROCID");
    env.set("OMPI_COMM_WORLD_RANK", "1"), env.set("OMPI_COMM_WORLD_SIZE", "2");  // mpirun's own wins
    li = launch_info();
    EXPECT_EQ(li.rank, 1);
    EXPECT_EQ(li.size, 2);
    EXPECT_EQ(li.source, "OMPI_COMM_WORLD_RANK");
    env.set("OMPI_COMM_WORLD_RANK", "2");
    expect_error([] { launch_info(); }, {"OMPI_COMM_WORLD_RANK=2", "OMPI_COMM_WORLD_SIZE=2"});
    env.set("OMPI_COMM_WORLD_RANK", "one");
    expect_error([] { launch_info(); }, {"OMPI_COMM_WORLD_RANK", "\"one\""});
}

TEST(Comm, SingleRankCollectivesAreIdentities) {
    std::unique_ptr<Comm> c = make_single_comm();
    EXPECT_EQ(c->rank(), 0);
    EXPECT_EQ(c->size(), 1);
    EXPECT_STREQ(c->backend(), "single");
    std::vector<float> a = {1.5f, -2.0f, 3.25f}, out(3, 0.0f);
    c->all_reduce(a.data(), a.size());
    EXPECT_EQ(a, (std::vector<float>{1.5f, -2.0f, 3.25f}));
    c->reduce_scatter(a.data(), out.data(), 3);
    EXPECT_EQ(out, a);
    out.assign(3, 0.0f);
    c->all_gather(a.data(), out.data(), 3);
    EXPECT_EQ(out, a);
    double d = 2.5;
    c->all_reduce(&d, 1, ReduceOp::Max);
    EXPECT_EQ(d, 2.5);
}

ModelConfig tiny_config() {
    return parse_config(R"({"model_type": "qwen2", "vocab_size": 64, "hidden_size": 16, "intermediate_size": 24,
      "num_hidden_layers": 2, "num_attention_heads": 2, "num_key_value_heads": 1, "max_position_embeddings": 32,
      "tie_word_embeddings": true})",
                        "tiny");
}

// On one rank ZeRO-1's slice is everything: the sliced, tensor-by-tensor step must give AdamW's bits,
// clipping included, and the moments must survive shard -> full -> shard.
TEST(DataParallel, ZeroOneOnOneRankIsAdamW) {
    const ModelConfig c = tiny_config();
    std::unique_ptr<Model> a = make_cpu_model(c), b = make_cpu_model(c);
    const ParamLayout& layout = a->layout;
    init_params(layout, a->params(), 5);
    init_params(layout, b->params(), 5);
    AdamWConfig cfg;
    cfg.grad_clip = 0.5f;
    AdamW adam_a(layout, cfg), adam_b(layout, cfg);
    std::unique_ptr<Comm> single = make_single_comm();
    DataParallel dp(*single, layout, 1);
    ASSERT_TRUE(dp.active());
    dp.place_optimizer(*b, adam_b);
    Rng rng(9);
    for (int step = 0; step < 3; step++) {
        for (size_t i = 0; i < layout.total; i++) a->grads()[i] = b->grads()[i] = float(rng.normal()) * 0.1f;
        const float na = a->optimizer_step(adam_a, 1e-2f), nb = dp.step(*b, adam_b, 1e-2f);
        EXPECT_EQ(na, nb);
    }
    for (size_t i = 0; i < layout.total; i++) ASSERT_EQ(a->params()[i], b->params()[i]) << i;
    std::vector<float> m, v;
    dp.full_state(*b, adam_b, m, v);
    EXPECT_EQ(m, adam_a.m);
    EXPECT_EQ(v, adam_a.v);
    EXPECT_EQ(adam_b.t, adam_a.t);
}

// Ranks on a node of several GPUs train on GPU (local rank mod GPUs); a single rank, or a rank that
// sees one GPU (the launcher gave it its own), keeps the current one.
TEST(DataParallel, EachLocalRankGetsItsOwnGpu) {
    LaunchInfo li;
    li.size = 16;
    for (int local = 0; local < 8; local++) {
        li.local_rank = local;
        EXPECT_EQ(rank_gpu(li, 8), local);
        EXPECT_EQ(rank_gpu(li, 4), local % 4);
        EXPECT_EQ(rank_gpu(li, 1), -1);
        EXPECT_EQ(rank_gpu(li, 0), -1);
    }
    li.size = 1;
    EXPECT_EQ(rank_gpu(li, 8), -1);
}

TEST(DataParallel, SharesCoverEveryItemOnce) {
    std::unique_ptr<Comm> single = make_single_comm();
    ParamLayout layout(tiny_config());
    DataParallel dp(*single, layout, 0);
    EXPECT_FALSE(dp.active());
    EXPECT_EQ(dp.share(7), (std::pair<size_t, size_t>{0, 7}));
    EXPECT_TRUE(dp.owns(0) && dp.owns(5));
    expect_error([&] { DataParallel(*single, layout, 2); }, {"--zero 2", "0 and 1"});
}

// A rank's share of a step's groups, generated with rollout_base, samples exactly the tokens that
// the whole step's call gives those groups (so splitting a step over ranks changes no rollout).
TEST(DataParallel, RolloutBaseKeepsTheStepsSampling) {
    const ModelConfig c = tiny_config();
    std::unique_ptr<Model> m = make_cpu_model(c);
    init_params(m->layout, m->params(), 3, 0.5f);
    CpuInference inf(c, m->params());
    std::vector<PromptGroup> all = {{{3, 14, 15}, {{}, {9}}}, {{27, 18}, {{8}, {}}}, {{5, 6, 7}, {{}, {}}}};
    GenerateOptions opt;
    opt.max_new_tokens = 6, opt.seed = 11;
    const auto whole = generate(inf, all, opt);
    GenerateOptions share = opt;
    share.rollout_base = {2};  // group 1 alone: its rollouts are 2 and 3 of the step
    const auto part = generate(inf, {all[1]}, share);
    EXPECT_EQ(part[0][0].tokens, whole[1][0].tokens);
    EXPECT_EQ(part[0][1].tokens, whole[1][1].tokens);
    const auto unbased = generate(inf, {all[1]}, opt);  // the control: numbered from 0 it samples otherwise
    EXPECT_NE(unbased[0][0].tokens, whole[1][0].tokens);
}

// ---- through mpirun -----------------------------------------------------------------------

struct SftSetup {
    TempDir dir;
    std::string config;
    SftSetup() {
        config = dir.file("config.json");
        write_file_atomic(config, R"({"model_type": "qwen2", "vocab_size": 512, "hidden_size": 16,
          "intermediate_size": 24, "num_hidden_layers": 2, "num_attention_heads": 2, "num_key_value_heads": 1,
          "max_position_embeddings": 64, "tie_word_embeddings": true})");
    }
    // batch 5: the ranks get 3 and 2 rows, and different token counts (JSONL rows differ in length)
    std::string args(const std::string& out, const std::string& extra = "") const {
        return "build/rusca sft --init-config " + config + " --data data/tiny_sft.jsonl --tokenizer data/tokenizer.model"
               " --batch 5 --seq 16 --steps 4 --warmup 1 --lr 3e-3 --save-every 2 --threads 1 --quiet --out " +
               dir.file(out) + " " + extra;
    }
};

const std::vector<std::string> kSftKeys = {"loss", "grad_norm", "tokens"};

TEST(DataParallelMpi, SftTwoRanksMatchOne) {
    SKIP_WITHOUT_MPIRUN();
    SftSetup s;
    run_ok(s.args("one"));
    run_ok(mpirun(2) + s.args("two"));
    run_ok(mpirun(2) + s.args("zero", "--zero 1"));
    const RunResult one = read_run(s.dir.file("one"), 4);
    expect_same_run(one, read_run(s.dir.file("two"), 4), kSftKeys);
    expect_same_run(one, read_run(s.dir.file("zero"), 4), kSftKeys);
}

// A ZeRO-1 checkpoint holds the full state: 2 ranks -> 1 rank and 1 rank -> 2 ranks both end where
// the uninterrupted single-rank run does.
TEST(DataParallelMpi, SftResumesOnAnotherNumberOfRanks) {
    SKIP_WITHOUT_MPIRUN();
    SftSetup s;
    run_ok(s.args("one"));
    run_ok(mpirun(2) + s.args("down", "--zero 1 --stop-at 2"));
    run_ok(s.args("down", "--resume"));
    run_ok(s.args("up", "--stop-at 2"));
    run_ok(mpirun(2) + s.args("up", "--zero 1 --resume"));
    const RunResult one = read_run(s.dir.file("one"), 4);
    expect_same_run(one, read_run(s.dir.file("down"), 4), kSftKeys);
    expect_same_run(one, read_run(s.dir.file("up"), 4), kSftKeys);
}

// One rank fails after MPI is up (here: its data file is broken, via mpirun's per-rank command
// lines); the job must end promptly with that rank's message, not wait forever in a collective.
TEST(DataParallelMpi, FailingRankStopsTheJob) {
    SKIP_WITHOUT_MPIRUN();
    SftSetup s;
    const std::string bad = s.dir.file("bad.jsonl");
    write_file_atomic(bad, "{\"prompt\": \"a\", \"response\": \"b\"}\nnot json\n");
    const std::string good = s.args("job");
    std::string broken = good;
    broken.replace(broken.find("data/tiny_sft.jsonl"), std::string("data/tiny_sft.jsonl").size(), bad);
    std::string out;
    const int rc = run(mpirun(1) + good + " : -np 1 " + broken, &out, 60);
    EXPECT_NE(rc, 0) << out;
    EXPECT_NE(rc, 124) << "the job hung: the healthy rank was never stopped\n" << out;
    EXPECT_NE(out.find("rusca: error: rank 1: " + bad + ":2"), std::string::npos) << out;
}

// ---- RL --------------------------------------------------------------------------------------

struct RlSetup {
    TempDir dir;
    RlSetup() {
        ModelConfig c = load_config("data/tiny_config.json");
        c.hidden_size = 32, c.intermediate_size = 48, c.num_layers = 2, c.num_heads = 2, c.num_kv_heads = 1;
        c.head_dim = 16;
        write_random_model(dir.file("policy"), c, 1, 0.3f);
        write_random_model(dir.file("judge"), c, 2, 0.2f);  // verdicts that follow the response: rewards vary
        write_rubrics(dir.file("rubrics.jsonl"), 7, 4);
    }
    // 6 prompts x 4 rollouts, 2 minibatches: on 2 ranks each minibatch is spread over both.
    std::string args(const std::string& out, const std::string& extra = "") const {
        return "build/rusca rl --policy " + dir.file("policy") + " --judge " + dir.file("judge") +
               " --tokenizer data/tokenizer.model --data " + dir.file("rubrics.jsonl") +
               " --steps 2 --prompts-per-step 6 --group 4 --updates-per-step 2 --max-new-tokens 8 --lr 1e-3"
               " --beta 0.01 --device cpu --threads 1 --quiet --judge-template tests/judge_template_short.txt --out " +
               dir.file(out) + " " + extra;
    }
};

const std::vector<std::string> kRlKeys = {"loss", "grad_norm", "kl", "clip_frac", "reward_mean", "reward_std",
                                          "response_len_mean", "met_rate_positive", "met_rate_negative",
                                          "truncation_rate", "zero_variance_groups"};

TEST(DataParallelMpi, RlTwoRanksMatchOne) {
    SKIP_WITHOUT_MPIRUN();
    RlSetup s;
    run_ok(s.args("one"));
    run_ok(mpirun(2) + s.args("two", "--dump-every 1"));
    run_ok(mpirun(2) + s.args("zero", "--zero 1 --adv-norm batch --micro-batch 3"));
    run_ok(s.args("one_batch", "--adv-norm batch --micro-batch 3"));
    const RunResult one = read_run(s.dir.file("one"), 2);
    bool signal = false;
    for (const json& m : one.metrics) signal |= m["reward_std"].get<double>() > 0 && m["grad_norm"].get<double>() > 0;
    ASSERT_TRUE(signal) << "no reward spread: the runs would agree without exercising the update";
    expect_same_run(one, read_run(s.dir.file("two"), 2), kRlKeys);
    // Each rank dumps the rollouts it generated: together, every rollout of the step once.
    std::set<int> dumped;
    for (int rank = 0; rank < 2; rank++)
        for (const json& r : read_metrics(rollout_dump_path(s.dir.file("two"), 1, rank))) {
            EXPECT_EQ(r["group"].get<int>() % 2, rank);
            dumped.insert(r["rollout"].get<int>());
        }
    EXPECT_EQ(dumped.size(), 24u);
    expect_same_run(read_run(s.dir.file("one_batch"), 2), read_run(s.dir.file("zero"), 2), kRlKeys);
}

TEST(DataParallelMpi, RlResumesTwoRanksOnOne) {
    SKIP_WITHOUT_MPIRUN();
    RlSetup s;
    run_ok(s.args("one"));
    run_ok(mpirun(2) + s.args("down", "--zero 1 --stop-at 1"));
    run_ok(s.args("down", "--resume"));
    expect_same_run(read_run(s.dir.file("one"), 2), read_run(s.dir.file("down"), 2), kRlKeys);
}

}  // namespace
