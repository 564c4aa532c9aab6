// test_cuda_data_parallel.cpp: data-parallel SFT on the CUDA backend through mpirun (gradients
// reduced over MPI and AdamW run on the host, host/data_parallel.h): 2 ranks x half the batch give the
// losses, gradient norms, weights and moments of 1 rank x all of it. On the emulator build each rank
// is a process emulating its own GPU (build/rusca-emu); on a GPU machine both ranks share the GPU.
#include <gtest/gtest.h>

#include <cmath>

#include "gpu_test_util.h"
#include "host/checkpoint.h"
#include "host/config.h"
#include "mpi_test_util.h"
#include "test_util.h"

using namespace rusca;
using namespace rusca::testutil;

namespace {

TEST(CudaDataParallel, SftTwoRanksMatchOne) {
    SKIP_WITHOUT_GPU();
    SKIP_WITHOUT_MPIRUN();
    const std::string bin = gputest::emulated() ? "build/rusca-emu" : "build/rusca";
    ASSERT_TRUE(file_exists(bin)) << bin << " is not built";
    TempDir d;
    ModelConfig c = load_config("data/tiny_config.json");  // head_dim 64: what the flash kernels serve
    c.hidden_size = 64, c.intermediate_size = 128, c.num_layers = 1, c.num_heads = 1, c.num_kv_heads = 1;
    c.head_dim = 64;
    write_random_model(d.file("model"), c, 4, 0.05f);
    auto args = [&](const std::string& out, const std::string& extra = "") {
        return bin + " sft --device cuda --model " + d.file("model") +
               " --data data/tiny_sft.jsonl --tokenizer data/tokenizer.model --batch 4 --seq 16 --steps 3 --warmup 1"
               " --lr 3e-3 --threads 1 --quiet --out " +
               d.file(out) + " " + extra;
    };
    run_ok(args("one"));
    run_ok(mpirun(2) + args("two"));
    const RunResult one = read_run(d.file("one"), 3), two = read_run(d.file("two"), 3);
    ASSERT_EQ(one.metrics.size(), two.metrics.size());
    for (size_t i = 0; i < one.metrics.size(); i++)
        for (const char* k : {"loss", "grad_norm", "tokens"})
            expect_close(one.metrics[i][k].get<double>(), two.metrics[i][k].get<double>(), 1e-3,
                         "step " + std::to_string(i + 1) + " " + k);
    // Each rank scales its bf16 gradients by its own token count, so they round differently from the
    // single rank's (bf16: 2^-8), and gradients summed from many terms of both signs carry that as a
    // larger relative error. So the comparison is bf16's usual one, a relative L2 error, on what the
    // run changed: the weights' updates and the moments. A wrong reduction is off by O(1).
    std::vector<float> init(one.params.size());
    load_params(d.file("model"), ParamLayout(c), init.data());
    auto rel_l2 = [](const std::vector<float>& a, const std::vector<float>& b, const std::vector<float>* base) {
        double num = 0, den = 0;
        for (size_t i = 0; i < a.size(); i++) {
            const double x = a[i] - (base ? (*base)[i] : 0.0f), y = b[i] - (base ? (*base)[i] : 0.0f);
            num += (x - y) * (x - y), den += x * x;
        }
        return std::sqrt(num / den);
    };
    const double du = rel_l2(one.params, two.params, &init), dm = rel_l2(one.m, two.m, nullptr),
                 dv = rel_l2(one.v, two.v, nullptr);
    std::printf("[ cuda dp ] relative L2 difference, 1 vs 2 ranks: updates %.2e, m %.2e, v %.2e\n", du, dm, dv);
    EXPECT_LT(du, 1e-1);  // AdamW's first steps are lr * sign(g): noise flips the tiny gradients
    EXPECT_LT(dm, 3e-2);
    EXPECT_LT(dv, 3e-2);
    std::string out;
    EXPECT_NE(run(args("zero", "--zero 1"), &out), 0);
    EXPECT_NE(out.find("--zero 1 runs on the CPU backend only"), std::string::npos) << out;
}

}  // namespace
